// ERPConfiguration: the strict YAML reading that scenario files and topology files share. Every
// value is read through a typed reader that refuses what it cannot use with the file, the line
// and the setting's name; the resilience and token-bucket blocks, which both kinds of file have,
// are read here once.
import ERPCore
import ERPResilience
import Foundation
import Yams

/// A configuration file that cannot be used, with the place and the reason: `file:line: reason`.
public struct ConfigurationError: Error, CustomStringConvertible, Equatable {
    public var file: String
    public var line: Int?
    public var message: String
    public init(file: String, line: Int?, message: String) { self.file = file; self.line = line; self.message = message }
    public var description: String { "\(file)\(line.map { ":\($0)" } ?? ""): \(message)" }
}

/// Typed readers over a YAML document of `file`: each throws a `ConfigurationError` naming the
/// line and what is wrong.
public struct ConfigurationReader: Sendable {
    public let file: String
    /// The longest duration any setting may hold (a typo of `1000h` is refused, not run).
    public var durationMax: Duration = .seconds(24 * 3600)

    public init(file: String) { self.file = file }

    /// The line (1-based) of the second line from `first` on that starts with `key:` (block
    /// style, any indentation): where a duplicated key is given again. Nil if there is none.
    static func secondOccurrence(of key: String, from first: Int, in text: String) -> Int? {
        var seen = 0
        for (offset, line) in text.split(separator: "\n", omittingEmptySubsequences: false).enumerated() where offset + 1 >= first {
            let trimmed = line.drop { $0 == " " || $0 == "-" }
            guard trimmed.hasPrefix(key + ":") || trimmed.hasPrefix("\"\(key)\":") || trimmed.hasPrefix("'\(key)':") else { continue }
            seen += 1
            if seen == 2 { return offset + 1 }
        }
        return nil
    }

