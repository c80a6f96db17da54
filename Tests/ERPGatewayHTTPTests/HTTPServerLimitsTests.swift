import ERPCore
@testable import ERPGatewayHTTP
import Foundation
import Hummingbird
import HummingbirdTesting
import Logging
import Testing
#if canImport(Glibc)
import Glibc
#endif

/// A raw TCP connection to a loopback port, for clients that misbehave on purpose.
final class RawConnection {
    let fd: Int32

    init(port: Int) throws {
        fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = in_port_t(UInt16(port).bigEndian)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        guard connected == 0 else { close(fd); throw POSIXError(.ECONNREFUSED) }
    }

    deinit { close(fd) }

    func send(_ text: String) {
        _ = text.utf8CString.withUnsafeBufferPointer { Glibc.send(fd, $0.baseAddress, $0.count - 1, Int32(MSG_NOSIGNAL)) }
    }

    /// What the server sends until it closes the connection or `within` passes: the text, and
    /// whether it closed. Polls without blocking and sleeps between looks: a test blocked in
    /// poll(2) would hold one of the two threads every other async test needs.
    func readUntilClosed(within: Duration) async -> (text: String, closed: Bool) {
        let deadline = ContinuousClock.now + within
        var bytes: [UInt8] = []
        var buffer = [UInt8](repeating: 0, count: 4096)
        while ContinuousClock.now < deadline {
            var poller = pollfd(fd: fd, events: Int16(POLLIN), revents: 0)
            if poll(&poller, 1, 0) <= 0 {
                try? await Task.sleep(for: .milliseconds(10))
                continue
            }
            let n = recv(fd, &buffer, buffer.count, 0)
            if n <= 0 { return (String(decoding: bytes, as: UTF8.self), true) }
            bytes += buffer[0..<n]
        }
        return (String(decoding: bytes, as: UTF8.self), false)
    }
}

