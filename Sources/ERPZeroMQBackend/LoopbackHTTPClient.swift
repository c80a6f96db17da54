import ERPCore
import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// A small HTTP/1.1 client on SwiftNIO for the scenario runner's workload: connections kept alive
/// and reused one request at a time (as `wrk` and real clients do), a hard timeout that closes the
/// connection, the whole body read.
///
/// Kept alive because a connection per request made the load generator and the gateway pay for
/// a TCP handshake, an accept, a channel pipeline and a close per order (the gateway's CPU per
/// order fell from 0.42 to 0.26–0.28 ms at 761 orders/s once they were kept). A connection goes
/// back to the pool only after a whole response that did not say
/// `Connection: close`, and is reused only within `idleReuseMax` (under the gateway's 10 s idle
/// timeout). A request that could not be written on a reused connection (the server closed it
/// meanwhile: nothing was sent) goes again on a new one; any other failure is the request's.
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

    /// An open connection and the handler that collects its responses.
    private struct Connection: @unchecked Sendable {
        let channel: any Channel
        let collector: ResponseCollector
        var idleSince: ContinuousClock.Instant
    }

    private let group: MultiThreadedEventLoopGroup
    public let host: String
    public let port: Int
    /// How long an idle connection may wait in the pool and still be used.
    public static let idleReuseMax: Duration = .seconds(4)
    /// Idle connections, per port, most recently used last.
    private let idle = Mutex<[Int: [Connection]]>([:])
    /// Connections opened so far (for tests and figures).
    private let opened = Mutex(0)

    public init(host: String, port: Int) {
        self.host = host
        self.port = port
        group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
    }

    /// Connections opened so far.
    public var connectionsOpened: Int { opened.withLock { $0 } }

    public func shutdown() async {
        let all = idle.withLock { pool in
            defer { pool.removeAll() }
            return pool.values.flatMap { $0 }
        }
        for connection in all { connection.channel.close(promise: nil) }
        try? await group.shutdownGracefully()
    }

    /// Sends one request and waits for the whole response, at most `timeout`. `port` overrides
    /// the client's port for this request (another service's metrics, say).
    public func send(_ method: HTTPMethod, _ path: String, port: Int? = nil, headers: [(String, String)] = [], body: Data? = nil,
                     timeout: Duration) async throws -> Response {
        let port = port ?? self.port
        let deadline = ContinuousClock.now + timeout
        if let reused = takeIdle(port: port) {
            do {
                return try await exchange(on: reused, method, path, port: port, headers: headers, body: body, deadline: deadline)
            } catch WriteFailure.notSent {
                // Closed by the server while it waited: nothing went out, so it goes on a new one.
            }
        }
        let connection = try await connect(port: port, timeout: deadline - ContinuousClock.now)
        do {
            return try await exchange(on: connection, method, path, port: port, headers: headers, body: body, deadline: deadline)
        } catch WriteFailure.notSent {
            throw Failure.connection("sending the request to \(host):\(port) failed: the connection closed")
        }
    }

    private enum WriteFailure: Error { case notSent }

    private func takeIdle(port: Int) -> Connection? {
        let now = ContinuousClock.now
        return idle.withLock { pool -> Connection? in
            while let connection = pool[port]?.popLast() {
                if connection.channel.isActive && now - connection.idleSince < Self.idleReuseMax { return connection }
                connection.channel.close(promise: nil)
            }
            return nil
        }
    }

    private func putBack(_ connection: Connection, port: Int) {
        var connection = connection
        let now = ContinuousClock.now
        connection.idleSince = now
        idle.withLock { pool in
            // The longest idle are at the front: past reuse, they are closed rather than kept.
            while let oldest = pool[port]?.first, now - oldest.idleSince >= Self.idleReuseMax {
                oldest.channel.close(promise: nil)
                pool[port]!.removeFirst()
            }
            pool[port, default: []].append(connection)
        }
    }

    private func connect(port: Int, timeout: Duration) async throws -> Connection {
        let collector = ResponseCollector()
        let bootstrap = ClientBootstrap(group: group)
            .connectTimeout(.nanoseconds(max(1, timeout.nanoseconds)))
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    try channel.pipeline.syncOperations.addHandler(collector)
                }
            }
        do {
            let channel = try await bootstrap.connect(host: host, port: port).get()
            opened.withLock { $0 += 1 }
            return Connection(channel: channel, collector: collector, idleSince: .now)
        } catch {
            throw Failure.connection("cannot connect to \(host):\(port): \(error)")
        }
    }

    /// One request on `connection`, which is this request's alone until it returns: back to the
    /// pool after a whole response the server will keep the connection for, closed otherwise.
    private func exchange(on connection: Connection, _ method: HTTPMethod, _ path: String, port: Int,
                          headers: [(String, String)], body: Data?, deadline: ContinuousClock.Instant) async throws -> Response {
        let channel = connection.channel
        let loop = channel.eventLoop
        let promise = loop.makePromise(of: Response.self)
        let timer = loop.scheduleTask(in: .nanoseconds(max(1, (deadline - ContinuousClock.now).nanoseconds))) { promise.fail(Failure.timedOut) }
        var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
        head.headers.add(name: "Host", value: "\(host):\(port)")
        head.headers.add(name: "Content-Length", value: "\(body?.count ?? 0)")
        for (name, value) in headers { head.headers.add(name: name, value: value) }
        let collector = connection.collector
        loop.execute { [head] in
            collector.expect(promise)
            channel.write(HTTPClientRequestPart.head(head), promise: nil)
            if let body { channel.write(HTTPClientRequestPart.body(.byteBuffer(ByteBuffer(bytes: body))), promise: nil) }
            // A request that did not all reach the socket was not served: the connection was gone.
            channel.writeAndFlush(HTTPClientRequestPart.end(nil)).whenFailure { _ in promise.fail(WriteFailure.notSent) }
        }
        defer { timer.cancel() }
        do {
            let response = try await promise.futureResult.get()
            if response.header("Connection")?.lowercased() == "close" || !channel.isActive {
                channel.close(promise: nil)
            } else {
                putBack(connection, port: port)
            }
            return response
        } catch {
            channel.close(promise: nil)
            throw error
        }
    }
}

/// Collects the response to the request now on its connection; fails it if the connection ends
/// first. Used on its channel's event loop only.
private final class ResponseCollector: ChannelInboundHandler, @unchecked Sendable {
    typealias InboundIn = HTTPClientResponsePart
    private var promise: EventLoopPromise<LoopbackHTTPClient.Response>?
    private var head: HTTPResponseHead?
    private var body = Data()

    func expect(_ promise: EventLoopPromise<LoopbackHTTPClient.Response>) {
        self.promise = promise
        head = nil
        body = Data()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let h): head = h
        case .body(let buffer): body.append(contentsOf: buffer.readableBytesView)
        case .end:
            guard let promise else { return }
            self.promise = nil
            guard let head else {
                promise.fail(LoopbackHTTPClient.Failure.connection("a response without a head"))
                return
            }
            promise.succeed(.init(status: Int(head.status.code), headers: head.headers.map { ($0.name, $0.value) }, body: body))
        }
    }

    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        promise?.fail(LoopbackHTTPClient.Failure.connection("connection error: \(error)"))
        promise = nil
        context.close(promise: nil)
    }

    func channelInactive(context: ChannelHandlerContext) {
        promise?.fail(LoopbackHTTPClient.Failure.connection("the connection closed before the response ended"))
        promise = nil
    }
}
