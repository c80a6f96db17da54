import ERPCore
import ERPResilience
import Synchronization
import Testing

/// A clock the test moves by hand: the twin of the simulator's virtual clock, for unit tests.
final class ManualClock: ServiceClock {
    private let current: Mutex<Timestamp>

    init(_ start: Timestamp = .simulationEpoch) { current = Mutex(start) }

    var now: Timestamp { current.withLock { $0 } }

    func advance(by duration: Duration) {
        precondition(duration >= .zero, "a manual clock only moves forward")
        current.withLock { $0 = $0 + duration }
    }

    func set(_ time: Timestamp) {
        current.withLock {
            precondition(time >= $0, "a manual clock only moves forward")
            $0 = time
        }
    }
}

/// Collects values handed to `@Sendable` callbacks.
final class Recorder<Value: Sendable>: Sendable {
    private let storage = Mutex<[Value]>([])
    func append(_ value: Value) { storage.withLock { $0.append(value) } }
    var values: [Value] { storage.withLock { $0 } }
}

/// Runs `body` and returns the configuration error it threw, or nil.
func configurationError(_ body: () throws(ResilienceConfigurationError) -> Void) -> ResilienceConfigurationError? {
    do {
        try body()
        return nil
    } catch {
        return error
    }
}

/// The seeds every property test runs over. A failure names its seed in the message.
let propertySeeds: Range<UInt64> = 0..<300

let epoch = Timestamp.simulationEpoch
