import ERPCore
import ERPScenario
import ERPServices
import ERPSimulation
import ERPStorage

/// Faults on a simulated world: each acts at once, at the virtual time its timer fires, and is a
/// line of the trace. Twin of the ZeroMQ harness's `ZeroMQFaultInjector`, which turns the same
/// calls into signals and control calls to real processes.
final class SimFaultInjector: FaultInjector, @unchecked Sendable {
    // @unchecked Sendable: called only from the world's timers, on the world's thread.
    let world: SimWorld
    let provider: ProviderKnobs
    let eventVersions: EventWriterVersions
    let baseline: Scenario.PaymentSettings

    init(world: SimWorld, provider: ProviderKnobs, eventVersions: EventWriterVersions, baseline: Scenario.PaymentSettings) {
        self.world = world
        self.provider = provider
        self.eventVersions = eventVersions
        self.baseline = baseline
    }

    func partition(_ a: NodeName, _ b: NodeName, on: Bool) {
        if on { world.partition(a, b) } else { world.healPartition(a, b) }
    }

    func partitionOneWay(from: NodeName, to: NodeName, on: Bool) {
        if on { world.partitionOneWay(from: from, to: to) } else { world.healPartitionOneWay(from: from, to: to) }
    }

    func isolate(_ node: NodeName, on: Bool) {
        if on { world.isolate(node) } else { world.rejoin(node) }
    }

    func crash(_ node: NodeName) { world.crash(node) }

    func loseDisk(_ node: NodeName) {
        world.crash(node)
        world.record("fault disk lost \(node)")
        // The crash closed its databases; what is left on disk goes, journals included.
        for (file, error) in ServiceDatabase.removeFiles(ofNode: node, in: world.storageDirectory) {
            world.record("fault disk loss of \(node) could not remove \(world.placeless(file))", failure: error)
        }
    }
    func restart(_ node: NodeName) { world.restart(node) }

    func powerLoss(_ node: NodeName?) {
        if let node { world.powerLoss(node); return }
        for node in world.allNodes where node.service != nil { world.powerLoss(node.name) }
    }

    func powerCut(_ node: NodeName?) {
        if let node { world.powerCut(node); return }
        for node in world.allNodes where node.service != nil { world.powerCut(node.name) }
    }

    func restartAll() {
        for node in world.allNodes where node.service != nil && !node.alive && node.everStarted { world.restart(node.name) }
    }

    func diskFailure(_ node: NodeName, _ failure: DiskFailure?) {
        world.setDiskFailure(node, failure.map { $0 == .full ? .full : .ioError })
    }

    func syncLatency(_ node: NodeName, _ latency: Duration?) { world.setSyncLatency(node, latency ?? .zero) }

    func pause(_ node: NodeName, on: Bool) {
        if on { world.pause(node) } else { world.resume(node) }
    }

    func clockSkew(_ node: NodeName, by skew: Duration) { world.setClockSkew(node, skew) }

    func link(from: NodeName, to: NodeName, _ behaviour: LinkBehaviour?) {
        world.setLink(from: from, to: to, behaviour.map(LinkSettings.init))
    }

    func providerDeclineRate(_ rate: Double?) {
        if let rate {
            world.record("fault swishpay decline rate \(rate)")
            provider.declineRate = rate
        } else {
            world.record("fault swishpay decline rate back to \(baseline.declineRate)")
            provider.declineRate = baseline.declineRate
        }
    }

    func providerDelay(_ delay: Duration?) {
        if let delay {
            world.record("fault swishpay answers in \(delay.shortDescription)")
            provider.processingTime = delay
        } else {
            world.record("fault swishpay answers in \(baseline.processingTime.shortDescription) again")
            provider.processingTime = baseline.processingTime
        }
    }

    func writeEvents(_ setting: EventVersionSetting) {
        // Every service of the world shares the run's settings: the switch is one moment for all.
        do {
            try eventVersions.set(setting)
            world.record("fault producers write \(setting.eventType) \(setting.version)")
        } catch {
            world.record("fault upgrade refused", failure: error)
        }
    }

    func heal() {
        world.record("heal phase begins")
        provider.declineRate = baseline.declineRate
        provider.processingTime = baseline.processingTime
        for node in world.allNodes where node.clockSkew != .zero { world.setClockSkew(node.name, .zero) }
        world.resetLinkOverrides()
        for node in world.allNodes where node.disk.writeFailure != nil { world.setDiskFailure(node.name, nil) }
        for node in world.allNodes where node.disk.syncLatencyNanoseconds > 0 { world.setSyncLatency(node.name, .zero) }
        world.heal()
    }
}
