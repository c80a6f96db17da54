import Hummingbird
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTP1
import NIOHTTPTypes
import NIOHTTPTypesHTTP1
import Synchronization

/// What an HTTP server of ours (the gateway's API, a service's `/metrics`) allows a connection
/// that holds it open without finishing its requests. Without limits, ~20,000 connections that
/// each sent half a header took the gateway to its file-descriptor limit and `/health` stopped
/// answering (a slowloris attack, found by a red-team run).
public struct HTTPServerLimits: Sendable {
    /// A connection that completes no part of a request (its head, a piece of its body) for this
    /// long is closed, a half-sent header included; so is an idle keep-alive connection.
    public var idleTimeout: Duration = .seconds(10)
    /// From a request's head to its end: a body trickled a byte at a time past this has its
    /// connection closed (the idle timeout alone would let one byte every few seconds hold it).
    public var requestReadTimeout: Duration = .seconds(15)
    /// Connections open at once; a new one past it is closed at once (the ones already open are
    /// served). Below the process's descriptor limit, so that the server itself stays reachable.
    public var connectionCountMax = 4_096

    public init() {}

    /// Hummingbird's HTTP/1 server with these limits; `logger` hears when the cap is reached.
    public func server(logger: Logger) -> HTTPServerBuilder {
        let counter = ConnectionCounter(max: connectionCountMax, logger: logger)
        let readTimeout = Self.timeAmount(requestReadTimeout)
        return .http1(configuration: .init(additionalChannelHandlers: [ConnectionGuard(counter: counter, requestReadTimeout: readTimeout)],
                                           idleTimeout: Self.timeAmount(idleTimeout)))
    }

    static func timeAmount(_ duration: Duration) -> TimeAmount {
        .nanoseconds(duration.components.seconds * 1_000_000_000 + duration.components.attoseconds / 1_000_000_000)
    }
}

/// Connections open on one server, shared by its event loops.
final class ConnectionCounter: Sendable {
    private struct State { var open = 0; var refused = 0; var full = false }
    private let state = Mutex(State())
    let max: Int
    let logger: Logger

    init(max: Int, logger: Logger) {
        self.max = max
        self.logger = logger
    }

    /// Counts a new connection in; false (and not counted) when the server is full.
    func admit() -> Bool {
        let (admitted, becameFull) = state.withLock { s -> (Bool, Bool) in
            guard s.open < max else {
                s.refused += 1
                let first = !s.full
                s.full = true
                return (false, first)
            }
            s.open += 1
            return (true, false)
        }
        if becameFull { logger.warning("HTTP: \(max) connections open; new ones are closed until some end") }
        return admitted
    }

    func release() {
        let recovered = state.withLock { s -> Int? in
            s.open -= 1
            guard s.full, s.open < max * 9 / 10 else { return nil }
            s.full = false
            defer { s.refused = 0 }
            return s.refused
        }
        if let recovered { logger.warning("HTTP: accepting connections again (\(recovered) refused while full)") }
    }
}

