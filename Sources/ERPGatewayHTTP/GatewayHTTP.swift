// ERPGatewayHTTP: the API gateway's HTTP face in production mode. It turns HTTP requests into
// `GatewayOperations` calls on the gateway node's executor and their answers (or typed errors)
// into HTTP responses: API keys (401), malformed JSON or missing fields (400, saying what is
// wrong), a request rate per API key and shed load (429 with Retry-After), 404/405 naming the API,
// correlation ids in and out, Idempotency-Key passed through (a retried POST gets the first order
// and charges once), health and Prometheus metrics.
import ERPCore
import ERPReports
import ERPResilience
import ERPServices
import ERPTransport
import ERPWire
import Foundation
import HTTPTypes
import Hummingbird
import NIOCore

public struct GatewayHTTPSettings: Sendable {
    /// Keys accepted in `X-API-Key` (or `Authorization: Bearer KEY`). Empty: every request is 401.
    public var apiKeys: [String]
    /// The deadline given to each request.
    public var requestTimeout: Duration = .seconds(5)
    public var bodyByteCountMax = 1 << 20
    /// Connections: an idle timeout, a deadline for each request to arrive whole, a cap (slowloris).
    public var limits = HTTPServerLimits()
    /// Requests per API key: each key gets a token bucket of this shape, every API request takes
    /// one token, and a request that finds none is answered 429 with `Retry-After` (the seconds
    /// until a token is back) without reaching the services. `/health` and `/metrics` are never
    /// limited. Nil: no limit per key (the gateway service's own admission, per user and as a
    /// whole, still applies to orders; see `ResilienceSettings`).
    public var rateLimitPerKey: TokenBucketSettings?
    public init(apiKeys: [String], rateLimitPerKey: TokenBucketSettings? = nil) {
        self.apiKeys = apiKeys
        self.rateLimitPerKey = rateLimitPerKey
    }
}

/// The per-key limiter, shared by the HTTP server's threads.
final class KeyRateLimiter: @unchecked Sendable {
    // @unchecked Sendable: `limiter` is touched only under `lock`; `bucket` is immutable.
    private let lock = NSLock()
    private var limiter: RateLimiter
    let bucket: TokenBucketSettings

    init(bucket: TokenBucketSettings) {
        self.bucket = bucket
        limiter = RateLimiter(settings: RateLimiterSettings(bucket: bucket))
    }

    func acquire(key: String, now: Timestamp) -> TokenBucket.Decision {
        lock.withLock { limiter.tryAcquire(key: key, now: now) }
    }
}

/// Runs a piece of work on the gateway node's executor (where the gateway service lives).
public typealias NodeHop = @Sendable (@escaping @Sendable () async -> HTTPAnswer) async -> HTTPAnswer

/// What a route decided, before it becomes a Hummingbird `Response`.
public struct HTTPAnswer: Sendable {
    public var status: HTTPResponse.Status
    public var json: String
    public var headers: [(String, String)] = []
    public init(status: HTTPResponse.Status, json: String, headers: [(String, String)] = []) {
        self.status = status; self.json = json; self.headers = headers
    }

    static func error(_ status: HTTPResponse.Status, _ code: String, _ message: String, headers: [(String, String)] = []) -> HTTPAnswer {
        let body = (try? JSONCoding.encodeString(["error": code, "message": message])) ?? #"{"error":"internal"}"#
        return HTTPAnswer(status: status, json: body, headers: headers)
    }

    /// The answer as an HTTP response: its JSON body, its headers, and the correlation id if any.
    func response(correlationId: String?) -> Response {
        var fields: HTTPFields = [.contentType: "application/json"]
        if let correlationId { fields[GatewayHTTP.correlationHeader] = correlationId }
        for (name, value) in headers { if let n = HTTPField.Name(name) { fields[n] = value } }
        return Response(status: status, headers: fields, body: .init(byteBuffer: ByteBuffer(string: json)))
    }
}

