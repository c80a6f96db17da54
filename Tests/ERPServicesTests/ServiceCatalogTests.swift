import ERPCore
@testable import ERPServices
import Testing

/// The catalogue is derived from the service types' declarations: these pin what it derives.
@Suite struct ServiceCatalogTests {
    @Test func startOrderPutsEveryServiceAfterWhatItNeeds() {
        let order = ServiceCatalog.startOrder
        // The gateway is listed before shop, IoT gateway and report but calls report: it starts
        // after; order calls campaign, listed after it, so it starts after campaign.
        #expect(order == [.eventBus, .swishpay, .inventory, .product, .payment, .notification, .shop, .iotGateway, .report, .campaign,
                          .order, .vmService, .gateway])
        // Every service of the seed runs.
        #expect(Set(order) == Set(ServiceName.allCases))
        for service in order {
            let type = ServiceCatalog.type(of: service)!
            let position = order.firstIndex(of: service)!
            for callee in type.calls { #expect(order.firstIndex(of: callee)! < position, "\(service) starts before \(callee)") }
            if !type.publishes.isEmpty || !type.subscriptions.isEmpty, service != .eventBus {
                #expect(order.firstIndex(of: .eventBus)! < position)
            }
        }
    }

    @Test func routesComeFromEachServicesOwnSubscriptions() {
        let routes = ServiceCatalog.routes(for: ServiceCatalog.startOrder)
        #expect(routes.map(\.subscription.group) == ["inventory", "product", "notification", "shop", "report", "order"])
        #expect(routes.allSatisfy { $0.members == [NodeName($0.subscription.group)] })
    }

    /// Every event type a service publishes is in the list the bus routes by (an envelope carries
    /// only its type's name).
    @Test func everyPublishedTypeIsInTheEventList() {
        for service in ServiceCatalog.startOrder {
            for type in ServiceCatalog.type(of: service)!.publishes {
                #expect(EventTypes.topic(for: type.eventType) == type.topic, "\(type.eventType)")
            }
        }
    }

    @Test func databaseFilesAreNamedAfterTheirNodes() {
        #expect(ServiceCatalog.databaseFileName(of: .order) == "order-order.sqlite")
        #expect(ServiceCatalog.databaseFileName(of: .eventBus) == "event-bus-bus.sqlite")
        #expect(ServiceCatalog.databaseFileName(of: .gateway) == nil)
        #expect(ServiceCatalog.databaseFiles.map(\.service) == [.eventBus, .swishpay, .inventory, .product, .payment, .notification, .shop,
                                                                 .iotGateway, .report, .campaign, .order, .vmService])
        #expect(ServiceCatalog.databaseFileName(of: .vmService) == "vm-service-vm.sqlite")
        #expect(ServiceCatalog.databaseFileName(of: .iotGateway) == "iot-gateway-iot.sqlite")
    }

    /// No event type is published into the void, and no group waits for a type nobody publishes:
    /// every type of the seed has a producer and at least one consumer group.
    @Test func everyEventTypeHasAProducerAndAConsumer() {
        let types = ServiceCatalog.startOrder.map { ServiceCatalog.type(of: $0)! }
        let published = Set(types.flatMap { $0.publishes.map { $0.eventType } })
        let patterns = types.flatMap { $0.subscriptions.flatMap(\.patterns) }
        for type in EventTypes.all {
            #expect(published.contains(type.eventType), "\(type.eventType) has no producer")
            #expect(patterns.contains { $0.matches(type.topic) }, "\(type.eventType) (\(type.topic)) has no consumer")
        }
        for pattern in patterns {
            #expect(EventTypes.all.contains { pattern.matches($0.topic) && published.contains($0.eventType) }, "\(pattern) waits for nothing")
        }
    }

    /// What a service's key may call (`requests`, method by method) and the services it waits
    /// for (`calls`) are declared apart: they must name the same services, and every request its
    /// callee's own type (the bus's requests are the bus's: append and replay).
    @Test func eachServicesRequestsGoToTheServicesItCalls() {
        for type in ServiceCatalog.serviceTypes {
            var sentTo = Set<ServiceName>()
            for request in type.requests where request.service != .eventBus { sentTo.insert(request.service) }
            let declared = Set(type.calls)
            #expect(sentTo == declared, "\(type.name): requests go to \(sentTo.map { $0.rawValue }.sorted()), calls declares \(declared.map { $0.rawValue }.sorted())")
        }
        #expect(ServiceCatalog.mayCall(.shop, "inventory.sell", on: .inventory))
        #expect(!ServiceCatalog.mayCall(.vmService, "shop.updateDeviceStatus", on: .shop), "vm-service only operates machines")
        #expect(!ServiceCatalog.mayCall(.iotGateway, "shop.vendingOperation", on: .shop), "the IoT gateway only reports devices")
        #expect(ServiceCatalog.mayCall(.report, "bus.replay", on: .eventBus))
        #expect(ServiceCatalog.mayCall(.inventory, "bus.append", on: .eventBus), "inventory publishes")
        #expect(!ServiceCatalog.mayCall(.swishpay, "bus.append", on: .eventBus), "the provider publishes nothing")
    }

    @Test func plantedDefectsAreOneTable() {
        #expect(PlantedDefects.names == PlantedDefect.allCases.map(\.rawValue))
        var defects = PlantedDefects()
        let enabledInbox = defects.enable("skip-inbox"), enabledRelease = defects.enable("skip-stock-release")
        let enabledUnknown = defects.enable("make-it-fail")
        #expect(enabledInbox && enabledRelease && !enabledUnknown)
        // Listed in the table's order, however they were enabled.
        #expect(defects.enabledNames == ["skip-stock-release", "skip-inbox"])
        #expect(defects.skipInbox && defects.skipStockRelease && !defects.confirmDeclinedPayments)
    }
}
