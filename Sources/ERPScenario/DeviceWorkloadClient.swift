import ERPCore
import ERPTransport

/// What the device side saw of one device over a run.
public struct DeviceRecord: Sendable {
    public var deviceId: String
    public var shopId: String
    /// Status reports sent, and the status of the last one.
    public var sentCount = 0
    public var lastSentStatus: DeviceStatus?
    /// The sequence of the last message sent, status or data (-1: none): they share it.
    public var lastSentSequence: Int64 = -1
    /// The highest sequence, status or data, the gateway acknowledged as accepted (-1: none).
    public var lastAcceptedSequence: Int64 = -1
    public var acceptedCount = 0
    public var confirmedCount = 0
    /// Reports whose answer never came (lost, timed out, refused).
    public var failedCount = 0
    /// Data reports (restocks, shelf counts) sent, and those acknowledged as accepted.
    public var dataSentCount = 0
    public var dataAcceptedCount = 0
    /// When the device fell silent for good (before the end of the run), if it did.
    public var silentFrom: Timestamp?
    /// Times it fell silent for a while and came back (a flapping device).
    public var flapCount = 0

    public init(deviceId: String, shopId: String) { self.deviceId = deviceId; self.shopId = shopId }
}

/// How devices reach the IoT gateway: its RPCs in simulation (`TransportDeviceLink`), the device
/// protocol over ZeroMQ with a key per device in `--mode zmq`.
public protocol DeviceLink: Sendable {
    func report(_ request: ReportDevice, metadata: CallMetadata) async throws -> DeviceReportAck
    func reportData(_ request: ReportDeviceData, metadata: CallMetadata) async throws -> DeviceReportAck
}

/// The IoT gateway's RPCs over a runtime's transport.
public struct TransportDeviceLink: DeviceLink {
    let transport: any Transport
    public init(transport: any Transport) { self.transport = transport }
    public func report(_ request: ReportDevice, metadata: CallMetadata) async throws -> DeviceReportAck {
        try await transport.call(request, metadata: metadata)
    }
    public func reportData(_ request: ReportDeviceData, metadata: CallMetadata) async throws -> DeviceReportAck {
        try await transport.call(request, metadata: metadata)
    }
}

/// The shops' devices: each fixture device reports its status every heartbeat (jittered ±20 %)
/// with a sequence that only grows; a report that fails is not resent (the next heartbeat is the
/// retry, as for a real sensor). A share of the devices falls silent for good at a random moment of
/// the chaos phase, which the IoT gateway must notice. Devices keep reporting through the heal
/// phase until `until`, one heartbeat before the run ends: their last report (at most 2.2
/// heartbeats before the end) has settled by then, and none of them is silent long enough (3
/// heartbeats) to be declared offline.
public final class DeviceWorkloadClient: @unchecked Sendable {
    // @unchecked Sendable: its state is touched only by tasks on `runtime`'s executor (one thread).
    let runtime: any Runtime
    let link: any DeviceLink
    let workload: Scenario.DeviceWorkload
    let fixtures: Fixtures
    let chaosEnd: Timestamp
    let until: Timestamp
    private var recordsByIndex: [DeviceRecord]

    /// `chaos`: how long the chaos phase lasts from now (silences begin within it); `until`: when
    /// devices stop reporting.
    public init(runtime: any Runtime, link: any DeviceLink, workload: Scenario.DeviceWorkload, fixtures: Fixtures,
                chaosEnd: Timestamp, until: Timestamp) {
        self.runtime = runtime
        self.link = link
        self.workload = workload
        self.fixtures = fixtures
        self.chaosEnd = chaosEnd
        self.until = until
        recordsByIndex = fixtures.devices.map { DeviceRecord(deviceId: $0.id, shopId: $0.shopId) }
        plan = SeededRandomSource(seed: runtime.random.nextUInt64())
    }

    /// Each device draws from a stream of its own (derived from this by its id), so what one
    /// device does does not move with another's answers, nor with the faults that slow them.
    private let plan: SeededRandomSource

    /// Empty when the scenario has no device workload: then there is no device history, and the
    /// device invariants are not judged (they would pass on devices that never said anything).
    public var records: [DeviceRecord] { workload.enabled ? recordsByIndex : [] }

