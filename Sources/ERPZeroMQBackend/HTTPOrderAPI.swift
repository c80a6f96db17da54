import ERPCore
import ERPScenario
import ERPZeroMQ
import Foundation
import NIOHTTP1

/// The workload's way to the shop in `--mode zmq`: real HTTP requests to the gateway, with the
/// API key, `Idempotency-Key` and `X-Correlation-Id` a careful client sends. HTTP answers become
/// the transport's typed errors, so the workload client treats both backends alike: 429 is
/// `overloaded` (with `Retry-After`), 504 `deadlineExceeded`, 503/5xx and no answer at all
/// `unavailable`, other 4xx `rejected` with the body's error code.
public struct HTTPOrderAPI: OrderAPI {
    public let client: LoopbackHTTPClient
    public let apiKey: String
    /// Where every answer's status is counted (nil: not counted).
    public let statuses: HTTPStatusCount?
    /// Asked for each request and each answer: whether the network loses it now (an `isolate` of
    /// the gateway). Nil: never.
    public let loses: (@Sendable () -> Bool)?
    /// The clock the caller's deadlines are read on.
    private let clock = SystemClock()

    /// `loses`: a request or answer it says is lost leaves the caller hearing nothing until its
    /// deadline (`deadlineExceeded`), as a cut network would and as the simulated client does.
    public init(client: LoopbackHTTPClient, apiKey: String, statuses: HTTPStatusCount? = nil, loses: (@Sendable () -> Bool)? = nil) {
        self.client = client
        self.apiKey = apiKey
        self.statuses = statuses
        self.loses = loses
    }

    public func placeOrder(_ order: PlaceOrder, metadata: CallMetadata) async throws -> OrderView {
        try await exchange(.POST, "/orders", body: try JSONCoding.encode(order), metadata: metadata)
    }

    public func fetchOrder(_ orderId: String, metadata: CallMetadata) async throws -> OrderView {
        let escaped = orderId.addingPercentEncoding(withAllowedCharacters: .urlPathAllowed) ?? orderId
        return try await exchange(.GET, "/orders/" + escaped, body: nil, metadata: metadata)
    }

    public func send<R: GatewayExposed>(_ request: R, metadata: CallMetadata) async throws -> R.Response {
        try await exchange(R.httpMethod == "POST" ? .POST : .GET, request.httpPath, body: request.sendsBody ? try JSONCoding.encode(request) : nil,
                           metadata: metadata)
    }

    private func exchange<Answer: Decodable>(_ method: HTTPMethod, _ path: String, body: Data?, metadata: CallMetadata) async throws -> Answer {
        let remaining = metadata.deadline - clock.now
        guard remaining > .zero else { throw RPCError.deadlineExceeded }
        if loses?() == true { try await lost(until: metadata.deadline) }
        var headers = [("X-API-Key", apiKey), ("X-Correlation-Id", metadata.correlationId)]
        if let key = metadata.idempotencyKey { headers.append(("Idempotency-Key", key)) }
        if body != nil { headers.append(("Content-Type", "application/json")) }
        let response: LoopbackHTTPClient.Response
        do {
            response = try await client.send(method, path, headers: headers, body: body, timeout: remaining)
        } catch LoopbackHTTPClient.Failure.timedOut {
            statuses?.add("timeout")
            throw RPCError.deadlineExceeded
        } catch {
            statuses?.add("no answer")
            throw RPCError.unavailable("\(method) \(path): \(error)")
        }
        // An answer that comes back once the cut has begun is lost on the way.
        if loses?() == true { try await lost(until: metadata.deadline) }
        statuses?.add(String(response.status))
        switch response.status {
        case 200, 201, 202:
            do { return try JSONCoding.decode(Answer.self, from: response.body) } catch {
                throw RPCError.rejected(code: "bad_response", message: "\(method) \(path) answered \(response.status) with an unreadable \(Answer.self): \(error)")
            }
        case 429:
            // A server's hint, clamped to a day before it is scaled: no absurd header can trap.
            let seconds = min(max(response.header("Retry-After").flatMap(Int64.init) ?? 1, 0), 86_400)
            throw RPCError.overloaded(retryAfterMilliseconds: seconds * 1_000)
        case 504:
            throw RPCError.deadlineExceeded
        case 400..<500:
            let answer = try? JSONDecoder().decode([String: String].self, from: response.body)
            throw RPCError.rejected(code: answer?["error"] ?? "http_\(response.status)", message: answer?["message"] ?? "HTTP \(response.status)")
        default:
            throw RPCError.unavailable("\(method) \(path) answered HTTP \(response.status): \(String(decoding: response.body.prefix(200), as: UTF8.self))")
        }
    }

    /// A request or answer the cut lost: nothing is heard until the deadline.
    private func lost(until deadline: Timestamp) async throws -> Never {
        statuses?.add("lost (gateway isolated)")
        try await hearNothing(until: deadline, on: clock)
    }
}

/// What a caller whose message a cut lost hears: nothing until its deadline. The workload's
/// requests to an isolated gateway (`FaultPlan.losesWorkload`), over HTTP or the device protocol.
func hearNothing(until deadline: Timestamp, on clock: SystemClock) async throws -> Never {
    let remaining = deadline - clock.now
    if remaining > .zero { try await Task.sleep(for: remaining) }
    throw RPCError.deadlineExceeded
}

/// HTTP answers by status ("201", "429", …, "timeout", "no answer"). Thread safe.
public final class HTTPStatusCount: @unchecked Sendable {
    // @unchecked Sendable: `counts` is touched under `lock` only.
    private let lock = NSLock()
    private var counts: [String: Int] = [:]

    public init() {}

    public func add(_ status: String) { lock.withLock { counts[status, default: 0] += 1 } }

    public var snapshot: [String: Int] { lock.withLock { counts } }
}
