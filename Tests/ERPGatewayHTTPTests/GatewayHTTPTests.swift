import ERPCore
@testable import ERPGatewayHTTP
import ERPResilience
import ERPServices
import ERPTransport
import Foundation
import HTTPTypes
import Hummingbird
import HummingbirdTesting
import Testing

/// Stands in for the gateway service: remembers what it was asked, answers as told.
final class FakeGateway: GatewayOperations, @unchecked Sendable {
    let lock = NSLock()
    var placed: [(PlaceOrder, CallContext)] = []
    var placeError: RPCError?
    var status: OrderStatus = .confirmed
    /// When set, an order whose deadline has passed by this clock is not placed (as the
    /// services refuse one).
    var deadlineClock: (any ServiceClock)?

    func placeOrder(_ request: PlaceOrder, context: CallContext) async throws(RPCError) -> OrderView {
        let error: RPCError? = lock.withLock {
            placed.append((request, context))
            return placeError
        }
        if let error { throw error }
        if let deadlineClock, context.deadline <= deadlineClock.now { throw .deadlineExceeded }
        return OrderView(orderId: "order_1", userId: request.userId, shopId: request.shopId,
                         items: request.items.map { OrderItem(productId: $0.productId, quantity: $0.quantity, unitPrice: Money(minorUnits: 1_000)) },
                         totalAmount: Money(minorUnits: 1_000), status: status, reason: nil)
    }
    func fetchOrder(_ request: FetchOrder, context: CallContext) async throws(RPCError) -> OrderView {
        throw .rejected(code: "not_found", message: "no order \(request.orderId)")
    }
    func checkStock(_ request: CheckStock, context: CallContext) async throws(RPCError) -> StockLevel {
        StockLevel(shopId: request.shopId, productId: request.productId, available: 7, reserved: 1, sold: 2)
    }
    func getProduct(_ request: GetProduct, context: CallContext) async throws(RPCError) -> ProductInfo {
        throw .unavailable("the product service is not running")
    }
    func salesReport(_ request: GetSalesReport, context: CallContext) async throws(RPCError) -> SalesReport {
        SalesReport(lines: [], shops: [.init(shopId: "shop_malmo", orders: 3, amount: Money(minorUnits: 4_500))], cancellations: [],
                    paymentsProcessed: Money(minorUnits: 4_500), refunds: .zero())
    }
    func inventoryReport(_ request: GetInventoryReport, context: CallContext) async throws(RPCError) -> InventoryReport {
        throw .deadlineExceeded
    }
    func shopDevices(_ request: GetShopDevices, context: CallContext) async throws(RPCError) -> ShopDevices {
        guard request.shopId == "shop_malmo" else { throw .rejected(code: "not_found", message: "no shop \(request.shopId)") }
        return ShopDevices(shopId: "shop_malmo", devices: [.init(deviceId: "device_malmo_01", status: .online, lastSeen: 1, revision: DeviceRevision(value: 2))])
    }
    func deviceReport(_ request: GetDeviceReport, context: CallContext) async throws(RPCError) -> DeviceReport {
        DeviceReport(devices: [.init(deviceId: "device_malmo_01", shopId: "shop_malmo", status: .fault, revision: DeviceRevision(value: 8), updates: 4)])
    }
    /// Relayed requests, as their method and JSON.
    var relayed: [String] = []
    func relay<R: GatewayExposed>(_ request: R, context: CallContext) async throws(RPCError) -> R.Response {
        lock.withLock { relayed.append(R.method + " " + ((try? JSONCoding.encodeString(request)) ?? "?")) }
        if let vend = request as? Vend {
            return VendResult(vendId: vend.vendId, machineId: vend.machineId, shopId: "shop_malmo", productId: vend.productId,
                              quantity: vend.quantity, status: .dispensed, reason: nil) as! R.Response
        }
        if request is ListCampaigns { return CampaignList(campaigns: []) as! R.Response }
        if let get = request as? GetVend {
            return VendResult(vendId: get.vendId, machineId: "device_malmo_01", shopId: "shop_malmo", productId: "prod_01",
                              quantity: 1, status: .dispensed, reason: nil) as! R.Response
        }
        throw .unavailable("\(R.service) is down")
    }
}

struct FixedClock: ServiceClock { var now: Timestamp { .simulationEpoch } }

