import ERPCore
import ERPStorage

/// Carries a service's outbox to the event bus: reads the oldest entries, appends them to the bus,
/// and deletes them only after the bus has acknowledged a durable append. Until then it retries
/// with capped, jittered backoff, so an event is published at least once whatever the network does.
public final class OutboxRelay: @unchecked Sendable {
    public struct Settings: Sendable {
        public var batchCountMax = 64
        /// Envelope bytes per batch, at most (a single larger event goes alone).
        public var batchByteCountMax = 1 << 20
        public var appendTimeout: Duration = .seconds(1)
        public var idlePollInterval: Duration = .milliseconds(500)
        public var backoffInitial: Duration = .milliseconds(50)
        public var backoffMax: Duration = .seconds(2)
        public init() {}
    }

    private let runtime: any Runtime
    private let database: ServiceDatabase
    private let settings: Settings
    private let signal: WakeSignal

    public init(runtime: any Runtime, database: ServiceDatabase, settings: Settings = Settings()) {
        self.runtime = runtime
        self.database = database
        self.settings = settings
        self.signal = WakeSignal(runtime: runtime)
    }

    /// Tells the relay that a transaction has just added to the outbox.
    public func notify() { signal.notify() }

    public func start() {
        runtime.spawn("outbox-relay") { [self] in await self.loop() }
    }

    private func loop() async {
        var failures = 0
        while true {
            let batch: [Outbox.Entry], more: Bool
            do {
                (batch, more) = try database.read {
                    try Outbox.pending(limit: settings.batchCountMax, byteCountMax: settings.batchByteCountMax, in: $0, memo: database.outboxMemo)
                }
            } catch {
                runtime.logger.error("outbox read failed: \(error)")
                await runtime.sleep(for: settings.backoffMax)
                continue
            }
            guard let last = batch.last else {
                await signal.wait(timeout: settings.idlePollInterval)
                continue
            }
            do {
                let metadata = runtime.metadata(timeout: settings.appendTimeout,
                                                correlationId: batch[0].envelope.correlationId)
                _ = try await runtime.transport.call(AppendEvents(events: batch.map(\.envelope)), metadata: metadata)
                try database.write { try Outbox.remove(upTo: last.seq, in: $0) }
                database.outboxMemo.forget(batch.lazy.map(\.envelope.eventId))
                failures = 0
                // A short batch was everything the outbox held: anything added since came with a
                // `notify`, which makes this wait return at once. (Reading again to find the
                // outbox empty was one read transaction per batch.)
                if !more { await signal.wait(timeout: settings.idlePollInterval) }
            } catch {
                failures += 1
                let delay = runtime.random.fullJitterBackoff(attempt: failures, initial: settings.backoffInitial, max: settings.backoffMax)
                runtime.record("\(runtime.node) relay append failed (\(error)); retry in \(delay.shortDescription)")
                // Said as a warning once it lasts (a 30 s bus outage left only info lines, their
                // delays in nanoseconds: an on-call trial), and every 50 failures after.
                if failures == 5 || failures % 50 == 0 {
                    runtime.logger.warning("appending to the bus has failed \(failures) times in a row (\(error)); events wait in this service's outbox and go when the bus answers")
                }
                await runtime.sleep(for: delay)
            }
        }
    }
}