    /// The document's root node; syntax errors name their line.
    public func root(of text: String) throws(ConfigurationError) -> Node {
        if let line = Self.explicitKeyLine(in: text) {
            throw ConfigurationError(file: file, line: line,
                                     message: "explicit mapping keys ('? key') are not used in erp's files; write 'key: value' (quote the text if '? ' starts a line of it)")
        }
        do {
            guard let node = try Yams.compose(yaml: text) else { throw fail(nil, "the file is empty") }
            return node
        } catch let error as ConfigurationError {
            throw error
        } catch let error as YamlError {
            switch error {
            case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _):
                // A tab is the commonest cause, and Yams's words for it do not name it.
                let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
                if mark.line >= 1, mark.line <= lines.count, lines[mark.line - 1].contains("\t") {
                    throw ConfigurationError(file: file, line: mark.line, message: "YAML syntax: a tab on this line; YAML indents with spaces only")
                }
                throw ConfigurationError(file: file, line: mark.line, message: "YAML syntax: \(problem)")
            case .duplicatedKeysInMapping(let duplicates, let context):
                // Yams names the mapping's first line; the user wants the second occurrence's.
                let key = duplicates.sorted().first ?? ""
                throw ConfigurationError(file: file, line: Self.secondOccurrence(of: key, from: context.mark.line, in: text) ?? context.mark.line,
                                         message: "'\(key)' is given twice in one mapping")
            default:
                throw ConfigurationError(file: file, line: nil, message: "YAML: \(error)")
            }
        } catch {
            throw fail(nil, "not valid YAML: \(error)")
        }
    }

    /// The first line that uses YAML's explicit key indicator (`? ` where a node starts), if any.
    /// erp's files never need it, and it lets a key be a mapping: 4 KB of nested `? ? ? …` kept
    /// Yams' duplicate-key check busy for minutes (a fuzzing finding, fuzz/corpus/topology).
    /// Quoted text, comments, and plain text in block context are passed over.
    static func explicitKeyLine(in text: String) -> Int? {
        guard text.contains("?") else { return nil }
        var quote: Character?
        var flowDepth = 0
        var number = 0
        for line in text.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n").split(separator: "\n", omittingEmptySubsequences: false) {
            number += 1
            let chars = Array(line)
            var atNodeStart = quote == nil
            var i = 0
            while i < chars.count {
                let c = chars[i]
                let next: Character = i + 1 < chars.count ? chars[i + 1] : " "
                if let q = quote {
                    if q == "\"" && c == "\\" { i += 2; continue }
                    if c == q { quote = nil; atNodeStart = false }
                    i += 1
                    continue
                }
                switch c {
                case " ", "\t":
                    break
                case "#" where i == 0 || chars[i - 1] == " " || chars[i - 1] == "\t":
                    i = chars.count
                    continue
                case "?" where atNodeStart && (next == " " || next == "\t"):
                    return number
                case "-" where atNodeStart && (next == " " || next == "\t"):
                    break
                // (A `where` clause binds only the pattern just before it: one pattern per case.)
                case "\"" where atNodeStart, "'" where atNodeStart:
                    quote = c
                case "{" where atNodeStart || flowDepth > 0, "[" where atNodeStart || flowDepth > 0:
                    flowDepth += 1
                    atNodeStart = true
                case "}" where flowDepth > 0, "]" where flowDepth > 0:
                    flowDepth -= 1
                    atNodeStart = false
                case "," where flowDepth > 0:
                    atNodeStart = true
                case ":" where next == " " || next == "\t" || (flowDepth > 0 && (next == "," || next == "}" || next == "]")):
                    atNodeStart = true
                default:
                    atNodeStart = false
                }
                i += 1
            }
        }
        return nil
    }

    // MARK: Structure

    /// A mapping's fields, in file order, each key known and given once.
    public struct Fields {
        public let node: Node
        public let entries: [(key: String, value: Node)]
        let reader: ConfigurationReader
        public subscript(key: String) -> Node? { entries.first { $0.key == key }?.value }
        public func required(_ key: String) throws(ConfigurationError) -> Node {
            guard let v = self[key] else { throw reader.fail(node, "missing field '\(key)'") }
            return v
        }
    }

    public func mapping(_ node: Node, _ what: String, keys: [String]) throws(ConfigurationError) -> Fields {
        guard case .mapping(let m) = node else { throw fail(node, "\(what) must be a mapping") }
        var entries: [(key: String, value: Node)] = []
        for (k, v) in m {
            guard let key = k.string else { throw fail(k, "keys must be text") }
            guard keys.contains(key) else {
                if key == "<<" { throw fail(k, "YAML merge keys ('<<') are not read here: write \(what)'s fields out") }
                throw fail(k, "unknown field '\(key)' in \(what); expected one of: \(keys.joined(separator: ", "))")
            }
            guard !entries.contains(where: { $0.key == key }) else { throw fail(k, "field '\(key)' given twice") }
            entries.append((key, v))
        }
        return Fields(node: node, entries: entries, reader: self)
    }

    public func sequence(_ node: Node, _ what: String) throws(ConfigurationError) -> [Node] {
        guard case .sequence(let s) = node else { throw fail(node, "\(what) must be a list") }
        return Array(s)
    }

    // MARK: Values

    public func string(_ node: Node) throws(ConfigurationError) -> String {
        // Saying what came instead: `crash: [order, payment]` was refused with "expected text" alone
        // (a scenario author's trial).
        guard case .scalar(let s) = node else {
            throw fail(node, "expected one value here, not \(node.sequence != nil ? "a list" : "a mapping") (one service, name or word)")
        }
        return s.string
    }

    public func number(_ node: Node, _ what: String) throws(ConfigurationError) -> Double {
        guard case .scalar = node, let d = node.float ?? node.int.map(Double.init), d.isFinite else {
            throw fail(node, "\(what) must be a number, got '\(node.string ?? "a structure")'")
        }
        return d
    }

    public func integer(_ node: Node, _ what: String) throws(ConfigurationError) -> Int {
        guard case .scalar = node, let n = node.int else { throw fail(node, "\(what) must be a whole number, got '\(node.string ?? "a structure")'") }
        return n
    }

    public func count(_ node: Node, _ what: String) throws(ConfigurationError) -> Int {
        let n = try integer(node, what)
        guard n >= 0 else { throw fail(node, "\(what) must not be negative, got \(n)") }
        return n
    }

    public func seed(_ node: Node) throws(ConfigurationError) -> UInt64 {
        guard case .scalar(let s) = node, let n = UInt64(s.string) else { throw fail(node, "seed must be a whole number from 0 to 2^64-1") }
        return n
    }

    public func probability(_ node: Node, _ what: String) throws(ConfigurationError) -> Double {
        let p = try number(node, what)
        guard (0...1).contains(p) else { throw fail(node, "\(what) is a probability within 0...1, got \(p)") }
        return p
    }

    public func signedDuration(_ node: Node, _ what: String) throws(ConfigurationError) -> Duration {
        let text = try string(node)
        let negative = text.hasPrefix("-")
        guard let d = Duration(parsing: negative ? String(text.dropFirst()) : text) else {
            // A well-formed duration too long to hold (`99999999999h`) is too long, not malformed.
            let body = negative ? text.dropFirst() : Substring(text)
            let number = body.prefix { $0.isNumber || $0 == "." || $0 == "e" || $0 == "E" || $0 == "+" }
            if let value = Double(number), value.isFinite, Duration(parsing: "1" + body.dropFirst(number.count)) != nil {
                throw fail(node, "\(what) must be at most \(durationMax.shortDescription), got '\(text)'")
            }
            throw fail(node, "\(what) must be a duration such as 250ms or 3s, got '\(text)'")
        }
        guard d <= durationMax else {
            throw fail(node, "\(what) must be at most \(durationMax.shortDescription), got '\(text)'")
        }
        return negative ? .zero - d : d
    }

    public func duration(_ node: Node, _ what: String) throws(ConfigurationError) -> Duration {
        let d = try signedDuration(node, what)
        guard d >= .zero else { throw fail(node, "\(what) must not be negative") }
        return d
    }

    public func positiveDuration(_ node: Node, _ what: String, max: Duration? = nil) throws(ConfigurationError) -> Duration {
        let d = try duration(node, what)
        guard d > .zero else { throw fail(node, "\(what) must be longer than zero") }
        if let max, d > max { throw fail(node, "\(what) must be at most \(max.shortDescription), got \(d.shortDescription)") }
        return d
    }

    /// `{min: A, max: B}` with `minimum <= A <= B <= maximum`.
    public func intRange(_ node: Node, _ what: String, minimum: Int, maximum: Int) throws(ConfigurationError) -> ClosedRange<Int> {
        let m = try mapping(node, what, keys: ["min", "max"])
        let lo = try count(m.required("min"), what + ".min"), hi = try count(m.required("max"), what + ".max")
        guard lo >= minimum else { throw fail(m["min"], "\(what).min must be at least \(minimum)") }
        guard hi <= maximum else { throw fail(m["max"], "\(what).max must be at most \(maximum)") }
        guard lo <= hi else { throw fail(node, "\(what).min must not exceed max") }
        return lo...hi
    }

    // MARK: Blocks both kinds of file have

    /// A token bucket `{capacity: N, refillPerSecond: R}`.
    public func tokenBucket(_ node: Node, _ what: String) throws(ConfigurationError) -> TokenBucketSettings {
        let b = try mapping(node, what, keys: ["capacity", "refillPerSecond"])
        guard let capacity = b["capacity"], let refill = b["refillPerSecond"] else {
            throw fail(node, "\(what) must be {capacity: N, refillPerSecond: R}: a burst of N requests, then R per second")
        }
        let settings = TokenBucketSettings(capacity: try integer(capacity, what + ".capacity"),
                                           refillRatePerSecond: try number(refill, what + ".refillPerSecond"))
        // Checked under the file's own key names (the settings' check names its fields).
        guard (1...TokenBucketSettings.capacityMax).contains(settings.capacity) else {
            throw fail(capacity, "\(what).capacity must be from 1 to \(TokenBucketSettings.capacityMax), got \(settings.capacity)")
        }
        guard TokenBucketSettings.refillRatePerSecondRange.contains(settings.refillRatePerSecond) else {
            throw fail(refill, "\(what).refillPerSecond must be from 0.001 to 1000000000 (tokens per second), got \(settings.refillRatePerSecond)")
        }
        do throws(ResilienceConfigurationError) { try settings.validate() } catch { throw fail(node, "\(what): \(error)") }
        return settings
    }

    /// A `resilience:` block: breaker, retry and rate-limit settings. Settings that cannot work
    /// are refused here, with the setting's name, rather than discovered during a run.
    /// `clientTimeout` is the deadline of the requests these policies serve; a retry budget must
    /// fit in it.
    public func resilience(_ node: Node, clientTimeout: Duration) throws(ConfigurationError) -> ResilienceSettings {
        let m = try mapping(node, "resilience", keys: ["circuitBreaker", "retry", "rateLimit"])
        var settings = ResilienceSettings()
        var policy = CallPolicySettings.seed
        if let v = m["circuitBreaker"] {
            let b = try mapping(v, "resilience.circuitBreaker", keys: ["timeout", "errorThresholdPercentage", "resetTimeout",
                                                                         "rollingCountTimeout", "rollingCountBuckets", "volumeThreshold"])
            if let x = b["timeout"] { policy.circuitBreaker.timeout = try signedDuration(x, "circuitBreaker.timeout") }
            if let x = b["errorThresholdPercentage"] { policy.circuitBreaker.errorThresholdPercentage = try number(x, "circuitBreaker.errorThresholdPercentage") }
            if let x = b["resetTimeout"] { policy.circuitBreaker.resetTimeout = try signedDuration(x, "circuitBreaker.resetTimeout") }
            if let x = b["rollingCountTimeout"] { policy.circuitBreaker.rollingCountTimeout = try signedDuration(x, "circuitBreaker.rollingCountTimeout") }
            if let x = b["rollingCountBuckets"] { policy.circuitBreaker.rollingCountBuckets = try integer(x, "circuitBreaker.rollingCountBuckets") }
            if let x = b["volumeThreshold"] { policy.circuitBreaker.volumeThreshold = try integer(x, "circuitBreaker.volumeThreshold") }
        }
        if let v = m["retry"] {
            let r = try mapping(v, "resilience.retry", keys: ["attempts", "baseDelay", "maxDelay"])
            if let x = r["attempts"] { policy.retry.attemptCountMax = try integer(x, "retry.attempts") }
            if let x = r["baseDelay"] { policy.retry.baseDelay = try signedDuration(x, "retry.baseDelay") }
            if let x = r["maxDelay"] { policy.retry.maxDelay = try signedDuration(x, "retry.maxDelay") }
        }
        do throws(ResilienceConfigurationError) {
            try policy.validate()
            // A retry budget longer than the client's own deadline could never be spent.
            try policy.validate(against: clientTimeout)
        } catch {
            throw fail(node, "resilience: \(error)")
        }
        settings.defaultPolicy = policy
        if let v = m["rateLimit"] {
            let r = try mapping(v, "resilience.rateLimit", keys: ["perClient", "gateway", "services"])
            if let x = r["perClient"] { settings.perClientRateLimit = try tokenBucket(x, "rateLimit.perClient") }
            if let x = r["gateway"] { settings.gatewayRateLimit = try tokenBucket(x, "rateLimit.gateway") }
            if let x = r["services"] {
                // Each service's own limit on the requests it serves, a bucket per calling peer.
                for (key, value) in try mapping(x, "resilience.rateLimit.services", keys: ServiceName.allCases.map(\.rawValue)).entries {
                    settings.serviceRateLimits[ServiceName(named: key)!] = try tokenBucket(value, "rateLimit.services.\(key)")
                }
            }
        }
        return settings
    }

    // MARK: Errors

    public func line(_ node: Node?) -> Int? { node?.mark.map { $0.line } }

    public func fail(_ node: Node?, _ message: String) -> ConfigurationError {
        ConfigurationError(file: file, line: line(node), message: message)
    }
}

/// Why the file at `path` could not be read, in words a user can act on ("no such file", "a
/// folder, not a file") instead of a Foundation error's dump (`NSCocoaErrorDomain error 256`).
public func whyUnreadable(_ path: String, _ error: any Error) -> String {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else { return "no such file" }
    if isDirectory.boolValue { return "a folder, not a file" }
    if !FileManager.default.isReadableFile(atPath: path) { return "not readable here (permission denied)" }
    if error is DecodingError { return "\(error)" }
    if let text = (error as NSError).userInfo[NSDebugDescriptionErrorKey] as? String { return text }
    return (error as NSError).localizedDescription
}
