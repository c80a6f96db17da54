import ERPCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix

/// A small HTTP/1.1 client on SwiftNIO for the scenario runner's workload: one connection per
/// request (`Connection: close`), a hard timeout that closes the connection, the whole body read.
///
/// Why not `URLSession`: on Linux, with a few dozen requests in flight, it reported timeouts for
/// requests the gateway had answered in 10 ms (seen in `erp run --mode zmq`; the gateway's own
/// metrics showed the 200s), which would have blamed the system under test for the client's fault.
public final class LoopbackHTTPClient: Sendable {
    public struct Response: Sendable {
        public var status: Int
        public var headers: [(String, String)]
        public var body: Data
        public func header(_ name: String) -> String? {
            headers.first { $0.0.caseInsensitiveCompare(name) == .orderedSame }?.1
        }
    }

    public enum Failure: Error, CustomStringConvertible {
        case timedOut
        case connection(String)
        public var description: String {
            switch self {
            case .timedOut: "timed out"
            case .connection(let why): why
            }
        }
    }

    private let group: MultiThreadedEventLoopGroup
    public let host: String
    public let port: Int

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    public func shutdown() async {
        try? await group.shutdownGracefully()
    }

    /// Sends one request and waits for the whole response, at most `timeout`. `port` overrides
    /// the client's port for this request (another service's metrics, say).
    public func send(_ method: HTTPMethod, _ path: String, port: Int? = nil, headers: [(String, String)] = [], body: Data? = nil,
                     timeout: Duration) async throws -> Response {
        let port = port ?? self.port
        let loop = group.next()
        let promise = loop.makePromise(of: Response.self)
        let timer = loop.scheduleTask(in: .nanoseconds(timeout.nanoseconds)) { promise.fail(Failure.timedOut) }
        let bootstrap = ClientBootstrap(group: loop)
            .connectTimeout(.nanoseconds(max(1, timeout.nanoseconds)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(ResponseCollector(promise: promise))
                }
            }
        bootstrap.connect(host: host, port: port).whenComplete { result in
            switch result {
            case .failure(let error):
                promise.fail(Failure.connection("cannot connect to \(self.host):\(port): \(error)"))
            case .success(let channel):
                promise.futureResult.whenComplete { _ in channel.close(promise: nil) }
                var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
                head.headers.add(name: "Host", value: "\(self.host):\(port)")
                head.headers.add(name: "Connection", value: "close")
                head.headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
                for (name, value) in headers { head.headers.add(name: name, value: value) }
                channel.write(HTTPClientRequestPart.head(head), promise: nil)
                if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
                channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { error in
                    promise.fail(Failure.connection("sending the request failed: \(error)"))
                }
            }
        }
        defer { timer.cancel() }
        return try await promise.futureResult.get()
    }
}

/// Collects one response; fails the promise if the connection ends first.
private final class ResponseCollector: ChannelInboundHandler {
    typealias InboundIn = HTTPClientResponsePart
    let promise: EventLoopPromise<LoopbackHTTPClient.Response>
    var head: HTTPResponseHead?
    var body = Data()

    init(promise: EventLoopPromise<LoopbackHTTPClient.Response>) { self.promise = promise }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let head else {
                promise.fail(LoopbackHTTPClient.Failure.connection("a response without a head"))
                return
            }
            promise.succeed(.init(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise.fail(LoopbackHTTPClient.Failure.connection("connection error: \(error)"))
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise.fail(LoopbackHTTPClient.Failure.connection("the connection closed before the response ended"))
    }
}