    public func start() {
        guard workload.enabled else { return }
        let now = runtime.clock.now
        let silences = plan.derived("silences")
        for index in recordsByIndex.indices {
            // Drawn in fixture order, before any device runs: the same silences for the same seed.
            let silentAt: Timestamp? = silences.chance(workload.silentShare)
                ? now + .nanoseconds(Int64(silences.uniform(0, Double((chaosEnd - now).nanoseconds)))) : nil
            let flaps = workload.flapShare > 0 && silences.chance(workload.flapShare)
            let random = plan.derived("device " + recordsByIndex[index].deviceId)
            runtime.spawn("device") { [self] in await run(index, silentAt: silentAt, flaps: flaps, random: random) }
        }
    }

    private func run(_ index: Int, silentAt: Timestamp?, flaps: Bool = false, random: SeededRandomSource) async {
        let deviceId = recordsByIndex[index].deviceId
        var sequence: Int64 = 0
        while true {
            await runtime.sleep(for: workload.heartbeat * random.uniform(0.8, 1.2))
            let now = runtime.clock.now
            if let silentAt, now >= silentAt {
                recordsByIndex[index].silentFrom = now
                return
            }
            guard now < until else { return }
            if flaps && random.chance(0.1) {
                // A flap: silent for 4 to 6 heartbeats (declared offline after 3), then back, all
                // within the chaos phase (so every flapping device has reported again by the end).
                let silence = workload.heartbeat * Double(random.int(in: 4...6))
                if now + silence < chaosEnd {
                    recordsByIndex[index].flapCount += 1
                    await runtime.sleep(for: silence)
                    continue
                }
            }
            sequence += 1
            let kind = random.unit()
            if kind < workload.restockShare + workload.countShare {
                await sendData(index, sequence: sequence, restock: kind < workload.restockShare, now: now, random: random)
                continue
            }
            let status: DeviceStatus = random.chance(workload.faultRate) ? .fault : .online
            recordsByIndex[index].sentCount += 1
            recordsByIndex[index].lastSentSequence = sequence
            recordsByIndex[index].lastSentStatus = status
            do {
                let metadata = CallMetadata(deadline: now + workload.heartbeat, correlationId: "\(deviceId)-\(sequence)")
                let ack = try await link.report(ReportDevice(deviceId: deviceId, sequence: sequence, status: status), metadata: metadata)
                if ack.accepted {
                    recordsByIndex[index].acceptedCount += 1
                    recordsByIndex[index].lastAcceptedSequence = max(recordsByIndex[index].lastAcceptedSequence, sequence)
                }
                if ack.confirmedByShop { recordsByIndex[index].confirmedCount += 1 }
            } catch {
                recordsByIndex[index].failedCount += 1
            }
        }
    }

    /// A restock delivery (1–10 units) or a shelf count (0–60) of a product the device's shop stocks.
    private func sendData(_ index: Int, sequence: Int64, restock: Bool, now: Timestamp, random: SeededRandomSource) async {
        let record = recordsByIndex[index]
        guard let shop = fixtures.shops.first(where: { $0.id == record.shopId }), !shop.stock.isEmpty else { return }
        let product = random.pick(shop.stock).productId
        let quantity = restock ? random.int(in: 1...10) : random.int(in: 0...60)
        recordsByIndex[index].dataSentCount += 1
        recordsByIndex[index].lastSentSequence = sequence
        do {
            let metadata = CallMetadata(deadline: now + workload.heartbeat, correlationId: "\(record.deviceId)-\(sequence)")
            let ack = try await link.reportData(ReportDeviceData(deviceId: record.deviceId, sequence: sequence,
                                                                dataType: restock ? .restock : .stockUpdate, productId: product, quantity: quantity),
                                               metadata: metadata)
            if ack.accepted {
                recordsByIndex[index].dataAcceptedCount += 1
                recordsByIndex[index].lastAcceptedSequence = max(recordsByIndex[index].lastAcceptedSequence, sequence)
            }
        } catch {
            recordsByIndex[index].failedCount += 1
        }
    }
}