/// Counts its connection against the server's cap for as long as the connection lives (closing it
/// at once when the server is full), and closes it when a request does not arrive whole within
/// the read timeout of its head. A response answered before its request's body has arrived (a
/// declared length past the limit, say) is sent with `Connection: close` and the connection
/// closed after it: otherwise the server would go on reading, and throwing away, whatever length
/// the client declared. A request the parser cannot read, between requests, is answered here
/// with the status that says why (below). Passes every part on.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart
    private let counter: ConnectionCounter
    private let requestReadTimeout: TimeAmount
    private var counted = false
    private var deadline: Scheduled<Void>?
    /// A request's head has been read and its end not yet.
    private var requestPending = false
    /// The response now being written answers a request whose body had not all arrived.
    private var closeAfterResponse = false
    /// Requests read whole whose responses have not all been written.
    private var responsesOwed = 0

    init(counter: ConnectionCounter, requestReadTimeout: TimeAmount) {
        self.counter = counter
        self.requestReadTimeout = requestReadTimeout
    }

    func handlerAdded(context: ChannelHandlerContext) {
        if counter.admit() {
            counted = true
        } else {
            context.close(promise: nil)
            return
        }
        // The Host check reads the HTTP version, which the conversion to HTTP types drops: it
        // goes in front of the conversion.
        if let codec = try? context.pipeline.syncOperations.handler(type: HTTP1ToHTTPServerCodec.self) {
            try? context.pipeline.syncOperations.addHandler(HostFieldCheck(), position: .before(codec))
        }
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        deadline = nil
        if counted {
            counted = false
            counter.release()
        }
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head:
            requestPending = true
            deadline?.cancel()
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            deadline = context.eventLoop.scheduleTask(in: requestReadTimeout) { loopBound.value.close(promise: nil) }
        case .end:
            requestPending = false
            responsesOwed += 1
            deadline?.cancel()
            deadline = nil
        case .body:
            break
        }
        context.fireChannelRead(data)
    }

    /// A request the HTTP parser could not read, arriving while nothing else is going on (no
    /// request half read, no response owed), is answered here and its connection closed:
    /// Hummingbird answers every parser error with a bare 400. An unknown method is 501 (RFC 9110:
    /// a method the server does not recognize), a head past the size limits 431, anything else
    /// 400; each with the gateway's JSON error body. Otherwise the error goes on to Hummingbird,
    /// which answers after the responses it owes.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        guard let parserError = error as? HTTPParserError, !requestPending, responsesOwed == 0 else {
            context.fireErrorCaught(error)
            return
        }
        let answer: HTTPAnswer = switch parserError {
        case .invalidMethod:
            .error(.notImplemented, "method_not_implemented", "the request's method is not one this server knows")
        case .headerOverflow:
            .error(HTTPResponse.Status(code: 431, reasonPhrase: "Request Header Fields Too Large"), "headers_too_large",
                   "the request's head section is larger than this server reads")
        default:
            .error(.badRequest, "bad_request", "the request could not be read as HTTP/1.1: " + Self.explain(parserError))
        }
        let head = HTTPResponse(status: answer.status, headerFields: [.contentType: "application/json", .connection: "close",
                                                                      .contentLength: String(answer.json.utf8.count)])
        context.write(wrapOutboundOut(.head(head)), promise: nil)
        context.write(wrapOutboundOut(.body(ByteBuffer(string: answer.json))), promise: nil)
        let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
        context.writeAndFlush(wrapOutboundOut(.end(nil))).whenComplete { _ in loopBound.value.close(promise: nil) }
    }

    /// What the parser's error means for the client, in its words rather than the parser's
    /// ("invalid HTTP version" was the answer to a line ended by a bare LF, "paused
    /// (swift-http-parser error)" to HTTP/2's preface).
    static func explain(_ error: HTTPParserError) -> String {
        switch error {
        case .invalidVersion:
            "the request line must end in HTTP/1.1 (or HTTP/1.0) and CRLF; HTTP/2 and lines ended by a bare LF are not read"
        case .paused:
            "HTTP/2 (its connection preface) and protocol upgrades are not served; speak HTTP/1.1"
        case .lfExpected, .invalidConstant:
            "every line of the head must end in CRLF"
        case .invalidHeaderToken:
            "a header field holds a character HTTP does not allow (or a line folded onto the next)"
        case .invalidContentLength:
            "Content-Length must be one decimal number, and Transfer-Encoding, when sent, must end in chunked"
        case .unexpectedContentLength:
            "Content-Length must not be sent with Transfer-Encoding, or more than once with different values"
        case .invalidChunkSize:
            "a chunk's size must be a hexadecimal number"
        case .invalidURL, .invalidPath, .invalidQueryString, .invalidFragment, .invalidHost, .invalidPort, .invalidCharactersUsed:
            "the request target holds characters a URL may not"
        case .unknown:
            "the head is not valid HTTP/1.1 (for instance Content-Length together with Transfer-Encoding)"
        default:
            "the head or body is not valid HTTP/1.1 framing"
        }
    }

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        let part = unwrapOutboundIn(data)
        if case .end = part { responsesOwed = max(0, responsesOwed - 1) }
        switch part {
        case .head(var response) where requestPending && response.status.code >= 200:
            closeAfterResponse = true
            response.headerFields[.connection] = "close"
            context.write(wrapOutboundOut(.head(response)), promise: promise)
        case .head(let response) where response.status.code >= 200 && response.headerFields[.connection]?.lowercased() == "close":
            // An answer that says it ends the connection (the refusal of CONNECT) does.
            closeAfterResponse = true
            context.write(data, promise: promise)
        case .end where closeAfterResponse:
            closeAfterResponse = false
            let loopBound = NIOLoopBound(context, eventLoop: context.eventLoop)
            let written = context.eventLoop.makePromise(of: Void.self)
            written.futureResult.whenComplete { _ in loopBound.value.close(promise: nil) }
            written.futureResult.cascade(to: promise)
            context.write(data, promise: written)
        default:
            context.write(data, promise: promise)
        }
    }
}