/// The HTTP servers' limits against connections that hold them open (slowloris): an idle timeout,
/// a cap on connections, a deadline on a request's body. On a live server, with raw sockets.
@Suite(.serialized) struct HTTPServerLimitsTests {
    func app(limits: HTTPServerLimits) -> some ApplicationProtocol {
        var settings = GatewayHTTPSettings(apiKeys: ["secret"])
        settings.limits = limits
        let http = GatewayHTTP(operations: FakeGateway(), settings: settings, clock: FixedClock(),
                               ids: IDGenerator(random: SeededRandomSource(seed: 1)), hop: { body in await body() })
        return Application(router: http.router(), server: limits.server(logger: Logger(label: "test")),
                           configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// A request's head up to its body's headers: POST /orders with the test's key, JSON.
    static let orderHead = "POST /orders HTTP/1.1\r\nHost: x\r\nX-API-Key: secret\r\nContent-Type: application/json\r\n"

    /// Sends `text` on a connection of its own; what comes back until the server closes it or
    /// `within` passes.
    func exchange(_ text: String, port: Int, within: Duration = .seconds(3)) async throws -> (text: String, closed: Bool) {
        let connection = try RawConnection(port: port)
        connection.send(text)
        return await connection.readUntilClosed(within: within)
    }

    /// Sends `text`, waits for its answer to arrive, then sends `then` on the same connection.
    func exchange(_ text: String, port: Int, then: String, within: Duration = .seconds(3)) async throws -> (text: String, closed: Bool) {
        let connection = try RawConnection(port: port)
        connection.send(text)
        try await Task.sleep(for: .milliseconds(300))
        connection.send(then)
        return await connection.readUntilClosed(within: within)
    }

    /// The status codes of the answers in `text`, in order (a body that mentions "HTTP/1.1" is
    /// not taken for a status line).
    func statusCodes(in text: String) -> [String] {
        text.components(separatedBy: "HTTP/1.1 ").dropFirst().map { String($0.prefix(3)) }.filter { $0.count == 3 && $0.allSatisfy(\.isNumber) }
    }

    /// Whether the server answers a well-behaved client, on a connection of its own.
    func answersHealth(port: Int) async throws -> Bool {
        try await exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port, within: .seconds(5)).text.hasPrefix("HTTP/1.1 200")
    }

    /// The request's deadline counts from when its body has arrived: counted from its head, an
    /// order whose body took longer to send than the deadline (within the 15 s a request may
    /// take) was answered 504 "outcome unknown" without being placed (an API integrator's trial).
    @Test func aSlowBodyDoesNotSpendTheRequestsDeadline() async throws {
        struct WallClock: ServiceClock {
            var now: Timestamp { Timestamp(nanosecondsSinceEpoch: Int64(Date().timeIntervalSince1970 * 1e9)) }
        }
        let fake = FakeGateway()
        fake.deadlineClock = WallClock()
        var settings = GatewayHTTPSettings(apiKeys: ["secret"])
        settings.requestTimeout = .seconds(1)
        let http = GatewayHTTP(operations: fake, settings: settings, clock: WallClock(),
                               ids: IDGenerator(random: SeededRandomSource(seed: 1)), hop: { body in await body() })
        let app = Application(router: http.router(), server: settings.limits.server(logger: Logger(label: "test")),
                              configuration: .init(address: .hostname("127.0.0.1", port: 0)))
        try await app.test(.live) { client in
            let connection = try RawConnection(port: try #require(client.port))
            connection.send(Self.orderHead + "Content-Length: \(orderJSON.utf8.count)\r\n\r\n")
            try await Task.sleep(for: .milliseconds(1_500))   // past the 1 s deadline, were it counted from the head
            connection.send(orderJSON)
            let seen = await connection.readUntilClosed(within: .seconds(3))
            #expect(seen.text.hasPrefix("HTTP/1.1 201"), "\(seen.text)")
        }
    }

    @Test func aConnectionThatNeverFinishesItsHeaderIsClosed() async throws {
        var limits = HTTPServerLimits()
        limits.idleTimeout = .milliseconds(300)
        try await app(limits: limits).test(.live) { client in
            let port = try #require(client.port)
            let slow = try RawConnection(port: port)
            slow.send("GET /health HTTP/1.1\r\nHost: x\r\nX-Slow: ")
            let seen = await slow.readUntilClosed(within: .seconds(5))
            #expect(seen.closed, "the half-sent request held its connection")
            // The server still answers a well-behaved client (on a connection of its own: the test
            // client's kept-alive one has been idle too, and was closed as well).
            #expect(try await answersHealth(port: port))
        }
    }

    @Test func connectionsPastTheCapAreClosedAndTheOthersServed() async throws {
        var limits = HTTPServerLimits()
        limits.connectionCountMax = 3
        limits.idleTimeout = .seconds(30)
        try await app(limits: limits).test(.live) { client in
            let port = try #require(client.port)
            let held = try (0..<3).map { _ in try RawConnection(port: port) }
            // Let the server count them in.
            for connection in held { connection.send("GET /hea") }
            try await Task.sleep(for: .milliseconds(200))
            let extra = try RawConnection(port: port)
            extra.send("GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
            let refused = await extra.readUntilClosed(within: .seconds(5))
            #expect(refused.closed && !refused.text.contains("200"), "a fourth connection was served: \(refused.text)")
            // One of the held ones finishes its request and is answered.
            held[0].send("lth HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            let answered = await held[0].readUntilClosed(within: .seconds(5))
            #expect(answered.text.hasPrefix("HTTP/1.1 200"), "\(answered.text)")
        }
    }

    /// A body trickled in, a byte now and then (each within the idle timeout), is cut off at the
    /// request's read deadline.
    @Test func aRequestThatDoesNotArriveWholeInTimeHasItsConnectionClosed() async throws {
        var limits = HTTPServerLimits()
        limits.idleTimeout = .seconds(5)
        limits.requestReadTimeout = .milliseconds(600)
        try await app(limits: limits).test(.live) { client in
            let port = try #require(client.port)
            let trickle = try RawConnection(port: port)
            let started = ContinuousClock.now
            trickle.send("POST /orders HTTP/1.1\r\nHost: x\r\nX-API-Key: secret\r\nContent-Length: 100\r\n\r\n{")
            var closed = false
            for _ in 0..<20 where !closed {
                trickle.send("\"")
                closed = await trickle.readUntilClosed(within: .milliseconds(200)).closed
            }
            #expect(closed, "a trickled body held its connection past the read deadline")
            #expect(ContinuousClock.now - started < .seconds(3))
        }
    }

    /// A declared length past the body limit is answered 413 at once, before the body is sent,
    /// and the connection closed after the answer: the client is not kept sending a megabyte the
    /// server would only read to throw away.
    @Test func aDeclaredLengthPastTheLimitIsRefusedBeforeTheBody() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let seen = try await exchange(Self.orderHead + "Content-Length: \(GatewayHTTPSettings(apiKeys: []).bodyByteCountMax + 1)\r\n\r\n{", port: port)
            #expect(seen.text.hasPrefix("HTTP/1.1 413"), "\(seen.text)")
            #expect(seen.text.contains("body_too_large"), "\(seen.text)")
            #expect(seen.closed, "the connection was kept open for a body past the limit")
            #expect(seen.text.lowercased().contains("connection: close"), "\(seen.text)")
        }
    }

    /// A chunked body (no length declared) that grows past the limit is 413, as a declared one
    /// is: it was a 400 quoting `NIOTooManyBytesError`.
    @Test func aChunkedBodyPastTheLimitIsTooLarge() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let size = GatewayHTTPSettings(apiKeys: []).bodyByteCountMax + 10
            let chunk = String(size, radix: 16) + "\r\n" + String(repeating: "a", count: size) + "\r\n0\r\n\r\n"
            let seen = try await exchange(Self.orderHead + "Transfer-Encoding: chunked\r\n\r\n" + chunk, port: port)
            #expect(seen.text.hasPrefix("HTTP/1.1 413"), "\(seen.text.prefix(300))")
            #expect(seen.text.contains("body_too_large") && !seen.text.contains("NIO"), "\(seen.text.prefix(300))")
            #expect(try await answersHealth(port: port))
        }
    }

