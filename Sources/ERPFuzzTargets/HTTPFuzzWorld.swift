// The `http` fuzz target: a request to the HTTP gateway, decoded by the real router *and handed
// to the services' logic*, so that a trap after decoding (in pricing, stock, payment, a report) is
// found as surely as one in the decoder.
//
// Every service of the catalogue runs in a simulated world (seed 1; a fresh one every 20,000 inputs).
// Each input is one request:
//
//     METHOD SP PATH LF
//     Header-Name: value LF      (any number)
//     LF
//     body bytes
//
// (CR before LF is allowed.) Without `X-API-Key` or `Authorization` the fuzz key is added, so that
// most inputs get past the door. The request goes through the gateway's Hummingbird router; when
// the gateway hands the work to its node, the world is run (virtual time) until the work is done.
//
// Findings, beyond traps: a request that gets no answer (within 60 virtual seconds, or 30 seconds
// of real time for the part outside the world), and an answer that says the server failed (500,
// or a service's `internal` error: a handler threw something it did not type, such as a database
// error the input provoked). The world keeps its state from one input to the next, as a running
// system does (until the next fresh world); a finding that
// needs that state reproduces by replaying the inputs that led to it.
import ERPCore
import ERPGatewayHTTP
import ERPServices
import ERPSimulation
import ERPSimulationBackend
import Foundation
import HTTPTypes
import Hummingbird
import Logging
import NIOCore
import NIOEmbedded

final class HTTPFuzzWorld: @unchecked Sendable {
    static let apiKey = "fuzz-key"
    /// `ERP_FUZZ_VERBOSE=1`: print each request and the gateway's answer (replaying a corpus).
    static let verbose = ProcessInfo.processInfo.environment["ERP_FUZZ_VERBOSE"] == "1"
    nonisolated(unsafe) static var fixturesPath = ProcessInfo.processInfo.environment["ERP_FUZZ_FIXTURES"] ?? "fixtures/retail.json"
    /// The world the inputs go to, made at the first; replaced by a fresh one every
    /// `inputsPerWorld` inputs (`$ERP_FUZZ_WORLD_INPUTS`, 20,000 by default), so that its databases
    /// do not grow without end. They are files (in a folder per world, removed with it), not the
    /// simulator's in-memory disks: a world's tasks that were waiting when it ended are never
    /// resumed, and they keep the world, with whatever it holds in memory, alive (libFuzzer stops
    /// a process past 2 GB; with in-memory databases the first run got there in minutes).
    nonisolated(unsafe) private static var current: HTTPFuzzWorld?
    nonisolated(unsafe) private static var inputsInCurrent = 0
    nonisolated(unsafe) private static var worldsMade = 0
    static let inputsPerWorld = Int(ProcessInfo.processInfo.environment["ERP_FUZZ_WORLD_INPUTS"] ?? "").map { max(1, $0) } ?? 20_000

    /// Runs one input on the current world (called by libFuzzer's thread, one input at a time).
    static func run(_ bytes: [UInt8]) {
        if let world = current, inputsInCurrent >= inputsPerWorld {
            world.discard()
            current = nil
        }
        if current == nil {
            worldsMade += 1
            let folder = directory + "/world-\(worldsMade)"
            do { current = try HTTPFuzzWorld(fixturesPath: fixturesPath, folder: folder) } catch { fatalError("the http fuzz world cannot start: \(error)") }
            inputsInCurrent = 0
        }
        inputsInCurrent += 1
        current!.run(bytes)
    }
    /// The worlds' folders live here; it goes at exit.
    static let directory = NSTemporaryDirectory() + "erp-fuzz-http-\(getpid())"

    let world: SimWorld
    let gateway: SimNode
    let responder: any HTTPResponder<BasicRequestContext>
    let handoff = Handoff()
    let logger = Logger(label: "erp-fuzz-http", factory: { _ in SwiftLogNoOpLogHandler() })

    private static let cleanUpAtExit: Void = { atexit { try? FileManager.default.removeItem(atPath: HTTPFuzzWorld.directory) } }()

    let folder: String

