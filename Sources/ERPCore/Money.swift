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
    public static func * (a: Money, n: Int) -> Money { Money(minorUnits: a.minorUnits * Int64(n), currency: a.currency) }
    public static func < (a: Money, b: Money) -> Bool {
        precondition(a.currency == b.currency, "comparing \(a.currency) with \(b.currency)")
        return a.minorUnits < b.minorUnits
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
        var minor = whole * 100
        if parts.count == 2 {
            let digits = parts[1]
            guard digits.count <= 2, !digits.isEmpty, let f = Int64(digits) else { return nil }
            let scaled = digits.count == 1 ? f * 10 : f
            minor += whole < 0 || parts[0].hasPrefix("-") ? -scaled : scaled
        }
        self.init(minorUnits: minor, currency: currency)
    }
}
