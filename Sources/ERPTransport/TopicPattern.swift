/// A subscription pattern over dotted routing keys, AMQP-style: `*` matches exactly one segment,
/// `#` matches zero or more (`order.*`, `#`, `inventory.#`).
public struct TopicPattern: Hashable, Sendable, Codable, CustomStringConvertible {
    public let text: String
    private let segments: [Substring]

    public init(_ text: String) {
        self.text = text
        self.segments = text.split(separator: ".", omittingEmptySubsequences: false)
    }

    public var description: String { text }

    public func matches(_ topic: String) -> Bool {
        let parts = topic.split(separator: ".", omittingEmptySubsequences: false)
        return Self.match(segments[...], parts[...])
    }

    private static func match(_ pattern: ArraySlice<Substring>, _ topic: ArraySlice<Substring>) -> Bool {
        guard let head = pattern.first else { return topic.isEmpty }
        if head == "#" {
            let rest = pattern.dropFirst()
            // `#` swallows zero or more segments.
            var t = topic
            while true {
                if match(rest, t) { return true }
                if t.isEmpty { return false }
                t = t.dropFirst()
            }
        }
        guard let first = topic.first else { return false }
        guard head == "*" || head == first else { return false }
        return match(pattern.dropFirst(), topic.dropFirst())
    }

    public init(from decoder: any Decoder) throws { self.init(try decoder.singleValueContainer().decode(String.self)) }
    public func encode(to encoder: any Encoder) throws { var c = encoder.singleValueContainer(); try c.encode(text) }
}

/// A consumer group's interest: each group gets every matching event once; the members of a
/// group share the group's events.
public struct Subscription: Hashable, Sendable, Codable {
    public var group: String
    public var patterns: [TopicPattern]
    public init(group: String, patterns: [TopicPattern]) { self.group = group; self.patterns = patterns }
    public func matches(_ topic: String) -> Bool { patterns.contains { $0.matches(topic) } }
}
