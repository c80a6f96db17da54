import ERPCore
import ERPServices
import Testing

/// The catalogue is derived from the service types' declarations: these pin what it derives.
@Suite struct ServiceCatalogTests {
    @Test func startOrderPutsEveryServiceAfterWhatItNeeds() {
        let order = ServiceCatalog.startOrder
        // The gateway is listed before shop, IoT gateway and report but calls report: it starts after.
        #expect(order == [.eventBus, .swishpay, .inventory, .product, .payment, .order, .notification, .shop, .iotGateway, .report, .gateway])
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
        #expect(routes.map(\.subscription.group) == ["inventory", "product", "notification", "shop", "report"])
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
        #expect(ServiceCatalog.databaseFiles.map(\.service) == [.eventBus, .swishpay, .inventory, .product, .payment, .order, .notification, .shop, .iotGateway, .report])
        #expect(ServiceCatalog.databaseFileName(of: .iotGateway) == "iot-gateway-iot.sqlite")
    }

    @Test func servicesNotInThisReleaseAreNotInTheCatalogue() {
        #expect(ServiceCatalog.type(of: .campaign) == nil)
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
