import ERPCore
import ERPServices
import ERPSimulation

extension SimWorld {
    /// Adds a node for each of `services`, which makes its service from the catalogue with
    /// `settings` and the event routes among `services`. The nodes are not started.
    public func addServices(_ services: [ServiceName], settings: ServiceSettings) {
        let routes = ServiceCatalog.routes(for: services)
        for service in services {
            addNode(NodeName(service), serving: service) { runtime in
                try ServiceCatalog.make(service, runtime: runtime, settings: settings, routes: routes)
            }
        }
    }
}
