// ERPFuzzTargets: the parsers that read what comes from outside, each as a function of arbitrary
// bytes that must return (an error is fine; a trap, a hang or a crash is a finding). The same
// functions run under libFuzzer (`scripts/fuzz.sh`, the `erp-fuzz` product built with
// `-sanitize=fuzzer`) and over the checked-in corpus in the normal test suite.
import ERPCore
import ERPProduction
import ERPScenario
import ERPWire
import ERPZeroMQ
import Foundation

public enum FuzzTargets {
    /// Every target by the name the script and the corpus folders use.
    public static let all: [(name: String, run: @Sendable ([UInt8]) -> Void)] = [
        ("wire", wire),
        ("json", json),
        ("device", device),
        ("scenario", scenario),
        ("topology", topology),
        ("http", http),
    ]

    public static func named(_ name: String) -> (@Sendable ([UInt8]) -> Void)? { all.first { $0.name == name }?.run }

    /// An erp/2 request or reply: the whole input as one frame, and again split into frames at
    /// 0x1E (record separator), which reaches the refusals of several frames and of erp/1. A
    /// refusal's answer is built too, as the server would send it.
    @Sendable public static func wire(_ bytes: [UInt8]) {
        for frames in [[bytes], bytes.split(separator: 0x1E, omittingEmptySubsequences: false).map(Array.init)] {
            if case .failure(let refusal) = WireFormat.decodeRequest(frames[...]) { _ = WireFormat.answer(to: refusal) }
            _ = WireFormat.decodeReply(frames[...])
        }
    }

    /// JSON bodies: parsed, then read as the contracts a peer or an HTTP client sends.
    @Sendable public static func json(_ bytes: [UInt8]) {
        _ = try? WireJSON.parse(bytes)
        _ = try? WireJSON.decode(CreateOrder.self, from: bytes)
        _ = try? WireJSON.decode(AppendEvents.self, from: bytes)
        _ = try? WireJSON.decode(DeliverEvents.self, from: bytes)
        if let value = try? WireJSON.decode(JSONValue.self, from: bytes) {
            _ = try? JSONCoding.encode(value)
            _ = try? JSONCoding.fromJSONValue(PlaceOrder.self, value)
        }
        if let order = try? WireJSON.decode(PlaceOrder.self, from: bytes) { _ = OrderLine.problem(in: order.items) }
    }

    /// A device's message as the device door reads it before the service sees it (decode and
    /// shape checks: `DeviceIngress.parse`).
    @Sendable public static func device(_ bytes: [UInt8]) {
        _ = DeviceIngress.parse(bytes)
    }

    /// A scenario file.
    @Sendable public static func scenario(_ bytes: [UInt8]) {
        _ = try? ScenarioLoader.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
    }

    /// A request to the HTTP gateway, routed and handed to the services running in a simulated
    /// world (HTTPFuzzWorld: the input's shape, and what counts as a finding beyond a trap).
    @Sendable public static func http(_ bytes: [UInt8]) {
        HTTPFuzzWorld.run(bytes)
    }

    /// Where the `http` target's world reads its fixtures (before its first input; by default
    /// `$ERP_FUZZ_FIXTURES`, else fixtures/retail.json from the current folder).
    public static func useFixtures(_ path: String) { HTTPFuzzWorld.fixturesPath = path }

    /// A topology file.
    @Sendable public static func topology(_ bytes: [UInt8]) {
        _ = try? Topology.parse(String(decoding: bytes, as: UTF8.self), file: "fuzz.yaml")
    }
}