    /// A chunked body whose chunk size is not hexadecimal is a 400 naming the body, and the
    /// server goes on serving.
    @Test func aMalformedChunkIsABadRequest() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let seen = try await exchange(Self.orderHead + "Transfer-Encoding: chunked\r\n\r\nZZ\r\n{}\r\n0\r\n\r\n", port: port)
            #expect(seen.text.hasPrefix("HTTP/1.1 400"), "\(seen.text)")
            #expect(try await answersHealth(port: port))
        }
    }

    /// A request the parser cannot read is answered with the status that says why, in the
    /// gateway's JSON error form, and its connection closed; the server goes on serving. Between
    /// two requests on one connection too, after the first one's answer.
    @Test func unreadableRequestsGetTheStatusThatSaysWhy() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let unknown = try await exchange("BREW /health HTTP/1.1\r\nHost: x\r\n\r\n", port: port)
            #expect(unknown.text.hasPrefix("HTTP/1.1 501"), "\(unknown.text)")
            #expect(unknown.text.contains(#""error":"method_not_implemented""#) && unknown.closed, "\(unknown.text)")
            let huge = try await exchange("GET /health HTTP/1.1\r\nHost: x\r\nX-Big: " + String(repeating: "a", count: 200_000) + "\r\n\r\n",
                                          port: port)
            #expect(huge.text.hasPrefix("HTTP/1.1 431"), "\(huge.text.prefix(200))")
            #expect(huge.text.contains(#""error":"headers_too_large""#) && huge.closed)
            let garbled = try await exchange("GET /health HTTP/9.9.9\r\nHost: x\r\n\r\n", port: port)
            #expect(garbled.text.hasPrefix("HTTP/1.1 400") && garbled.text.contains(#""error":"bad_request""#), "\(garbled.text)")
            // Said in the client's terms, not the parser's ("invalid HTTP version", "paused
            // (swift-http-parser error)"): a bare LF, HTTP/2's preface.
            let bareLF = try await exchange("GET /health HTTP/1.1\nHost: x\n\n", port: port)
            #expect(bareLF.text.hasPrefix("HTTP/1.1 400") && bareLF.text.contains("CRLF"), "\(bareLF.text)")
            let preface = try await exchange("PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n", port: port)
            #expect(preface.text.hasPrefix("HTTP/1.1 400") && preface.text.contains("HTTP/2") && !preface.text.contains("parser"), "\(preface.text)")
            let second = try await exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n", port: port, then: "BREW / HTTP/1.1\r\n\r\n")
            #expect(statusCodes(in: second.text) == ["200", "501"], "\(second.text)")
            #expect(try await answersHealth(port: port))
        }
    }

    /// A service's metrics server, as `ServiceHost` serves it.
    func metricsApp() -> some ApplicationProtocol {
        Application(router: MetricsEndpoint.router { "erp_up 1\n" }, server: HTTPServerLimits().server(logger: Logger(label: "test")),
                    configuration: .init(address: .hostname("127.0.0.1", port: 0)))
    }

    /// RFC 9112 §3.2: 400 to an HTTP/1.1 request without Host, and to any with two Hosts or an
    /// invalid one; HTTP/1.0 may go without. Answered in turn on a kept connection, and a marker a
    /// client sends itself changes nothing. The gateway and the services' metrics servers alike.
    @Test(arguments: ["gateway", "metrics"])
    func requestsMustNameOneValidHost(server: String) async throws {
        let app: any ApplicationProtocol = server == "gateway" ? app(limits: HTTPServerLimits()) : metricsApp()
        try await app.test(.live) { client in
            let port = try #require(client.port)
            func status(_ request: String) async throws -> String {
                let seen = try await exchange(request, port: port)
                return String(seen.text.dropFirst("HTTP/1.1 ".count).prefix(3)) + (seen.text.contains(#""error":"bad_host""#) ? " bad_host" : "")
            }
            #expect(try await status("GET /health HTTP/1.1\r\nConnection: close\r\n\r\n") == "400 bad_host")
            #expect(try await status("GET /health HTTP/1.1\r\nHost: a\r\nHost: b\r\nConnection: close\r\n\r\n") == "400 bad_host")
            #expect(try await status("GET /health HTTP/1.1\r\nHost: a b\r\nConnection: close\r\n\r\n") == "400 bad_host")
            // A port is a TCP port number (a trial's `x:99999999999` was served).
            for host in ["x:99999999999", "x:65536", "x:8o", "[::1]:70000"] {
                #expect(try await status("GET /health HTTP/1.1\r\nHost: \(host)\r\nConnection: close\r\n\r\n") == "400 bad_host", "\(host)")
            }
            #expect(try await status("GET /health HTTP/1.1\r\nHost: x:65535\r\nConnection: close\r\n\r\n") == "200")
            #expect(try await status("GET /health HTTP/1.0\r\n\r\n") == "200")
            #expect(try await status("GET /health HTTP/1.1\r\nHost: [::1]:8080\r\nConnection: close\r\n\r\n") == "200")
            #expect(try await status("GET /health HTTP/1.1\r\nHost: x\r\nX-Erp-Host-Problem: me\r\nConnection: close\r\n\r\n") == "200")
            let kept = try await exchange("GET /health HTTP/1.1\r\nHost: x\r\n\r\n" + "GET /health HTTP/1.1\r\n\r\n"
                                          + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port)
            #expect(statusCodes(in: kept.text) == ["200", "400", "200"], "\(kept.text)")
        }
    }

    /// CONNECT (this is not a proxy) is 501 and the connection ends with the answer: NIO frames any
    /// answer to CONNECT without a body, and a connection left open had the client wait for one.
    /// A path the metrics server does not serve is a JSON 404 naming what it does.
    @Test(arguments: ["gateway", "metrics"])
    func connectIsRefusedAndTheConnectionClosed(server: String) async throws {
        let app: any ApplicationProtocol = server == "gateway" ? app(limits: HTTPServerLimits()) : metricsApp()
        try await app.test(.live) { client in
            let port = try #require(client.port)
            let started = ContinuousClock.now
            let seen = try await exchange("CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n", port: port, within: .seconds(5))
            #expect(seen.text.hasPrefix("HTTP/1.1 501"), "\(seen.text)")
            #expect(seen.closed && ContinuousClock.now - started < .seconds(4), "the connection was left open")
            let other = try await exchange("GET /nope HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port)
            #expect(other.text.hasPrefix("HTTP/1.1 404") && other.text.contains(#""error":"not_found""#), "\(other.text)")
            #expect(try await exchange("GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port).text.hasPrefix("HTTP/1.1 200"),
                    "the server goes on serving")
        }
    }

    /// A request read whole keeps its connection for the next one, whatever its answer: only an
    /// answer given before the body arrived closes it.
    @Test func aConnectionIsKeptAfterARequestReadWhole() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let seen = try await exchange(Self.orderHead + "Content-Length: 2\r\n\r\n[]"
                                          + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port)
            #expect(seen.text.hasPrefix("HTTP/1.1 400"), "\(seen.text)")
            #expect(seen.text.components(separatedBy: "HTTP/1.1 200").count == 2, "the second request was not answered: \(seen.text)")
        }
    }

    /// A client that sends `Expect: 100-continue` and waits for the interim answer before its
    /// body gets it at once (without it curl waited a second per order), and then the order's
    /// answer on the same connection; an HTTP/1.0 request's expectation is not answered.
    @Test func anExpectationOfContinueIsAnsweredBeforeTheBody() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let connection = try RawConnection(port: port)
            connection.send(Self.orderHead + "Expect: 100-continue\r\nContent-Length: \(orderJSON.utf8.count)\r\n\r\n")
            let interim = await connection.readUntilClosed(within: .milliseconds(500))
            #expect(interim.text == "HTTP/1.1 100 Continue\r\n\r\n", "\(interim.text)")
            connection.send(orderJSON)
            let final = await connection.readUntilClosed(within: .milliseconds(1_000))
            #expect(final.text.hasPrefix("HTTP/1.1 201"), "\(final.text)")
            #expect(!final.closed, "the connection is kept for the next request")

            let old = try RawConnection(port: port)
            old.send("POST /orders HTTP/1.0\r\nX-API-Key: secret\r\nExpect: 100-continue\r\nContent-Length: \(orderJSON.utf8.count)\r\n\r\n")
            #expect(await old.readUntilClosed(within: .milliseconds(300)).text == "", "no interim answer to HTTP/1.0")
            old.send(orderJSON)
            let oldAnswer = await old.readUntilClosed(within: .seconds(1))
            #expect(oldAnswer.text.hasPrefix("HTTP/1.1 201"), "\(oldAnswer.text)")
        }
    }

    /// HEAD is served wherever GET is, on the wire: GET's status and Content-Length, no body,
    /// and the connection goes on to the next request. Where only POST is served, 405.
    @Test func headIsServedWhereGetIs() async throws {
        try await app(limits: HTTPServerLimits()).test(.live) { client in
            let port = try #require(client.port)
            let seen = try await exchange("HEAD /health HTTP/1.1\r\nHost: x\r\n\r\n" + "HEAD /orders HTTP/1.1\r\nHost: x\r\n\r\n"
                                          + "GET /health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", port: port)
            let answers = Array(seen.text.components(separatedBy: "HTTP/1.1 ").dropFirst())
            #expect(answers.count == 3, "\(seen.text)")
            guard answers.count == 3 else { return }
            #expect(answers[0].hasPrefix("200") && answers[0].lowercased().contains("content-length: 15\r\n"), "\(answers[0])")
            #expect(answers[1].hasPrefix("405") && answers[1].lowercased().contains("allow: post\r\n"), "\(answers[1])")
            // Neither HEAD answer has a body: each ends with its headers, and the GET's answer
            // (with its body) follows in step.
            #expect(answers[0].hasSuffix("\r\n\r\n") && answers[1].hasSuffix("\r\n\r\n"), "a body after a HEAD answer: \(seen.text)")
            #expect(answers[2].hasPrefix("200") && answers[2].hasSuffix(#"{"status":"ok"}"#), "\(answers[2])")
        }
    }
}