public struct GatewayHTTP: Sendable {
    let operations: any GatewayOperations
    public let settings: GatewayHTTPSettings
    let clock: any ServiceClock
    let ids: IDGenerator
    let hop: NodeHop
    let limiter: KeyRateLimiter?
    public let metrics = RequestMetrics.http()
    /// More Prometheus text for `/metrics` (the node's RPC metrics in production).
    let moreMetrics: @Sendable () -> String

    /// Where the reasons kept from clients go (a 503's transport detail: endpoints, socket
    /// counters): the gateway's log.
    let note: @Sendable (String) -> Void

    public init(operations: any GatewayOperations, settings: GatewayHTTPSettings, clock: any ServiceClock,
                ids: IDGenerator, hop: @escaping NodeHop, moreMetrics: @escaping @Sendable () -> String = { "" },
                note: @escaping @Sendable (String) -> Void = { _ in }) {
        self.operations = operations
        self.settings = settings
        self.clock = clock
        self.ids = ids
        self.hop = hop
        self.moreMetrics = moreMetrics
        self.note = note
        limiter = settings.rateLimitPerKey.map { KeyRateLimiter(bucket: $0) }
    }

    static let correlationHeader = HTTPField.Name("X-Correlation-Id")!

    /// The request's `X-Correlation-Id` when it is one a route would accept, for answers given
    /// before any route (nil otherwise: a route would have refused it, and no id is made for a
    /// request that reaches no service).
    static func echoedCorrelationId(of request: Request) -> String? {
        guard let given = request.headers[correlationHeader], !given.isEmpty,
              CallMetadata.correlationIdProblem(given) == nil else { return nil }
        return given
    }
    static let idempotencyHeader = HTTPField.Name("Idempotency-Key")!
    static let apiKeyHeader = HTTPField.Name("X-API-Key")!

    /// The API. Each case is a route's method and path (Hummingbird's `:parameter` syntax), which
    /// is also its metrics label; `router()` registers every case and nothing else, so what a
    /// 404 or 405 names is what is served.
    enum Route: String, CaseIterable {
        case placeOrder = "POST /orders"
        case fetchOrder = "GET /orders/:id"
        case checkStock = "GET /inventory/:shopId/:productId"
        case getProduct = "GET /products/:id"
        case salesReport = "GET /reports/sales"
        case inventoryReport = "GET /reports/inventory"
        case deviceReport = "GET /reports/devices"
        case shopDevices = "GET /shops/:id/devices"
        case listProducts = "GET /products"
        case listShops = "GET /shops"
        case createCampaign = "POST /campaigns"
        case listCampaigns = "GET /campaigns"
        case vend = "POST /vends"
        case getVend = "GET /vends/:id"
        case health = "GET /health"
        case metrics = "GET /metrics"

        var method: HTTPRequest.Method { HTTPRequest.Method(String(rawValue.prefix { $0 != " " }))! }
        var path: String { String(rawValue.drop { $0 != " " }.dropFirst()) }

        /// Whether `segments` (a request path split at "/") fits this route's path.
        func matches(_ segments: [Substring]) -> Bool {
            let pattern = path.split(separator: "/")
            return pattern.count == segments.count
                && zip(pattern, segments).allSatisfy { part, segment in part.hasPrefix(":") || part == segment }
        }
    }

    /// A path as an answer quotes it: its first 100 characters.
    static func shown(_ path: String) -> String { path.clipped() }

    /// The answer for a request no route took: 405 with `Allow` when the path is served with
    /// other methods, 404 naming the API otherwise; JSON either way, like every other error.
    static func unrouted(method: HTTPRequest.Method, path: String) -> HTTPAnswer {
        let segments = path.split(separator: "/", omittingEmptySubsequences: true)
        let allowed = Route.allCases.filter { $0.matches(segments) }.flatMap { $0.method == .get ? ["GET", "HEAD"] : [$0.method.rawValue] }
        let shown = shown(path)
        if !allowed.isEmpty {
            return .error(.methodNotAllowed, "method_not_allowed",
                          "\(method.rawValue) is not served at \(shown); use \(allowed.joined(separator: " or "))",
                          headers: [("Allow", allowed.joined(separator: ", "))])
        }
        let api = Route.allCases.map(\.rawValue).joined(separator: ", ")
        return .error(.notFound, "not_found", "no route \(shown); the API is \(api)")
    }

