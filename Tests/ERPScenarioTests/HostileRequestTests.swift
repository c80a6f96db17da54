import ERPCore
import ERPServices
import ERPSimulation
import ERPSimulationBackend
import ERPTransport
import Foundation
import ERPTestSupport
import Testing

/// Requests that are well-formed but absurd or contradictory, sent straight to the services (past
/// the gateway's own checks, as any admitted peer could): each gets a typed refusal, and no service
/// stops. Before the checked arithmetic, the first one trapped the order service while it priced
/// the order.
@Suite struct HostileRequestTests {
    @Test func absurdQuantitiesAreRefusedAndNoServiceStops() async throws {
        let fixtures = try loadFixtures()
        let shop = fixtures.shops[0].id
        let product = fixtures.shops[0].stock[0].productId
        let starts = try await SimulatedServices.run { transport, runtime in
            let metadata = { runtime.metadata(timeout: .seconds(2)) }
            // Int.max units: pricing it overflowed and trapped the order service.
            let huge = CreateOrder(userId: "user_001", shopId: shop, items: [OrderLine(productId: product, quantity: .max)])
            #expect(await SimulatedServices.refusal { try await transport.call(huge, metadata: metadata()) } == "bad_request")
            // Two lines that only overflow when added up.
            let half = CreateOrder(userId: "user_001", shopId: shop, items: [OrderLine(productId: product, quantity: .max / 2 + 1),
                                                                            OrderLine(productId: product, quantity: .max / 2 + 1)])
            #expect(await SimulatedServices.refusal { try await transport.call(half, metadata: metadata()) } == "bad_request")
            let many = CreateOrder(userId: "user_001", shopId: shop,
                                   items: Array(repeating: OrderLine(productId: product, quantity: 1), count: OrderLine.countMax + 1))
            #expect(await SimulatedServices.refusal { try await transport.call(many, metadata: metadata()) } == "bad_request")
            // Inventory's own sum over repeated lines, asked directly.
            let reserve = ReserveStock(orderId: "order_hostile", shopId: shop, items: [OrderLine(productId: product, quantity: .max),
                                                                                         OrderLine(productId: product, quantity: .max)])
            #expect(await SimulatedServices.refusal { try await transport.call(reserve, metadata: metadata()) } == "bad_request")
            // The service is still there and still serves a sane order.
            let sane = try await transport.call(CreateOrder(userId: "user_001", shopId: shop, items: [OrderLine(productId: product, quantity: 1)]),
                                                metadata: metadata())
            #expect(sane.status == .confirmed)
        }
        #expect(starts.count == ServiceCatalog.startOrder.count)
        for (node, count) in starts { #expect(count == 1, "\(node) started \(count) times") }
    }

    /// Vends and campaigns from a hostile peer: absurd quantities, percentages and windows, an
    /// unknown machine or product, a vend id reused for another sale, a sale straight to
    /// inventory past the vending bounds. Each is a typed refusal; a repeated vend sells once.
    @Test func hostileVendsAndCampaignsAreRefusedAndNoServiceStops() async throws {
        let fixtures = try loadFixtures()
        let machine = try #require(fixtures.devices.first { $0.kind == .vendingMachine })
        let sensor = try #require(fixtures.devices.first { $0.kind == .shelfSensor })
        let product = try #require(fixtures.shops.first { $0.id == machine.shopId }?.stock.first).productId
        let starts = try await SimulatedServices.run { transport, runtime in
            let metadata = { runtime.metadata(timeout: .seconds(3)) }
            for bad in [Vend(vendId: "v-huge", machineId: machine.id, productId: product, quantity: .max),
                        Vend(vendId: "v-zero", machineId: machine.id, productId: product, quantity: 0),
                        Vend(vendId: "", machineId: machine.id, productId: product, quantity: 1),
                        // Stored, it could never be read back (GET /vends/{id} refuses it in a path).
                        Vend(vendId: "v\nFAKEVEND", machineId: machine.id, productId: product, quantity: 1)] {
                #expect(await SimulatedServices.refusal { try await transport.call(bad, metadata: metadata()) } == "bad_request")
            }
            #expect(await SimulatedServices.refusal { try await transport.call(Vend(vendId: "v-1", machineId: "nope", productId: product, quantity: 1),
                                                                 metadata: metadata()) } == "unknown_machine")
            #expect(await SimulatedServices.refusal { try await transport.call(Vend(vendId: "v-3", machineId: machine.id, productId: "nope", quantity: 1),
                                                                 metadata: metadata()) } == "unknown_product")
            // A shelf sensor is no vending machine, whoever asks the shop.
            let operation = VendingMachineOperation(operationId: "op-1", machineId: sensor.id, operation: .dispense, productId: product, quantity: 1)
            #expect(await SimulatedServices.refusal { try await transport.call(operation, metadata: metadata()) } == "not_a_vending_machine")
            #expect(await SimulatedServices.refusal { try await transport.call(SellStock(saleId: "s-1", shopId: machine.shopId, productId: product, quantity: .max),
                                                                 metadata: metadata()) } == "bad_request")
            // The same vend twice sells once; the same id for another sale is refused.
            let vend = Vend(vendId: "v-2", machineId: machine.id, productId: product, quantity: 2)
            let first = try await transport.call(vend, metadata: metadata())
            let again = try await transport.call(vend, metadata: metadata())
            #expect(first.status == .dispensed && again.status == .dispensed)
            var other = vend
            other.quantity = 3
            #expect(await SimulatedServices.refusal { try await transport.call(other, metadata: metadata()) } == "vend_id_reused")
            let level = try await transport.call(CheckStock(shopId: machine.shopId, productId: product), metadata: metadata())
            let initial = try #require(fixtures.shops.first { $0.id == machine.shopId }?.stock.first).quantity
            #expect(level.sold == 2 && level.available == initial - 2)
            for bad in [CreateCampaign(name: "x", productIds: [product], percentOff: 1_000, lastsSeconds: 60),
                        CreateCampaign(name: "x", productIds: [product], percentOff: 10, lastsSeconds: .max),
                        CreateCampaign(name: "x", productIds: [product], percentOff: 10, startsAt: .max, lastsSeconds: 60),
                        CreateCampaign(name: "x", productIds: [product], percentOff: 10, endsAt: 1),
                        CreateCampaign(name: "x", productIds: [product], percentOff: 10, startsAt: 0, lastsSeconds: 60),  // over already
                        CreateCampaign(name: "x", productIds: [], percentOff: 10, lastsSeconds: 60)] {
                #expect(await SimulatedServices.refusal { try await transport.call(bad, metadata: metadata()) } == "bad_request")
            }
            #expect(await SimulatedServices.refusal { try await transport.call(CreateCampaign(name: "x", productIds: ["prod_nope"], percentOff: 10, lastsSeconds: 60),
                                                                 metadata: metadata()) } == "unknown_product")
        }
        for (node, count) in starts { #expect(count == 1, "\(node) started \(count) times") }
    }

    /// Ids and names bounded in bytes on every way in, not in characters (one character may carry
    /// any number of combining marks): a trial made 21 campaigns whose names were each one
    /// character of 800 kB, and the list of them outgrew a message; and `gateway.placeOrder` over
    /// ZeroMQ took user ids HTTP refuses (empty, megabytes), whose events then outgrew the relay's
    /// batches.
    @Test func idsAndNamesAreBoundedInBytesOnEveryWayIn() async throws {
        let fixtures = try loadFixtures()
        let machine = try #require(fixtures.devices.first { $0.kind == .vendingMachine })
        let shop = fixtures.shops[0].id
        let product = fixtures.shops[0].stock[0].productId
        let accented = "a" + String(repeating: "\u{301}", count: 1_000)
        #expect(accented.count == 1)
        _ = try await SimulatedServices.run { transport, runtime in
            let metadata = { runtime.metadata(timeout: .seconds(2)) }
            let line = [OrderLine(productId: product, quantity: 1)]
            for user in ["", String(repeating: "u", count: PlaceOrder.userIdByteCountMax + 1), "user\n2"] {
                #expect(await SimulatedServices.refusal { try await transport.call(PlaceOrder(userId: user, shopId: shop, items: line), metadata: metadata()) }
                        == "bad_request", "gateway.placeOrder, a user id of \(user.utf8.count) bytes")
                #expect(await SimulatedServices.refusal { try await transport.call(CreateOrder(userId: user, shopId: shop, items: line), metadata: metadata()) }
                        == "bad_request", "order.createOrder, a user id of \(user.utf8.count) bytes")
            }
            #expect(await SimulatedServices.refusal {
                try await transport.call(Vend(vendId: accented, machineId: machine.id, productId: product, quantity: 1), metadata: metadata())
            } == "bad_request")
            #expect(await SimulatedServices.refusal {
                try await transport.call(CreateCampaign(name: accented, productIds: [product], percentOff: 10, lastsSeconds: 60), metadata: metadata())
            } == "bad_request")
            let longest = String(repeating: "u", count: PlaceOrder.userIdByteCountMax)
            let placed = try await transport.call(PlaceOrder(userId: longest, shopId: shop, items: line), metadata: metadata())
            #expect(placed.userId == longest)
        }
    }

    /// `GET /campaigns` answered every campaign ever made in one message, which a trial grew past
    /// the message limit (the gateway then lost its connection to campaign for good). Now a page
    /// at a time, oldest first, with the `after` that reads the next.
    @Test func campaignsAreListedAPageAtATime() async throws {
        let fixtures = try loadFixtures()
        let product = fixtures.shops[0].stock[0].productId
        _ = try await SimulatedServices.run { transport, runtime in
            let metadata = { runtime.metadata(timeout: .seconds(2)) }
            var made: [String] = []
            for n in 1...5 {
                let campaign = try await transport.call(CreateCampaign(name: "c\(n)", productIds: [product], percentOff: 10, lastsSeconds: 600),
                                                        metadata: metadata())
                made.append(campaign.campaignId)
                await runtime.sleep(for: .milliseconds(5))
            }
            var seen: [String] = [], after: String?, pages = 0
            repeat {
                let page = try await transport.call(ListCampaigns(after: after, limit: 2), metadata: metadata())
                seen += page.campaigns.map(\.campaignId)
                after = page.next
                pages += 1
            } while after != nil && pages < 10
            #expect(seen == made && pages == 3)
            #expect(try await transport.call(ListCampaigns(), metadata: metadata()).campaigns.count == 5)
            #expect(await SimulatedServices.refusal { try await transport.call(ListCampaigns(limit: 0), metadata: metadata()) } == "bad_request")
            #expect(await SimulatedServices.refusal { try await transport.call(ListCampaigns(after: "camp_nope"), metadata: metadata()) } == "not_found")
        }
    }

    @Test func anOrderForAShopThatDoesNotExistIsRefused() async throws {
        let fixtures = try loadFixtures()
        let product = fixtures.shops[0].stock[0].productId
        _ = try await SimulatedServices.run { transport, runtime in
            let order = CreateOrder(userId: "user_001", shopId: "shop_atlantis", items: [OrderLine(productId: product, quantity: 1)])
            #expect(await SimulatedServices.refusal { try await transport.call(order, metadata: runtime.metadata(timeout: .seconds(2))) } == "unknown_shop")
        }
    }

    @Test func anIdempotencyKeyReusedWithAnotherBodyIsRefusedNamingTheKey() async throws {
        let fixtures = try loadFixtures()
        let shop = fixtures.shops[0].id
        let stock = fixtures.shops[0].stock
        _ = try await SimulatedServices.run { transport, runtime in
            let first = CreateOrder(userId: "user_001", shopId: shop, items: [OrderLine(productId: stock[0].productId, quantity: 1)])
            let placed = try await transport.call(first, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: "key-1"))
            // The same request again: the first order, not a second one.
            let again = try await transport.call(first, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: "key-1"))
            #expect(again.orderId == placed.orderId)
            // Another body under the same key, in each field the key covers.
            var otherQuantity = first; otherQuantity.items[0].quantity = 2
            var otherProduct = first; otherProduct.items[0].productId = stock[1].productId
            var otherUser = first; otherUser.userId = "user_002"
            for other in [otherQuantity, otherProduct, otherUser] {
                do {
                    _ = try await transport.call(other, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: "key-1"))
                    Issue.record("a reused key with another body was answered")
                } catch RPCError.rejected(let code, let message) {
                    #expect(code == "idempotency_key_reused")
                    #expect(message.contains("key-1") && message.contains(placed.orderId))
                }
            }
        }
    }

    /// A device report the gateway cannot use gets a typed refusal or a counted drop, never a crash
    /// and never a half-applied change.
    @Test func badDeviceReportsAreRefusedOrDropped() async throws {
        let fixtures = try loadFixtures()
        let device = fixtures.devices[0].id
        _ = try await SimulatedServices.run { transport, runtime in
            let metadata = { runtime.metadata(timeout: .seconds(2)) }
            #expect(await SimulatedServices.refusal { try await transport.call(ReportDevice(deviceId: "device_nobody", sequence: 1, status: .online),
                                                                  metadata: metadata()) } == "unknown_device")
            #expect(await SimulatedServices.refusal { try await transport.call(ReportDevice(deviceId: device, sequence: .max, status: .online),
                                                                  metadata: metadata()) } == "bad_request")
            #expect(await SimulatedServices.refusal { try await transport.call(ReportDevice(deviceId: device, sequence: -5, status: .online),
                                                                  metadata: metadata()) } == "bad_request")
            let first = try await transport.call(ReportDevice(deviceId: device, sequence: 7, status: .fault), metadata: metadata())
            #expect(first.accepted && first.confirmedByShop)
            // The same report again, and an older one: dropped, not applied.
            let again = try await transport.call(ReportDevice(deviceId: device, sequence: 7, status: .online), metadata: metadata())
            let older = try await transport.call(ReportDevice(deviceId: device, sequence: 3, status: .online), metadata: metadata())
            #expect(!again.accepted && !older.accepted)
            // Each says the newest sequence held, past which a device whose counter went back
            // must count (a trial's device was locked out for good after its clock was corrected).
            #expect(again.lastSequence == 7 && older.lastSequence == 7 && first.lastSequence == nil)
            // The shop refuses a device it does not have, and a stale revision changes nothing.
            #expect(await SimulatedServices.refusal { try await transport.call(UpdateDeviceStatus(deviceId: "device_nobody", shopId: "shop_malmo", status: .online,
                                                                                     lastSeen: 0, revision: DeviceRevision(value: 2)),
                                                                  metadata: metadata()) } == "unknown_device")
            let shopId = fixtures.devices[0].shopId
            // Data out of range, or about a product the device's shop does not stock.
            #expect(await SimulatedServices.refusal { try await transport.call(ReportDeviceData(deviceId: device, sequence: 8, dataType: .restock,
                                                                                   productId: "prod_01", quantity: .max), metadata: metadata()) } == "bad_request")
            #expect(await SimulatedServices.refusal { try await transport.call(ReportDeviceData(deviceId: device, sequence: 8, dataType: .restock,
                                                                                   productId: "prod_nothing", quantity: 1), metadata: metadata()) } == "unknown_product")
            let stale = try await transport.call(UpdateDeviceStatus(deviceId: device, shopId: shopId, status: .online, lastSeen: 0,
                                                                    revision: DeviceRevision.reported(sequence: 3)!), metadata: metadata())
            #expect(!stale.applied)
        }
    }

    /// An event no consumer can ever apply (an unsupported major version, a payload its consumer
    /// refuses) is dead-lettered at once with its reason, and the rest of the log flows on.
    @Test func poisonEventsAreDeadLetteredAtOnceWithTheirReason() async throws {
        let fixtures = try loadFixtures()
        let device = fixtures.devices[0]
        _ = try await SimulatedServices.run { transport, runtime in
            let future = EventEnvelope(eventId: "evt_future", eventType: "OrderCreated", eventVersion: "9.0", source: "order-service",
                                       timestamp: 1, correlationId: "c", data: .object(["orderId": .string("o")]))
            let exploded = try EventEnvelope(DeviceStatusUpdated(deviceId: device.id, shopId: device.shopId, status: .online, lastSeen: 1,
                                                                 revision: DeviceRevision(value: 4)),
                                             eventId: "evt_exploded", source: .iotGateway, timestamp: .simulationEpoch, correlationId: "c")
            var broken = exploded
            broken.data = .object(["deviceId": .string(device.id), "shopId": .string(device.shopId), "status": .string("exploded"),
                                   "lastSeen": .int(1), "revision": .int(4)])
            _ = try await transport.call(AppendEvents(events: [future, broken]), metadata: runtime.metadata(timeout: .seconds(2)))
            await runtime.sleep(for: .seconds(3))
            let letters = try await transport.call(ListDeadLetters(), metadata: runtime.metadata(timeout: .seconds(2))).letters
            let reportFuture = letters.first { $0.eventId == "evt_future" && $0.group == "report" }
            #expect(reportFuture?.attempts == 1, "\(letters)")
            #expect(reportFuture?.lastError?.contains("undecodable_event") == true && reportFuture?.lastError?.contains("9.0") == true)
            let shopExploded = letters.first { $0.eventId == "evt_exploded" && $0.group == "shop" }
            #expect(shopExploded?.attempts == 1 && shopExploded?.lastError?.contains("exploded") == true, "\(letters)")
            // The bus goes on: a good order after them still completes.
            let order = try await transport.call(CreateOrder(userId: "user_001", shopId: fixtures.shops[0].id,
                                                             items: [OrderLine(productId: fixtures.shops[0].stock[0].productId, quantity: 1)]),
                                                 metadata: runtime.metadata(timeout: .seconds(2)))
            #expect(order.status == .confirmed)
        }
    }

    /// Payments whose amounts take the report's running revenue past Int64 (a producer's events
    /// are not judged by the bus): the one that would overflow is dead-lettered as a bad event,
    /// the report keeps answering, and no service restarts. Before, SQLite carried the total on in
    /// floating point and every read of the sales report trapped the report service (found by a
    /// red-team run: the supervisor restarted it until it gave up).
    @Test func aRunningTotalThatWouldOverflowIsABadEventNotATrap() async throws {
        let starts = try await SimulatedServices.run { transport, runtime in
            func payment(_ i: Int) throws -> EventEnvelope {
                try EventEnvelope(PaymentProcessed(paymentId: "pay_big_\(i)", orderId: "order_big_\(i)", amount: Money(minorUnits: .max)),
                                  eventId: "evt_big_\(i)", source: .payment, timestamp: .simulationEpoch, correlationId: "c")
            }
            _ = try await transport.call(AppendEvents(events: [try payment(1), try payment(2)]), metadata: runtime.metadata(timeout: .seconds(2)))
            await runtime.sleep(for: .seconds(3))
            let report = try await transport.call(GetSalesReport(), metadata: runtime.metadata(timeout: .seconds(2)))
            #expect(report.paymentsProcessed.minorUnits == .max, "the first payment counts; the second would overflow")
            let letters = try await transport.call(ListDeadLetters(), metadata: runtime.metadata(timeout: .seconds(2))).letters
            let refused = letters.first { $0.eventId == "evt_big_2" && $0.group == "report" }
            #expect(refused?.attempts == 1 && refused?.lastError?.contains("bad_event") == true, "\(letters)")
            #expect(!letters.contains { $0.eventId == "evt_big_1" && $0.group == "report" })
        }
        for (node, count) in starts { #expect(count == 1, "\(node) restarted") }
    }

    /// The bus takes from a service only the event types that service publishes, under its own
    /// name: a node that calls as the order service cannot append inventory's events, nor its own
    /// type with payment as the source.
    @Test func theBusTakesFromAServiceOnlyTheEventsItPublishes() async throws {
        let outcome = try await HeavyWork.shared.run {
            try await onThreadOfItsOwn { () throws -> (String, String, Int) in
                let directory = FileManager.default.temporaryDirectory.appendingPathComponent("erp-bus-producers-\(UInt64.random(in: 0...UInt64.max))").path
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                defer { try? FileManager.default.removeItem(atPath: directory) }
                let world = SimWorld(seed: 7, storageDirectory: directory, trace: try SimTrace())
                world.addServices([.eventBus], settings: ServiceSettings(fixtures: try loadFixtures()))
                world.node(serving: .eventBus)!.start()
                let posing = world.addNode("order")
                posing.start()
                world.run(until: world.elapsed + .milliseconds(50))
                final class Seen: @unchecked Sendable { var refusal = ""; var forgedSource = ""; var appended = -1 }
                let seen = Seen()
                let runtime = posing.runtime!
                runtime.spawn("test") {
                    let reserved = try! EventEnvelope(InventoryReserved(orderId: "o1", shopId: "shop_malmo", productId: "prod_01", quantity: 1),
                                                      eventId: "evt_forged", source: .inventory, timestamp: .simulationEpoch, correlationId: "c")
                    seen.refusal = await SimulatedServices.refusal {
                        try await runtime.transport.call(AppendEvents(events: [reserved]), metadata: runtime.metadata(timeout: .seconds(2)))
                    }
                    // Its own type under another service's name.
                    let posed = try! EventEnvelope(OrderCreated(orderId: "o1", shopId: "shop_malmo", userId: "u", items: [], totalAmount: Money(minorUnits: 0)),
                                                   eventId: "evt_posed", source: .payment, timestamp: .simulationEpoch, correlationId: "c")
                    seen.forgedSource = await SimulatedServices.refusal {
                        try await runtime.transport.call(AppendEvents(events: [posed]), metadata: runtime.metadata(timeout: .seconds(2)))
                    }
                    let created = try! EventEnvelope(OrderCreated(orderId: "o1", shopId: "shop_malmo", userId: "u", items: [], totalAmount: Money(minorUnits: 0)),
                                                     eventId: "evt_own", source: .order, timestamp: .simulationEpoch, correlationId: "c")
                    seen.appended = (try? await runtime.transport.call(AppendEvents(events: [created]), metadata: runtime.metadata(timeout: .seconds(2))))?.appended ?? -1
                }
                world.run(until: world.elapsed + .seconds(5))
                world.stopAll()
                world.tearDown()
                return (seen.refusal, seen.forgedSource, seen.appended)
            }
        }
        #expect(outcome.0 == "forbidden")
        #expect(outcome.1 == "forbidden", "an event under another service's name")
        #expect(outcome.2 == 1, "its own events are appended")
    }

    /// A campaign's Idempotency-Key used again with another request is refused, as an order's is;
    /// with the same request it answers the first campaign.
    @Test func aCampaignKeyReusedForAnotherRequestIsRefused() async throws {
        let product = try loadFixtures().shops[0].stock[0].productId
        _ = try await SimulatedServices.run { transport, runtime in
            func metadata() -> CallMetadata { runtime.metadata(timeout: .seconds(2), idempotencyKey: "campaign-key-1") }
            let first = try await transport.call(CreateCampaign(name: "c1", productIds: [product], percentOff: 5, lastsSeconds: 600), metadata: metadata())
            let again = try await transport.call(CreateCampaign(name: "c1", productIds: [product], percentOff: 5, lastsSeconds: 600), metadata: metadata())
            #expect(again.campaignId == first.campaignId)
            #expect(await SimulatedServices.refusal {
                try await transport.call(CreateCampaign(name: "c2", productIds: [product], percentOff: 50, lastsSeconds: 600), metadata: metadata())
            } == "idempotency_key_reused")
            let all = try await transport.call(ListCampaigns(), metadata: runtime.metadata(timeout: .seconds(2)))
            #expect(all.campaigns.map(\.name) == ["c1"], "the second request created nothing")
        }
    }

    /// A peer that calls the order or campaign service itself (not through the HTTP gateway, which
    /// refuses the same keys) cannot make them store a key of kilobytes, a blank one or one with
    /// a control character: refused before anything is written; a key of 255 bytes is kept.
    @Test func idempotencyKeysTheServicesWouldStoreAreBounded() async throws {
        let fixtures = try loadFixtures()
        let shop = fixtures.shops[0].id, product = fixtures.shops[0].stock[0].productId
        _ = try await SimulatedServices.run { transport, runtime in
            let order = CreateOrder(userId: "user_001", shopId: shop, items: [OrderLine(productId: product, quantity: 1)])
            let campaign = CreateCampaign(name: "c", productIds: [product], percentOff: 5, lastsSeconds: 600)
            for key in [String(repeating: "k", count: 256), String(repeating: "k", count: 100_000), "", " ", "a\nb"] {
                func metadata() -> CallMetadata { runtime.metadata(timeout: .seconds(2), idempotencyKey: key) }
                #expect(await SimulatedServices.refusal { try await transport.call(order, metadata: metadata()) } == "bad_idempotency_key", "\(key.utf8.count)")
                #expect(await SimulatedServices.refusal { try await transport.call(campaign, metadata: metadata()) } == "bad_idempotency_key", "\(key.utf8.count)")
            }
            #expect(try await transport.call(ListCampaigns(), metadata: runtime.metadata(timeout: .seconds(2))).campaigns.isEmpty)
            let longest = String(repeating: "é", count: 127) + "k"  // 255 bytes
            let placed = try await transport.call(order, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: longest))
            let again = try await transport.call(order, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: longest))
            #expect(again.orderId == placed.orderId)
            _ = try await transport.call(campaign, metadata: runtime.metadata(timeout: .seconds(2), idempotencyKey: longest))
        }
    }

    /// With shop down, a vend asked through the gateway is answered `pending` within the
    /// gateway's 2 s, not 504: vm-service's backoff between tries (up to 2 s) slept past the
    /// caller's deadline (an on-call trial: 16 vends answered 504, 13 of them then dispensed).
    @Test func aVendWhoseShopIsDownIsPendingNotATimeout() async throws {
        let fixtures = try loadFixtures()
        let machine = try #require(fixtures.devices.first { $0.kind == .vendingMachine })
        let product = try #require(fixtures.shops.first { $0.id == machine.shopId }?.stock.first).productId
        _ = try await SimulatedServices.run(before: { world in world.crash(world.node(serving: .shop)!.name) }) { transport, runtime in
            for i in 1...4 {
                let vend = Vend(vendId: "v-down-\(i)", machineId: machine.id, productId: product, quantity: 1)
                let answer = try await transport.call(Relayed(vend), metadata: runtime.metadata(timeout: .seconds(3)))
                #expect(answer.status == .pending, "vend \(i): \(answer.status)")
            }
        }
    }
}