/// Answers `Expect: 100-continue` with an interim 100 (below), and checks the Host field.
/// RFC 9112 §3.2: a server must answer 400 to an HTTP/1.1 request without a Host header field, and
/// to any request with more than one or with an invalid one (two hosts are how a request is
/// routed one way by a proxy and another way behind it). Sits in front of the conversion to HTTP
/// types, which drops the version, and marks such a request (`problemField`) for the router's
/// `UnservableRequestAnswer`, which answers it in its turn: pipelined answers stay in order. A marker the
/// client sent itself is removed.
final class HostFieldCheck: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias InboundOut = HTTPServerRequestPart
    static let problemField = "x-erp-host-problem"

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        guard case .head(var head) = unwrapInboundIn(data) else {
            context.fireChannelRead(data)
            return
        }
        head.headers.remove(name: Self.problemField)
        let hosts = head.headers[canonicalForm: "host"]
        let problem: String? = if hosts.count > 1 {
            "more than one Host header field"
        } else if hosts.isEmpty, head.version.major == 1, head.version.minor >= 1 {
            "an HTTP/1.1 request must carry a Host header field"
        } else if let host = hosts.first, !Self.isValid(host) {
            "the Host header field is not a host and port"
        } else {
            nil
        }
        if let problem { head.headers.add(name: Self.problemField, value: problem) }
        // RFC 9110 §10.1.1: a client that sent `Expect: 100-continue` waits for an interim 100
        // before its body (curl a second, then sends it anyway; others longer). Every request
        // this server reads it reads whole, so the answer is always "go on"; a request refused
        // before its body (a declared length past the limit) gets its final answer after it, and
        // the connection closes. An HTTP/1.0 request's expectation is ignored, as the RFC says.
        if problem == nil, head.version.major == 1, head.version.minor >= 1,
           head.headers[canonicalForm: "expect"].contains(where: { $0.lowercased() == "100-continue" }) {
            context.writeAndFlush(NIOAny(HTTPServerResponsePart.head(HTTPResponseHead(version: head.version, status: .continue))), promise: nil)
        }
        context.fireChannelRead(wrapInboundOut(.head(head)))
    }

    /// `uri-host [":" port]`: a registered name, an IPv4 address or an IP literal in brackets, as
    /// RFC 3986 spells them (empty too, which RFC 9112 allows for a target without an authority).
    static func isValid(_ host: Substring) -> Bool {
        // The port, when the field has one: a TCP port number (`x:99999999999` is no address).
        let afterLiteral = host.lastIndex(of: "]").map { host[host.index(after: $0)...] } ?? host
        if let colon = afterLiteral.lastIndex(of: ":") {
            let port = afterLiteral[afterLiteral.index(after: colon)...]
            if !port.isEmpty {
                guard port.utf8.count <= 5, port.utf8.allSatisfy({ (UInt8(ascii: "0")...UInt8(ascii: "9")).contains($0) }),
                      let number = Int(port), number <= 65_535 else { return false }
            }
        }
        return host.utf8.allSatisfy { byte in
            switch byte {
            case UInt8(ascii: "a")...UInt8(ascii: "z"), UInt8(ascii: "A")...UInt8(ascii: "Z"), UInt8(ascii: "0")...UInt8(ascii: "9"):
                true
            default:
                "-._~%!$&'()*+,;=:[]".utf8.contains(byte)
            }
        }
    }
}