    public func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: UnservableRequestAnswer { [metrics] code, status in metrics.record(code, outcome: "\(status.code)", latency: .zero) })
        // Before the routes, so that it also wraps the router's not-found answer (an empty 404 otherwise).
        router.add(middleware: UnroutedAnswer(answer: Self.unrouted) { [metrics] answer, latency in
            metrics.record("unrouted", outcome: "\(answer.status.code)", latency: latency)
        })
        for route in Route.allCases {
            router.on(RouterPath(route.path), method: route.method) { request, context in await respond(to: route, request, context) }
            // HEAD wherever GET is served (RFC 9110 §9.3.2: a general-purpose server must), as
            // health checkers and caches use it: GET's answer, whose body the HTTP/1 encoder
            // leaves out after a HEAD request (its Content-Length stays).
            if route.method == .get {
                router.on(RouterPath(route.path), method: .head) { request, context in await respond(to: route, request, context) }
            }
        }
        return router
    }

    private func respond(to route: Route, _ request: Request, _ context: BasicRequestContext) async -> Response {
        switch route {
        case .health:
            return HTTPAnswer(status: .ok, json: #"{"status":"ok"}"#).response(correlationId: nil)
        case .metrics:
            return Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"],
                            body: .init(byteBuffer: ByteBuffer(string: metrics.prometheusText() + moreMetrics())))
        case .placeOrder:
            return await handle(request, route: route) { request, context in
                let body: ByteBuffer
                switch await collectBody(request) {
                case .success(let b): body = b
                case .failure(let refusal): return refusal.answer
                }
                let context = fromNow(context)
                let order: PlaceOrder
                switch Self.decodePlaceOrder(Data(buffer: body)) {
                case .success(let o): order = o
                case .failure(let failure): return .error(.badRequest, "bad_request", failure.description)
                }
                return await call { () async throws(RPCError) in try await operations.placeOrder(order, context: context) } success: { view in
                    HTTPAnswer(status: view.status == .pending ? .accepted : .created, json: try JSONCoding.encodeString(view),
                               headers: [("Location", "/orders/\(view.orderId)")])
                }
            }
        case .fetchOrder:
            let id = Self.pathParameter(context.parameters.get("id"))
            return await handle(request, route: route) { _, callContext in
                guard let id else { return Self.badPath }
                return await call { () async throws(RPCError) in try await operations.fetchOrder(FetchOrder(orderId: id), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .checkStock:
            let shop = Self.pathParameter(context.parameters.get("shopId")), product = Self.pathParameter(context.parameters.get("productId"))
            return await handle(request, route: route) { _, callContext in
                guard let shop, let product else { return Self.badPath }
                return await call { () async throws(RPCError) in try await operations.checkStock(CheckStock(shopId: shop, productId: product), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .getProduct:
            let id = Self.pathParameter(context.parameters.get("id"))
            return await handle(request, route: route) { _, callContext in
                guard let id else { return Self.badPath }
                return await call { () async throws(RPCError) in try await operations.getProduct(GetProduct(productId: id), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .salesReport:
            return await handle(request, route: route) { _, callContext in
                await call { () async throws(RPCError) in try await operations.salesReport(GetSalesReport(), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .inventoryReport:
            return await handle(request, route: route) { _, callContext in
                await call { () async throws(RPCError) in try await operations.inventoryReport(GetInventoryReport(), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .deviceReport:
            return await handle(request, route: route) { _, callContext in
                await call { () async throws(RPCError) in try await operations.deviceReport(GetDeviceReport(), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        case .listProducts: return await relay(request, route: route) { _ in ListProducts() }
        case .listShops: return await relay(request, route: route) { _ in ListShops() }
        case .listCampaigns:
            let query = request.uri.queryParameters
            let after = query.get("after"), limitText = query.get("limit")
            return await relay(request, route: route) { _ throws(DecodeFailure) in
                // A NUL or another control character in `after` reached the campaign service, whose
                // decoder's refusal came back to the client word for word.
                if let after, after.containsControlCharacter { throw DecodeFailure("after must not hold control characters") }
                var list = ListCampaigns(after: after)
                if let limitText {
                    guard let limit = Int(limitText) else { throw DecodeFailure("limit must be a whole number from 1 to \(ListCampaigns.pageSizeMax)") }
                    list.limit = limit
                }
                if let problem = list.problem { throw DecodeFailure(problem) }
                return list
            }
        case .getVend:
            let id = Self.pathParameter(context.parameters.get("id"))
            return await relay(request, route: route) { _ throws(DecodeFailure) in
                guard let id else { throw DecodeFailure(Self.badPathMessage) }
                return GetVend(vendId: id)
            }
        case .createCampaign:
            return await relay(request, route: route, status: .created) { body throws(DecodeFailure) in
                try Self.decode(CreateCampaign.self, body, expected: #"{"name", "productIds": [...], "percentOff", "endsAt" or "lastsSeconds"}"#)
            }
        case .vend:
            return await relay(request, route: route) { body throws(DecodeFailure) in
                let vend = try Self.decode(Vend.self, body, expected: #"{"vendId", "machineId", "productId", "quantity"}"#)
                if let problem = vend.problem { throw DecodeFailure(problem) }
                return vend
            }
        case .shopDevices:
            let id = Self.pathParameter(context.parameters.get("id"))
            return await handle(request, route: route) { _, callContext in
                guard let id else { return Self.badPath }
                return await call { () async throws(RPCError) in try await operations.shopDevices(GetShopDevices(shopId: id), context: callContext) } success: {
                    HTTPAnswer(status: .ok, json: try JSONCoding.encodeString($0))
                }
            }
        }
    }

    struct BodyRefusal: Error { let answer: HTTPAnswer }

    /// The request's body, within `bodyByteCountMax`: 413 past it (at once when the declared
    /// length says so), 400 when it cannot be read (a malformed chunk). A body that never
    /// finishes arriving is the server's to cut off (`HTTPServerLimits.requestReadTimeout`): the
    /// body can be read by one task only, so it is not raced against a timer here.
    /// `context` with the request's deadline counted from now: from when its body has arrived.
    /// Counted from its head, a body sent slowly over 7 s (within the 15 s a request may take)
    /// left no time for the services, and the client got 504 "outcome unknown" for an order that
    /// was never placed (an API integrator's trial).
    private func fromNow(_ context: CallContext) -> CallContext {
        var context = context
        context.metadata.deadline = clock.now + settings.requestTimeout
        return context
    }

    private func collectBody(_ request: Request) async -> Result<ByteBuffer, BodyRefusal> {
        // A compressed body was read as JSON (400 "not valid JSON at byte 0"), and a plain one
        // that claimed `br` was taken: bodies are not decoded, so any coding but identity is 415.
        if let coding = request.headers[.contentEncoding], coding.trimmingCharacters(in: .whitespaces).lowercased() != "identity" {
            return .failure(BodyRefusal(answer: .error(.unsupportedMediaType, "unsupported_encoding",
                                                       "Content-Encoding \(Self.shown(coding)) is not read here: send the body uncompressed")))
        }
        let limit = settings.bodyByteCountMax
        if let declared = request.headers[.contentLength].flatMap({ Int($0) }), declared > limit {
            return .failure(BodyRefusal(answer: .error(.contentTooLarge, "body_too_large", "the body exceeds \(limit) bytes")))
        }
        do {
            return .success(try await request.body.collect(upTo: limit))
        } catch let error as HTTPError where error.status == .contentTooLarge {
            return .failure(BodyRefusal(answer: .error(.contentTooLarge, "body_too_large", "the body exceeds \(limit) bytes")))
        } catch is NIOTooManyBytesError {
            // A chunked body (no length declared) found too long while it was read.
            return .failure(BodyRefusal(answer: .error(.contentTooLarge, "body_too_large", "the body exceeds \(limit) bytes")))
        } catch {
            return .failure(BodyRefusal(answer: .error(.badRequest, "bad_request", "the body cannot be read: \(error)")))
        }
    }

    /// A path parameter as the client meant it, percent-decoded (`/vends/v%C3%A9` names the vend
    /// "vé", as the JSON that created it did); nil when it is not valid percent-encoded UTF-8 or
    /// holds a control character (an id with a NUL would be cut short by SQLite).
    static func pathParameter(_ raw: String?) -> String? {
        guard let raw, let decoded = raw.removingPercentEncoding else { return nil }
        guard !decoded.containsControlCharacter else { return nil }
        return decoded
    }

    static let badPathMessage = "a path segment is not valid percent-encoded UTF-8, or holds a control character"
    static var badPath: HTTPAnswer { .error(.badRequest, "bad_request", badPathMessage) }

    /// A route that relays one request to its service: reads the body (for a POST), builds the
    /// request (a 400 naming the field when it cannot), and answers with the service's JSON.
    private func relay<R: GatewayExposed>(_ request: Request, route: Route, status: HTTPResponse.Status = .ok,
                                          _ make: @escaping @Sendable (Data) throws(DecodeFailure) -> R) async -> Response {
        await handle(request, route: route) { request, context in
            var data = Data()
            var started = context
            if R.httpMethod == "POST" {
                switch await collectBody(request) {
                case .success(let b): data = Data(buffer: b)
                case .failure(let refusal): return refusal.answer
                }
                started = fromNow(context)
            }
            let context = started
            let built: R
            do throws(DecodeFailure) { built = try make(data) } catch { return .error(.badRequest, "bad_request", error.description) }
            return await call { () async throws(RPCError) in try await operations.relay(built, context: context) } success: {
                HTTPAnswer(status: status, json: try JSONCoding.encodeString($0))
            }
        }
    }

    /// Authenticates, sets up the call context (deadline, correlation and idempotency ids), runs
    /// `body` on the node, counts and times the request, and answers.
    private func handle(_ request: Request, route: Route,
                        _ body: @escaping @Sendable (Request, CallContext) async -> HTTPAnswer) async -> Response {
        let started = ContinuousClock.now
        // An id the calls could not carry is refused (a fresh one names the refusal); none, or an
        // empty one, is made here.
        let given = request.headers[Self.correlationHeader].flatMap { $0.isEmpty ? nil : $0 }
        let correlationProblem = given.flatMap(CallMetadata.correlationIdProblem)
        let correlationId = correlationProblem == nil ? given ?? ids.next("corr") : ids.next("corr")
        let answer: HTTPAnswer
        if let key = apiKey(of: request), Self.isAdmitted(key, among: settings.apiKeys) {
            if let limiter, case .limited(let retryAfter) = limiter.acquire(key: key, now: clock.now) {
                answer = Self.rateLimited(retryAfter: retryAfter, bucket: limiter.bucket)
            } else {
                answer = if let correlationProblem { .error(.badRequest, "bad_correlation_id", "X-Correlation-Id: \(correlationProblem)") } else {
                    await authenticated(request, correlationId: correlationId, body)
                }
            }
        } else {
            answer = .error(.unauthorized, "unauthenticated", "send a valid API key in X-API-Key")
        }
        metrics.record(route.rawValue, outcome: "\(answer.status.code)", latency: ContinuousClock.now - started)
        return answer.response(correlationId: correlationId)
    }

    private func authenticated(_ request: Request, correlationId: String,
                               _ body: @escaping @Sendable (Request, CallContext) async -> HTTPAnswer) async -> HTTPAnswer {
        let key = request.headers[Self.idempotencyHeader]
        // An empty key would be one key shared by every client: the second client's request would
        // be refused as a reuse of the first's (or answered with its order). A key of kilobytes
        // would be stored by the service and quoted back: bounded too.
        if let key, let problem = CallMetadata.idempotencyKeyProblem(key) {
            return .error(.badRequest, "bad_idempotency_key", problem)
        }
        let metadata = CallMetadata(deadline: clock.now + settings.requestTimeout, correlationId: correlationId, idempotencyKey: key)
        let context = CallContext(metadata: metadata, caller: NodeName("http-client"))
        return await hop { await body(request, context) }
    }

    /// 429 for a key past its rate: when to come back (whole seconds, rounded up), and the limit.
    static func rateLimited(retryAfter: Duration, bucket: TokenBucketSettings) -> HTTPAnswer {
        let seconds = max(1, Int((retryAfter.seconds).rounded(.up)))
        let rate = bucket.refillRatePerSecond == bucket.refillRatePerSecond.rounded()
            ? String(Int(bucket.refillRatePerSecond)) : String(bucket.refillRatePerSecond)
        return .error(.tooManyRequests, "rate_limited",
                      "this API key is over its rate (bursts of \(bucket.capacity), then \(rate) requests per second); retry after \(seconds)s",
                      headers: [("Retry-After", "\(seconds)")])
    }

    /// Whether `key` is one of `keys`, in time that depends on neither where a guess first differs
    /// from a key nor which key matched: every key is compared over every byte, so response times
    /// do not leak a key a byte at a time.
    static func isAdmitted(_ key: String, among keys: [String]) -> Bool {
        let candidate = Array(key.utf8)
        var admitted = false
        for known in keys {
            let bytes = Array(known.utf8)
            // Lengths compared whole (a length off by a multiple of 256 must not vanish in a byte).
            var difference: UInt8 = candidate.count == bytes.count ? 0 : 1
            for i in 0..<max(candidate.count, bytes.count) {
                difference |= (i < candidate.count ? candidate[i] : 0) ^ (i < bytes.count ? bytes[i] : 0)
            }
            admitted = admitted || difference == 0
        }
        return admitted
    }

    /// The key in `X-API-Key`, or in `Authorization: Bearer KEY`.
    private func apiKey(of request: Request) -> String? {
        if let key = request.headers[Self.apiKeyHeader] { return key }
        if let auth = request.headers[.authorization], auth.hasPrefix("Bearer ") { return String(auth.dropFirst(7)) }
        return nil
    }

    /// Maps an operation's typed error to the HTTP status a client can act on.
    private func call<T: Sendable>(_ operation: @Sendable () async throws(RPCError) -> T,
                                   success: (T) throws -> HTTPAnswer) async -> HTTPAnswer {
        do {
            let value = try await operation()
            do { return try success(value) } catch { return .error(.internalServerError, "internal", "cannot encode the answer: \(error)") }
        } catch {
            if case .unavailable(let why) = error, !why.hasPrefix("circuit open") { note("answered 503: \(why)") }
            return Self.answer(for: error)
        }
    }

    static func answer(for error: RPCError) -> HTTPAnswer {
        switch error {
        case .rejected(let code, let message):
            switch code {
            case "bad_request", "bad_idempotency_key", "unknown_product", "unknown_shop", "unknown_machine": return .error(.badRequest, code, message)
            case "vend_id_reused", "idempotency_key_reused": return .error(.unprocessableContent, code, message)
            case "not_found": return .error(.notFound, code, message)
            case "out_of_stock": return .error(.conflict, code, message)
            // Refusals of the gateway's own call, not of the client's request: the system's keys or
            // versions disagree, or a service could not answer. A 4xx told the client to change a
            // request it could do nothing about (an operator's trial saw 422 "forbidden" after a
            // key rotation).
            case "forbidden", "internal", "too_large", "bad_response", "bad_reply", "bad_header", "bad_frames", "bad_kind",
                 "unsupported_version", "bad_ack":
                return .error(.badGateway, code, message)
            default: return .error(.unprocessableContent, code, message)
            }
        case .overloaded(let ms):
            // The hint came off the wire: clamp it (a day at most) before any arithmetic.
            let seconds = max(1, (min(max(ms ?? 1_000, 0), 86_400_000) + 999) / 1_000)
            return .error(.tooManyRequests, "overloaded", "too many requests; retry after \(seconds)s", headers: [("Retry-After", "\(seconds)")])
        case .unavailable(let why):
            // A breaker's refusal says which path and what to expect; a transport's reason names
            // endpoints and socket counters, which are the operator's (the log has them), not the
            // client's.
            return .error(.serviceUnavailable, "unavailable",
                          why.hasPrefix("circuit open") ? why : "a service this request needs cannot be reached now; try again shortly")
        case .deadlineExceeded: return .error(.gatewayTimeout, "deadline_exceeded", "no answer within the request's deadline")
        case .unauthenticated: return .error(.unauthorized, "unauthenticated", "not authenticated")
        }
    }

    /// Decodes a JSON body as `T`, saying precisely what is wrong when it cannot; `expected`
    /// shows the shape in the message for a body that is not JSON at all.
    static func decode<T: Decodable>(_ type: T.Type, _ data: Data, expected: String) throws(DecodeFailure) -> T {
        do {
            return try WireJSON.decode(T.self, from: [UInt8](data))
        } catch let DecodingError.keyNotFound(key, context) {
            throw DecodeFailure("missing field '\(path(context.codingPath + [key]))'")
        } catch let DecodingError.typeMismatch(_, context) where context.codingPath.isEmpty {
            throw DecodeFailure("the body must be a JSON object: expected \(expected)")
        } catch let DecodingError.valueNotFound(_, context) where context.codingPath.isEmpty {
            throw DecodeFailure("the body must be a JSON object: expected \(expected)")
        } catch let DecodingError.typeMismatch(type, context) {
            throw DecodeFailure("field '\(path(context.codingPath))' must be \(describe(type))")
        } catch let DecodingError.valueNotFound(type, context) {
            throw DecodeFailure("field '\(path(context.codingPath))' must be \(describe(type)), not null")
        } catch let DecodingError.dataCorrupted(context) where !context.codingPath.isEmpty {
            // Valid JSON, but a value the field cannot hold: 2.5 or 1e30 as a quantity.
            throw DecodeFailure("field '\(path(context.codingPath))' has a value it cannot hold: \(context.debugDescription)")
        } catch {
            // Syntax or encoding (WireJSON says at which byte): `dataCorrupted` with no field.
            let why = if case DecodingError.dataCorrupted(let context) = error { " (\(context.debugDescription))" } else { "" }
            throw DecodeFailure("the body is not valid JSON\(why); expected \(expected)")
        }
    }

    /// Decodes `POST /orders`, saying precisely what is wrong when it cannot.
    static func decodePlaceOrder(_ data: Data) -> Result<PlaceOrder, DecodeFailure> {
        let order: PlaceOrder
        do throws(DecodeFailure) {
            order = try decode(PlaceOrder.self, data, expected: #"{"userId", "shopId", "items": [{"productId", "quantity"}]}"#)
        } catch {
            return .failure(error)
        }
        if let problem = OrderLine.problem(in: order.items) { return .failure(DecodeFailure(problem)) }
        // Stored with every order: a megabyte of user id would be a megabyte per order.
        if let problem = PlaceOrder.idsProblem(userId: order.userId, shopId: order.shopId) { return .failure(DecodeFailure(problem)) }
        return .success(order)
    }

    public struct DecodeFailure: Error, CustomStringConvertible {
        public let description: String
        init(_ d: String) { description = d }
    }

    private static func path(_ keys: [any CodingKey]) -> String {
        keys.reduce("") { acc, key in
            if let i = key.intValue { return acc + "[\(i)]" }
            return acc.isEmpty ? key.stringValue : acc + "." + key.stringValue
        }
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "text"
        case is Int.Type, is Int64.Type, is Double.Type: "a number"
        case is [Any].Type: "a list"
        default: "\(type)"
        }
    }
}

extension RequestMetrics {
    /// The gateway's HTTP family: `erp_http_requests_total{route,status}`, `erp_http_request_duration_ms`.
    public static func http() -> RequestMetrics {
        RequestMetrics(counterName: "erp_http_requests_total", durationName: "erp_http_request_duration_ms",
                       help: "HTTP requests by route and status.", keyLabel: "route", outcomeLabel: "status")
    }
}

/// The first middleware of every router served with `HTTPServerLimits` (the gateway's and each
/// service's metrics server), for requests no route may serve: 400 `bad_host` to one that
/// `HostFieldCheck` found without a valid, single Host header field (RFC 9112 §3.2), and 501 to
/// CONNECT. `refused` gets each refusal's code and status (the gateway counts them).
public struct UnservableRequestAnswer: RouterMiddleware {
    public typealias Context = BasicRequestContext
    static let problem = HTTPField.Name(HostFieldCheck.problemField)!
    let refused: @Sendable (_ code: String, _ status: HTTPResponse.Status) -> Void

    public init(refused: @escaping @Sendable (_ code: String, _ status: HTTPResponse.Status) -> Void = { _, _ in }) { self.refused = refused }

    public func handle(_ request: Request, context: Context,
                       next: (Request, Context) async throws -> Response) async throws -> Response {
        if request.method == .connect {
            // Not a proxy. NIO sends no body after any answer to CONNECT (RFC 9110 §9.3.6 has a 2xx
            // open a tunnel), so the answer's framing is the connection's end: closed after it,
            // rather than left open with a client reading an unframed body until it times out.
            refused("method_not_implemented", .notImplemented)
            return HTTPAnswer.error(.notImplemented, "method_not_implemented", "CONNECT: this server is not a proxy",
                                    headers: [("Connection", "close")]).response(correlationId: nil)
        }
        guard let problem = request.headers[Self.problem] else { return try await next(request, context) }
        refused("bad_host", .badRequest)
        return HTTPAnswer.error(.badRequest, "bad_host", problem).response(correlationId: nil)
    }
}

/// A service's own HTTP window (its metrics server): `GET /metrics` with what `metrics` returns
/// in Prometheus's text format, and `GET /health`. Served with `HTTPServerLimits`, as the gateway.
public enum MetricsEndpoint {
    public static func router(metrics: @escaping @Sendable () -> String) -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: UnservableRequestAnswer())
        router.add(middleware: UnroutedAnswer { method, path in
            .error(.notFound, "not_found", "no route \(method) \(GatewayHTTP.shown(path)); this server serves GET /metrics and GET /health")
        })
        router.get("metrics") { _, _ in
            Response(status: .ok, headers: [.contentType: "text/plain; version=0.0.4"], body: .init(byteBuffer: ByteBuffer(string: metrics())))
        }
        router.get("health") { _, _ in HTTPAnswer(status: .ok, json: #"{"status":"ok"}"#).response(correlationId: nil) }
        return router
    }
}

/// Turns the router's bare "no such route" (an `HTTPError(.notFound)` thrown when no route takes
/// the path and method) into the JSON answer `answer` makes of the method and path (the
/// gateway's `GatewayHTTP.unrouted`, a metrics server's list of its two routes); `answered` gets
/// it and the time taken (the gateway counts it under `unrouted`).
struct UnroutedAnswer: RouterMiddleware {
    typealias Context = BasicRequestContext
    let answer: @Sendable (HTTPRequest.Method, String) -> HTTPAnswer
    var answered: @Sendable (HTTPAnswer, Duration) -> Void = { _, _ in }

    func handle(_ request: Request, context: Context,
                next: (Request, Context) async throws -> Response) async throws -> Response {
        let started = ContinuousClock.now
        do {
            return try await next(request, context)
        } catch let error as HTTPError where error.status == .notFound {
            let answer = answer(request.method, request.uri.path)
            answered(answer, ContinuousClock.now - started)
            // To HEAD too: the HTTP/1 encoder sends no body after a HEAD answer. The client's
            // correlation id comes back as it does from a route, so that a client logging by it
            // finds its 404 too.
            return answer.response(correlationId: GatewayHTTP.echoedCorrelationId(of: request))
        }
    }
}
