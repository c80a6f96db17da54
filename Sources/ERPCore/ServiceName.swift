/// The services of the retail ERP, named as in the seed. The raw value is the short name used in
/// scenario and topology files; `sourceName` is the seed's event `source` (`order-service`).
public enum ServiceName: String, CaseIterable, Sendable, Codable, Comparable, CustomStringConvertible {
    case gateway
    case order
    case inventory
    case payment
    case notification
    case report
    case product
    case shop
    case iotGateway = "iot-gateway"
    case campaign
    case vmService = "vm-service"
    case eventBus = "event-bus"
    /// The external card provider the payment service charges through, simulated.
    case swishpay

    public var sourceName: String {
        switch self {
        case .gateway: "api-gateway"
        case .iotGateway: "iot-gateway"
        case .eventBus: "event-bus"
        case .swishpay: "swishpay"
        case .vmService: "vm-service"
        default: rawValue + "-service"
        }
    }

    public var description: String { rawValue }

    public static func < (a: ServiceName, b: ServiceName) -> Bool { a.rawValue < b.rawValue }

    /// Accepts the short name (`order`) or the seed's long name (`order-service`, `api-gateway`).
    public init?(named text: String) {
        if let s = ServiceName(rawValue: text) { self = s; return }
        if let s = ServiceName.allCases.first(where: { $0.sourceName == text }) { self = s; return }
        return nil
    }
}

/// A process (production) or simulated node: one instance of a service, or a workload client.
/// Node names are stable strings so traces read alike across runs.
public struct NodeName: Hashable, Comparable, Sendable, Codable, CustomStringConvertible, ExpressibleByStringLiteral {
    public var rawValue: String
    public init(_ rawValue: String) { self.rawValue = rawValue }
    public init(stringLiteral value: String) { self.rawValue = value }
    public init(_ service: ServiceName) { self.rawValue = service.rawValue }
    public var description: String { rawValue }
    public static func < (a: NodeName, b: NodeName) -> Bool { a.rawValue < b.rawValue }
    public init(from decoder: any Decoder) throws { rawValue = try decoder.singleValueContainer().decode(String.self) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(rawValue) }
}
