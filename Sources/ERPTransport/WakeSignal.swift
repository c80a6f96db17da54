/// Wakes one waiting task early, or lets it sleep until a timeout: how a relay or a dispatcher
/// waits for new work without polling hard. Confined to one node's executor, like the service
/// that owns it (that confinement is why the unchecked Sendable is sound).
public final class WakeSignal: @unchecked Sendable {
    private var waiter: UnsafeContinuation<Void, Never>?
    private var waiterToken: UInt64 = 0
    private var pending = false
    private let runtime: any Runtime

    public init(runtime: any Runtime) { self.runtime = runtime }

    /// Wakes the waiter now, or makes the next `wait` return at once.
    public func notify() {
        if let w = waiter {
            waiter = nil
            w.resume()
        } else {
            pending = true
        }
    }

    /// Returns when notified, or after `timeout`.
    public func wait(timeout: Duration) async {
        if pending { pending = false; return }
        precondition(waiter == nil, "WakeSignal has one waiter at a time")
        waiterToken &+= 1
        let token = waiterToken
        await withUnsafeContinuation { (c: UnsafeContinuation<Void, Never>) in
            waiter = c
            runtime.spawn("wake-timeout") { [weak self, runtime] in
                await runtime.sleep(for: timeout)
                guard let self, self.waiterToken == token, let w = self.waiter else { return }
                self.waiter = nil
                w.resume()
            }
        }
    }
}
