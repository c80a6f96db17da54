/// An amount of money in minor units (öre, cents). Never a binary floating-point number:
/// amounts add and compare exactly, and a refund of 50.00 cancels a charge of 50.00 to the unit.
public struct Money: Hashable, Sendable, Codable, Comparable, CustomStringConvertible {
    public var minorUnits: Int64
    public var currency: String

    public init(minorUnits: Int64, currency: String = "SEK") {
        self.minorUnits = minorUnits
        self.currency = currency
    }

    public static func zero(_ currency: String = "SEK") -> Money { Money(minorUnits: 0, currency: currency) }

    public static func + (a: Money, b: Money) -> Money {
        precondition(a.currency == b.currency, "adding \(a.currency) to \(b.currency)")
        return Money(minorUnits: a.minorUnits + b.minorUnits, currency: a.currency)
    }
    public static func - (a: Money, b: Money) -> Money {
        precondition(a.currency == b.currency, "subtracting \(b.currency) from \(a.currency)")
        return Money(minorUnits: a.minorUnits - b.minorUnits, currency: a.currency)
    }
    public static func < (a: Money, b: Money) -> Bool {
        precondition(a.currency == b.currency, "comparing \(a.currency) with \(b.currency)")
        return a.minorUnits < b.minorUnits
    }

    /// `self + other`, or a typed refusal where the sum does not fit or the currencies differ.
    /// For amounts that come from outside (requests, the wire, events), where `+` would trap.
    public func adding(_ other: Money) throws(MoneyError) -> Money {
        guard currency == other.currency else { throw .currencyMismatch(currency, other.currency) }
        let (sum, overflow) = minorUnits.addingReportingOverflow(other.minorUnits)
        guard !overflow else { throw .overflow }
        return Money(minorUnits: sum, currency: currency)
    }

    /// `self × count`, or `.overflow` where the product does not fit (a quantity from a request).
    public func multiplied(by count: Int) throws(MoneyError) -> Money {
        let (product, overflow) = minorUnits.multipliedReportingOverflow(by: Int64(count))
        guard !overflow else { throw .overflow }
        return Money(minorUnits: product, currency: currency)
    }

    /// `100.00 SEK`
    public var description: String {
        let sign = minorUnits < 0 ? "-" : ""
        let magnitude = minorUnits.magnitude
        let fraction = magnitude % 100
        return "\(sign)\(magnitude / 100).\(fraction < 10 ? "0" : "")\(fraction) \(currency)"
    }

    /// Parses a decimal major-unit amount such as `"100.00"` or `"12.5"` exactly (no floating point).
    public init?(decimal text: String, currency: String = "SEK") {
        let parts = text.split(separator: ".", omittingEmptySubsequences: false)
        guard parts.count <= 2, let whole = Int64(parts[0]) else { return nil }
        // Checked: the text may come from outside (a 1.0 event on the bus); too large is nil, not a trap.
        var (minor, overflow) = whole.multipliedReportingOverflow(by: 100)
        guard !overflow else { return nil }
        if parts.count == 2 {
            let digits = parts[1]
            guard digits.count <= 2, !digits.isEmpty, digits.allSatisfy(\.isASCIIDigit), let f = Int64(digits) else { return nil }
            let scaled = digits.count == 1 ? f * 10 : f
            (minor, overflow) = minor.addingReportingOverflow(whole < 0 || parts[0].hasPrefix("-") ? -scaled : scaled)
            guard !overflow else { return nil }
        }
        self.init(minorUnits: minor, currency: currency)
    }
}

/// Why an amount could not be computed: a typed refusal where plain arithmetic would trap.
public enum MoneyError: Error, Hashable, Sendable, CustomStringConvertible {
    /// The result does not fit in 64-bit minor units.
    case overflow
    /// Amounts in two currencies cannot be added.
    case currencyMismatch(String, String)

    public var description: String {
        switch self {
        case .overflow: "the amount is too large"
        case .currencyMismatch(let a, let b): "cannot add \(b) to \(a)"
        }
    }
}

extension Character {
    var isASCIIDigit: Bool { asciiValue.map { (48...57).contains($0) } ?? false }
}