/// A clock the test moves by hand.
final class ManualClock: ServiceClock, @unchecked Sendable {
    private let lock = NSLock()
    private var current = Timestamp.simulationEpoch
    var now: Timestamp { lock.withLock { current } }
    func advance(by duration: Duration) { lock.withLock { current = current + duration } }
}

func makeApp(_ fake: FakeGateway) -> (some ApplicationProtocol, GatewayHTTP) {
    let http = GatewayHTTP(operations: fake, settings: GatewayHTTPSettings(apiKeys: ["secret"]), clock: FixedClock(),
                           ids: IDGenerator(random: SeededRandomSource(seed: 1)), hop: { body in await body() })
    return (Application(router: http.router()), http)
}

let orderJSON = #"{"userId":"user_001","shopId":"shop_malmo","items":[{"productId":"prod_01","quantity":2}]}"#

@Suite struct GatewayHTTPTests {
    @Test func placesAnOrderWithCorrelationAndIdempotencyCarriedThrough() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post,
                                     headers: [HTTPField.Name("X-API-Key")!: "secret", HTTPField.Name("X-Correlation-Id")!: "corr-42",
                                               HTTPField.Name("Idempotency-Key")!: "key-7"],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .created)
                #expect(response.headers[HTTPField.Name("X-Correlation-Id")!] == "corr-42")
                #expect(response.headers[.location] == "/orders/order_1")
                let view = try JSONDecoder().decode(OrderView.self, from: Data(buffer: response.body))
                #expect(view.status == .confirmed)
                #expect(view.items.first?.quantity == 2)
            }
        }
        #expect(fake.placed.count == 1)
        #expect(fake.placed.first?.1.idempotencyKey == "key-7")
        #expect(fake.placed.first?.1.correlationId == "corr-42")
    }

    @Test func aPendingOrderIsAccepted() async throws {
        let fake = FakeGateway()
        fake.status = .pending
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "secret"],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .accepted)
                #expect(response.headers[HTTPField.Name("X-Correlation-Id")!]?.hasPrefix("corr_") == true)
            }
        }
    }

    @Test func withoutAValidKeyItIs401AndNothingHappens() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            for headers: HTTPFields in [[:], [HTTPField.Name("X-API-Key")!: "wrong"]] {
                try await client.execute(uri: "/orders", method: .post, headers: headers, body: ByteBuffer(string: orderJSON)) { response in
                    #expect(response.status == .unauthorized)
                }
            }
            try await client.execute(uri: "/orders", method: .post, headers: [.authorization: "Bearer secret"],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .created)
            }
        }
        #expect(fake.placed.count == 1)
    }

    @Test(arguments: [
        ("{not json", "not valid JSON"),
        (#"{"shopId":"s","items":[{"productId":"p","quantity":1}]}"#, "missing field 'userId'"),
        (#"{"userId":"u","shopId":"s","items":[{"productId":"p","quantity":"two"}]}"#, "field 'items[0].quantity' must be a number"),
        (#"{"userId":"u","shopId":"s","items":[]}"#, "at least one item"),
        (#"{"userId":"u","shopId":"s","items":[{"productId":"p","quantity":0}]}"#, "items[0].quantity' must be a whole number from 1 to 1000000"),
        // Legal JSON, absurd numbers: refused here before any service prices them.
        (#"{"userId":"u","shopId":"s","items":[{"productId":"p","quantity":1},{"productId":"q","quantity":9223372036854775807}]}"#,
         "items[1].quantity' must be a whole number from 1 to 1000000"),
        (#"{"userId":"u","shopId":"s","items":["# + Array(repeating: #"{"productId":"p","quantity":1}"#, count: 101).joined(separator: ",") + "]}",
         "lists 101 items; an order takes at most 100"),
        (#"{"userId":"u","shopId":"s","items":[{"productId":"p","quantity":99999999999999999999}]}"#, "field 'items[0].quantity' has a value it cannot hold"),
        (#"{"userId":"u","shopId":"s","items":[{"productId":"p","quantity":2.5}]}"#, "field 'items[0].quantity' has a value it cannot hold"),
        (#"{"userId":""# + String(repeating: "u", count: 257) + #"","shopId":"s","items":[{"productId":"p","quantity":1}]}"#,
         "field 'userId' must be at most 256 bytes"),
        // A key twice: which one would count depends on the parser (a proxy that checked the
        // first userId must not see the order placed for the second).
        (#"{"userId":"u","shopId":"s","userId":"v","items":[{"productId":"p","quantity":1}]}"#, #"the key \"userId\" twice"#),
    ])
    func malformedBodiesAre400SayingWhatIsWrong(body: String, message: String) async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "secret"],
                                     body: ByteBuffer(string: body)) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains(message), "\(String(buffer: response.body))")
            }
        }
        #expect(fake.placed.isEmpty)
    }

    @Test func sheddingIs429WithRetryAfter() async throws {
        let fake = FakeGateway()
        fake.placeError = .overloaded(retryAfterMilliseconds: 1_500)
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "secret"],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "2")
            }
        }
    }

    @Test func eachAPIKeyHasItsOwnRateAndPastItIs429WithRetryAfter() async throws {
        let fake = FakeGateway()
        let clock = ManualClock()
        var settings = GatewayHTTPSettings(apiKeys: ["secret", "other"], rateLimitPerKey: TokenBucketSettings(capacity: 3, refillRatePerSecond: 0.5))
        settings.requestTimeout = .seconds(5)
        let http = GatewayHTTP(operations: fake, settings: settings, clock: clock,
                               ids: IDGenerator(random: SeededRandomSource(seed: 1)), hop: { body in await body() })
        let app = Application(router: http.router())
        let secret: HTTPFields = [HTTPField.Name("X-API-Key")!: "secret"]
        try await app.test(.router) { client in
            // A burst of 3 passes (orders and reads alike take a token), the 4th is shed.
            for _ in 0..<2 {
                try await client.execute(uri: "/orders", method: .post, headers: secret, body: ByteBuffer(string: orderJSON)) { #expect($0.status == .created) }
            }
            try await client.execute(uri: "/inventory/shop_malmo/prod_01", method: .get, headers: secret) { #expect($0.status == .ok) }
            try await client.execute(uri: "/orders", method: .post, headers: secret, body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .tooManyRequests)
                #expect(response.headers[.retryAfter] == "2", "one token every 2 s")
                let text = String(buffer: response.body)
                #expect(text.contains("rate_limited") && text.contains("bursts of 3"), "\(text)")
            }
            // The same key as a bearer token is the same client; another key has its own bucket.
            try await client.execute(uri: "/inventory/shop_malmo/prod_01", method: .get, headers: [.authorization: "Bearer secret"]) {
                #expect($0.status == .tooManyRequests)
            }
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "other"],
                                     body: ByteBuffer(string: orderJSON)) { #expect($0.status == .created) }
            // Health and metrics are never limited; a bad key is still 401, not 429.
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "wrong"],
                                     body: ByteBuffer(string: orderJSON)) { #expect($0.status == .unauthorized) }
            // After the refill interval, one more request passes.
            clock.advance(by: .seconds(2))
            try await client.execute(uri: "/orders", method: .post, headers: secret, body: ByteBuffer(string: orderJSON)) { #expect($0.status == .created) }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"erp_http_requests_total{route="POST /orders",status="429"} 1"#), "\(text)")
            }
        }
        #expect(fake.placed.count == 4, "a shed request never reaches the gateway service")
    }

    @Test func withoutARateLimitNoKeyIsShed() async throws {
        let (app, _) = makeApp(FakeGateway())
        try await app.test(.router) { client in
            for _ in 0..<200 {
                try await client.execute(uri: "/inventory/shop_malmo/prod_01", method: .get,
                                         headers: [HTTPField.Name("X-API-Key")!: "secret"]) { #expect($0.status == .ok) }
            }
        }
    }

    @Test func unknownPathsAre404AndWrongMethods405SayingWhatExists() async throws {
        let (app, _) = makeApp(FakeGateway())
        try await app.test(.router) { client in
            try await client.execute(uri: "/nothing/here", method: .get) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[.contentType] == "application/json")
                let text = String(buffer: response.body)
                #expect(text.contains("no route /nothing/here") && text.contains("POST /orders"), "\(text)")
            }
            try await client.execute(uri: "/orders/order_1", method: .delete, headers: [HTTPField.Name("X-API-Key")!: "secret"]) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "GET, HEAD")
                #expect(String(buffer: response.body).contains("DELETE is not served at /orders/order_1; use GET or HEAD"))
            }
            try await client.execute(uri: "/orders", method: .get) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[.allow] == "POST")
            }
            // The client's correlation id comes back on these as on a route's answer; one a route
            // would refuse does not.
            let correlation = HTTPField.Name("X-Correlation-Id")!
            try await client.execute(uri: "/nothing/here", method: .get, headers: [correlation: "trace-404"]) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[correlation] == "trace-404")
            }
            try await client.execute(uri: "/orders", method: .get, headers: [correlation: "trace-405"]) { response in
                #expect(response.status == .methodNotAllowed)
                #expect(response.headers[correlation] == "trace-405")
            }
            try await client.execute(uri: "/nothing/here", method: .get, headers: [correlation: String(repeating: "x", count: 500)]) { response in
                #expect(response.status == .notFound)
                #expect(response.headers[correlation] == nil)
            }
            // A route's own 404 (an unknown order) is still the route's answer.
            try await client.execute(uri: "/orders/order_9", method: .get, headers: [HTTPField.Name("X-API-Key")!: "secret"]) { response in
                #expect(response.status == .notFound)
                #expect(String(buffer: response.body).contains("no order order_9"))
            }
        }
    }

    @Test(arguments: [
        (RPCError.rejected(code: "unknown_shop", message: "no shop shop_x"), HTTPResponse.Status.badRequest, "no shop shop_x"),
        (RPCError.rejected(code: "idempotency_key_reused", message: "Idempotency-Key 'k' was first used for another request"),
         .unprocessableContent, "Idempotency-Key 'k'"),
        // A retry-after hint off the wire as large as it gets: clamped to a day, no trap.
        (RPCError.overloaded(retryAfterMilliseconds: .max), .tooManyRequests, "retry after 86400s"),
        (RPCError.overloaded(retryAfterMilliseconds: .min), .tooManyRequests, "retry after 1s"),
        // A service refusing the gateway's own call is the system's fault, not the client's.
        (RPCError.rejected(code: "forbidden", message: "an unknown key may not call order.createOrder on order"), .badGateway, "unknown key"),
        (RPCError.rejected(code: "too_large", message: "the answer to campaign.list is 17000000 bytes"), .badGateway, "campaign.list"),
    ])
    func orderRefusalsMapToStatuses(error: RPCError, status: HTTPResponse.Status, message: String) async throws {
        let fake = FakeGateway()
        fake.placeError = error
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "secret"],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == status)
                #expect(String(buffer: response.body).contains(message), "\(String(buffer: response.body))")
            }
        }
    }

    @Test func apiKeysAreComparedWholly() {
        let keys = ["secret", "other-key"]
        #expect(GatewayHTTP.isAdmitted("secret", among: keys) && GatewayHTTP.isAdmitted("other-key", among: keys))
        let padded = "secret" + String(repeating: "\u{0}", count: 256)
        for guess in ["", "s", "secre", "secret ", "secreT", "secrets", "other-ke", "\u{0}secret", "sécret", padded] {
            #expect(!GatewayHTTP.isAdmitted(guess, among: keys), "\(guess)")
        }
        #expect(!GatewayHTTP.isAdmitted("secret", among: []))
    }

    @Test func readsMapErrorsToStatuses() async throws {
        let (app, _) = makeApp(FakeGateway())
        try await app.test(.router) { client in
            let key: HTTPFields = [HTTPField.Name("X-API-Key")!: "secret"]
            try await client.execute(uri: "/orders/order_9", method: .get, headers: key) { #expect($0.status == .notFound) }
            try await client.execute(uri: "/products/prod_01", method: .get, headers: key) { #expect($0.status == .serviceUnavailable) }
            try await client.execute(uri: "/inventory/shop_malmo/prod_01", method: .get, headers: key) { response in
                #expect(response.status == .ok)
                let level = try JSONDecoder().decode(StockLevel.self, from: Data(buffer: response.body))
                #expect(level.available == 7)
            }
            try await client.execute(uri: "/health", method: .get) { #expect($0.status == .ok) }
            try await client.execute(uri: "/reports/sales", method: .get, headers: key) { response in
                #expect(response.status == .ok)
                let report = try JSONDecoder().decode(SalesReport.self, from: Data(buffer: response.body))
                #expect(report.shops.first?.orders == 3)
            }
            try await client.execute(uri: "/reports/inventory", method: .get, headers: key) { #expect($0.status == .gatewayTimeout) }
            try await client.execute(uri: "/reports/devices", method: .get, headers: key) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""status":"fault""#))
            }
            try await client.execute(uri: "/reports/devices", method: .get) { #expect($0.status == .unauthorized) }
            try await client.execute(uri: "/shops/shop_malmo/devices", method: .get, headers: key) { response in
                #expect(response.status == .ok)
                let devices = try JSONDecoder().decode(ShopDevices.self, from: Data(buffer: response.body))
                #expect(devices.devices.map(\.status) == [.online])
            }
            try await client.execute(uri: "/shops/shop_atlantis/devices", method: .get, headers: key) { #expect($0.status == .notFound) }
        }
    }

    @Test func metricsCountRequestsByRouteAndStatus() async throws {
        let (app, http) = makeApp(FakeGateway())
        try await app.test(.router) { client in
            try await client.execute(uri: "/orders", method: .post, headers: [HTTPField.Name("X-API-Key")!: "secret"],
                                     body: ByteBuffer(string: orderJSON)) { _ in }
            try await client.execute(uri: "/orders", method: .post, body: ByteBuffer(string: orderJSON)) { _ in }
            try await client.execute(uri: "/metrics", method: .get) { response in
                let text = String(buffer: response.body)
                #expect(text.contains(#"erp_http_requests_total{route="POST /orders",status="201"} 1"#), "\(text)")
                #expect(text.contains(#"erp_http_requests_total{route="POST /orders",status="401"} 1"#))
                #expect(text.contains(#"erp_http_request_duration_ms_count{route="POST /orders"} 2"#))
            }
        }
        #expect(http.metrics.prometheusText().contains("erp_http_requests_total"))
    }

    /// The relayed routes: a POST's body is decoded and checked at the door (a 400 naming the
    /// field), a good one reaches its service once; a GET relays without a body; a service that
    /// cannot answer is a 503.
    @Test func relayedRoutesCheckTheirBodiesAndReachTheirServices() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            let headers: HTTPFields = [.init("X-API-Key")!: "secret", .contentType: "application/json"]
            let good = #"{"vendId":"v1","machineId":"device_malmo_01","productId":"prod_01","quantity":2}"#
            try await client.execute(uri: "/vends", method: .post, headers: headers, body: ByteBuffer(string: good)) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""status":"dispensed""#))
            }
            let tooMany = #"{"vendId":"v2","machineId":"device_malmo_01","productId":"prod_01","quantity":500}"#
            try await client.execute(uri: "/vends", method: .post, headers: headers, body: ByteBuffer(string: tooMany)) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("'quantity'"))
            }
            try await client.execute(uri: "/campaigns", method: .post, headers: headers, body: ByteBuffer(string: #"{"name":"x"}"#)) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("missing field 'productIds'"))
            }
            try await client.execute(uri: "/campaigns", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body) == #"{"campaigns":[]}"#)
            }
            // A page of campaigns: the query reaches the service; a bad one is refused at the door.
            try await client.execute(uri: "/campaigns?after=camp_7&limit=5", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
            }
            for bad in ["/campaigns?limit=0", "/campaigns?limit=101", "/campaigns?limit=ten"] {
                try await client.execute(uri: bad, method: .get, headers: headers) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                    #expect(String(buffer: response.body).contains("limit must be"), "\(bad)")
                }
            }
            try await client.execute(uri: "/products", method: .get, headers: headers) { response in
                #expect(response.status == .serviceUnavailable)
                // The transport's reason (endpoints, socket counters) stays in the gateway's log.
                #expect(!String(buffer: response.body).contains("is down"), "\(String(buffer: response.body))")
                #expect(String(buffer: response.body).contains("cannot be reached now"))
            }
            // A body in an encoding the gateway does not decode is refused as such, not as bad JSON.
            var gzipped = headers
            gzipped[.contentEncoding] = "gzip"
            try await client.execute(uri: "/vends", method: .post, headers: gzipped, body: ByteBuffer(string: good)) { response in
                #expect(response.status == .unsupportedMediaType)
                #expect(String(buffer: response.body).contains("Content-Encoding gzip is not read here"), "\(String(buffer: response.body))")
            }
            try await client.execute(uri: "/campaigns?after=%00", method: .get, headers: headers) { response in
                #expect(response.status == .badRequest)
                #expect(String(buffer: response.body).contains("after must not hold control characters"), "\(String(buffer: response.body))")
            }
        }
        // Only the well-formed requests reached a service.
        #expect(fake.relayed.map { $0.prefix { $0 != " " } } == ["vm.vend", "campaign.list", "campaign.list", "product.list"])
        #expect(fake.relayed[2] == #"campaign.list {"after":"camp_7","limit":5}"#)
    }

    /// Path ids are percent-decoded, as the JSON that created them was not encoded: a vend created
    /// as "vé" is read back at /vends/v%C3%A9. An id that decodes to a control character (a NUL
    /// would be cut short by SQLite) or is not valid encoding is a 400, not a lookup.
    @Test func pathIdsArePercentDecodedAndControlCharactersRefused() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            let headers: HTTPFields = [.init("X-API-Key")!: "secret"]
            try await client.execute(uri: "/vends/v%C3%A9%20a%2Bb", method: .get, headers: headers) { response in
                #expect(response.status == .ok)
                #expect(String(buffer: response.body).contains(#""vendId":"vé a+b""#))
            }
            for bad in ["/vends/v%00x", "/vends/v%0Ax", "/vends/v%ZZ", "/vends/v%C3"] {
                try await client.execute(uri: bad, method: .get, headers: headers) { response in
                    #expect(response.status == .badRequest, "\(bad)")
                }
            }
            try await client.execute(uri: "/orders/order%001", method: .get, headers: headers) { response in
                #expect(response.status == .badRequest)
            }
        }
        #expect(fake.relayed == [#"vm.getVend {"vendId":"vé a+b"}"#])
    }

    /// A correlation id travels in every hop's header and log line: one of 65 kB (128 characters
    /// with combining marks passed the old check) left orders pending when a later hop's header
    /// outgrew the wire format. Past 128 bytes it is refused, and the answer names a fresh id.
    @Test func anOverlongCorrelationIdIsRefused() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            for id in [String(repeating: "c", count: 129), "c" + String(repeating: "\u{301}", count: 30_000)] {
                try await client.execute(uri: "/orders", method: .post,
                                         headers: [HTTPField.Name("X-API-Key")!: "secret", HTTPField.Name("X-Correlation-Id")!: id],
                                         body: ByteBuffer(string: orderJSON)) { response in
                    #expect(response.status == .badRequest, "\(id.utf8.count) bytes")
                    #expect(String(buffer: response.body).contains("\"bad_correlation_id\""), "\(String(buffer: response.body))")
                    #expect(response.headers[HTTPField.Name("X-Correlation-Id")!].map { $0 != id && $0.utf8.count <= 128 } == true)
                }
            }
            #expect(fake.placed.isEmpty)
            let longest = String(repeating: "c", count: 128)
            try await client.execute(uri: "/orders", method: .post,
                                     headers: [HTTPField.Name("X-API-Key")!: "secret", HTTPField.Name("X-Correlation-Id")!: longest],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .created)
                #expect(response.headers[HTTPField.Name("X-Correlation-Id")!] == longest)
            }
        }
    }

    /// An empty Idempotency-Key would be one key shared by every client, and one of kilobytes
    /// would be stored and quoted back: refused, not passed on; 255 bytes are kept.
    @Test func anEmptyOrOverlongIdempotencyKeyIsRefused() async throws {
        let fake = FakeGateway()
        let (app, _) = makeApp(fake)
        try await app.test(.router) { client in
            for (key, says) in [("", "Idempotency-Key is empty"), ("   ", "Idempotency-Key is empty"),
                                (String(repeating: "k", count: 256), "Idempotency-Key is 256 bytes; at most 255"),
                                (String(repeating: "k", count: 60_000), "Idempotency-Key is 60000 bytes")] {
                try await client.execute(uri: "/orders", method: .post,
                                         headers: [HTTPField.Name("X-API-Key")!: "secret", HTTPField.Name("Idempotency-Key")!: key],
                                         body: ByteBuffer(string: orderJSON)) { response in
                    #expect(response.status == .badRequest, "\(key.count)")
                    #expect(String(buffer: response.body).contains(says), "\(key.count)")
                    #expect(String(buffer: response.body).contains("\"bad_idempotency_key\""), "a code of its own, not a bad body's")
                }
            }
            #expect(fake.placed.isEmpty)
            let longest = String(repeating: "k", count: 255)
            try await client.execute(uri: "/orders", method: .post,
                                     headers: [HTTPField.Name("X-API-Key")!: "secret", HTTPField.Name("Idempotency-Key")!: longest],
                                     body: ByteBuffer(string: orderJSON)) { response in
                #expect(response.status == .created)
            }
            #expect(fake.placed.map(\.1.idempotencyKey) == [longest])
        }
    }

}