    private init(fixturesPath: String, folder: String) throws {
        let fixtures = try JSONCoding.decode(Fixtures.self, from: Data(contentsOf: URL(fileURLWithPath: fixturesPath)))
        try FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
        Self.cleanUpAtExit
        self.folder = folder
        world = SimWorld(seed: 1, storageDirectory: folder, trace: try SimTrace(enabled: false), randomizeScheduling: false, storage: .files)
        world.callMetrics = nil // nothing reads them; 20,000 inputs' worth of histograms is memory for nothing
        let services = ServiceCatalog.startOrder
        world.addServices(services, settings: ServiceSettings(fixtures: fixtures))
        for service in services { world.node(serving: service)!.start() }
        world.run(until: world.elapsed + .milliseconds(100))
        gateway = world.node(serving: .gateway)!
        guard let operations = gateway.instance as? GatewayOperations, let runtime = gateway.runtime else {
            throw FuzzWorldError("the gateway service did not start")
        }
        let handoff = self.handoff
        let http = GatewayHTTP(operations: operations, settings: GatewayHTTPSettings(apiKeys: [Self.apiKey]),
                               clock: runtime.clock, ids: runtime.ids, hop: { body in await handoff.hop(body) })
        responder = http.router().buildResponder()
    }

    /// Ends the world: every node stops as in a crash (its databases closed), what the world holds
    /// goes (its suspended tasks keep the world itself alive), and its folder goes.
    private func discard() {
        world.tearDown()
        try? FileManager.default.removeItem(atPath: folder)
    }

    /// The channel every request's context names (nothing is written to it). One for the process:
    /// an `EmbeddedChannel` that is never finished stays allocated, 1.3 KB a request.
    struct SharedChannel: @unchecked Sendable { let channel = EmbeddedChannel() }
    static let channel = SharedChannel()

    /// One input: the request it reads as, answered; a finding traps.
    private func run(_ bytes: [UInt8]) {
        let request = Self.request(from: bytes)
        let handoff = self.handoff, responder = self.responder, logger = self.logger, channel = Self.channel
        handoff.begin()
        Task.detached {
            let context = BasicRequestContext(source: .init(channel: channel.channel, logger: logger))
            let response: Response
            do { response = try await responder.respond(to: request, context: context) } catch {
                response = Response(status: .internalServerError)
            }
            let body = CollectingWriter()
            try? await response.body.write(body)
            handoff.finish(status: UInt16(clamping: response.status.code), body: body.collected.buffer)
        }
        let virtualLimit = world.elapsed + .seconds(60)
        while true {
            guard let step = handoff.next(realTimeout: 30) else {
                fatalError("no answer within 30 s (real time) to \(Self.describe(request))")
            }
            switch step {
            case .answered(let status, let body):
                let text = String(decoding: body.readableBytesView, as: UTF8.self)
                if Self.verbose { print("\(Self.describe(request)) → \(status) \(text.prefix(300))") }
                if status == 500 || text.contains(#""error":"internal""#) {
                    fatalError("the server failed (\(status) \(text)) on \(Self.describe(request))")
                }
                // Let what the request set going (a saga, the outbox, the bus) move on before the next.
                world.run(until: world.elapsed + .milliseconds(20))
                return
            case .hops(let hops):
                for hop in hops {
                    gateway.runtime!.spawn("http-fuzz") {
                        let answer = await hop.body()
                        handoff.done(hop, answer)
                    }
                }
                while handoff.hopsRunning > 0 {
                    guard world.elapsed < virtualLimit else {
                        fatalError("no answer within 60 s of virtual time to \(Self.describe(request))")
                    }
                    world.run(until: world.elapsed + .milliseconds(10))
                }
            }
        }
    }

    /// The request an input reads as (see the top of the file).
    static func request(from bytes: [UInt8]) -> Request {
        var separator: Int?
        var i = 0
        while i + 1 < bytes.count {
            if bytes[i] == 0x0A && bytes[i + 1] == 0x0A { separator = i; break }
            if bytes[i] == 0x0A && bytes[i + 1] == 0x0D && i + 2 < bytes.count && bytes[i + 2] == 0x0A { separator = i; break }
            i += 1
        }
        let headEnd = separator ?? bytes.count
        let bodyStart = separator.map { bytes[$0 + 1] == 0x0D ? $0 + 3 : $0 + 2 } ?? bytes.count
        let lines = String(decoding: bytes[..<headEnd], as: UTF8.self)
            .split(separator: "\n", omittingEmptySubsequences: false)
            .map { $0.hasSuffix("\r") ? $0.dropLast() : $0 }
        let requestLine = lines.first.map { $0.split(separator: " ", maxSplits: 2, omittingEmptySubsequences: true) } ?? []
        let method = requestLine.first.flatMap { HTTPRequest.Method(String($0)) } ?? .get
        var path = requestLine.count > 1 ? String(requestLine[1]) : "/"
        if !path.hasPrefix("/") { path = "/" + path }
        var fields = HTTPFields()
        for line in lines.dropFirst() {
            guard let colon = line.firstIndex(of: ":"), let name = HTTPField.Name(String(line[..<colon])) else { continue }
            let value = line[line.index(after: colon)...].drop { $0 == " " || $0 == "\t" }
            fields.append(HTTPField(name: name, value: String(value)))
        }
        if fields[.authorization] == nil && fields[HTTPField.Name("X-API-Key")!] == nil {
            fields[HTTPField.Name("X-API-Key")!] = apiKey
        }
        let body = ByteBuffer(bytes: bytes[bodyStart...])
        fields[.contentLength] = String(body.readableBytes)
        let head = HTTPRequest(method: method, scheme: "http", authority: "localhost", path: path, headerFields: fields)
        return Request(head: head, body: RequestBody(buffer: body))
    }

    static func describe(_ request: Request) -> String {
        let path = request.head.path ?? ""
        return "\(request.head.method.rawValue) \(path.count > 200 ? String(path.prefix(200)) + "…" : path)"
    }

    /// Where the HTTP side (Hummingbird's tasks) and the world's thread (the fuzzer's) meet: the
    /// gateway's hops wait here for the world to run them, and the answer is handed back.
    final class Handoff: @unchecked Sendable {
        final class Hop: @unchecked Sendable {
            let body: @Sendable () async -> HTTPAnswer
            let continuation: CheckedContinuation<HTTPAnswer, Never>
            init(body: @escaping @Sendable () async -> HTTPAnswer, continuation: CheckedContinuation<HTTPAnswer, Never>) {
                self.body = body
                self.continuation = continuation
            }
        }
        enum Step { case hops([Hop]), answered(UInt16, ByteBuffer) }

        private let condition = NSCondition()
        private var waiting: [Hop] = []
        private var answer: (status: UInt16, body: ByteBuffer)?
        private var running = 0

        func begin() { condition.withLock { answer = nil; waiting = []; running = 0 } }

        /// Called by the gateway's HTTP side: the work runs on the world, its answer comes back.
        func hop(_ body: @escaping @Sendable () async -> HTTPAnswer) async -> HTTPAnswer {
            await withCheckedContinuation { continuation in
                condition.withLock {
                    waiting.append(Hop(body: body, continuation: continuation))
                    condition.signal()
                }
            }
        }

        func finish(status: UInt16, body: ByteBuffer) {
            condition.withLock {
                answer = (status, body)
                condition.signal()
            }
        }

        /// On the world's thread: the hops to run (now counted as running), or the answer; nil
        /// when neither came within `realTimeout` seconds.
        func next(realTimeout: TimeInterval) -> Step? {
            let deadline = Date(timeIntervalSinceNow: realTimeout)
            return condition.withLock {
                while waiting.isEmpty && answer == nil {
                    if !condition.wait(until: deadline) { return nil }
                }
                if !waiting.isEmpty {
                    let hops = waiting
                    waiting = []
                    running += hops.count
                    return .hops(hops)
                }
                return .answered(answer!.status, answer!.body)
            }
        }

        /// On the world's thread, when a hop's work is done.
        func done(_ hop: Hop, _ answer: HTTPAnswer) {
            condition.withLock { running -= 1 }
            hop.continuation.resume(returning: answer)
        }

        var hopsRunning: Int { condition.withLock { running } }
    }

    /// Collects a response's body.
    struct CollectingWriter: ResponseBodyWriter {
        final class Collected: @unchecked Sendable { var buffer = ByteBuffer() }
        let collected = Collected()
        mutating func write(_ part: ByteBuffer) async throws { var part = part; collected.buffer.writeBuffer(&part) }
        consuming func finish(_ trailingHeaders: HTTPFields?) async throws {}
    }
}

struct FuzzWorldError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}
