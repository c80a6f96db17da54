import ArgumentParser
import ERPCore
import ERPProduction
import ERPServices
import ERPStorage
import ERPTransport
import Foundation
import GRDB

/// `erp events`: the bus's dead letters and replays, on a data directory (a report's `db/`, or a
/// topology's `dataDirectory`) or against a running bus (`--topology`, through its RPCs, with a
/// client key the topology admits). On a directory the dead letters may be read beside a running
/// bus, but a requeue or replay is refused there (`BusLock`): the bus keeps its queues' heads in
/// memory and would not see the rows until it restarted. Through the bus, a requeue or replay
/// wakes its dispatcher at once.
struct Events: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dead letters and replays of the event bus, on a data directory or a running bus.",
        discussion: """
            DIR is a folder holding the bus's database (event-bus-bus.sqlite): a run's report/db, or \
            the dataDirectory of a topology (.erp-data for fixtures/topology.yaml). Or, instead of DIR, \
            --topology FILE asks the running bus of that topology, as the client --as (default: the \
            first of the topology's security.clients).
            """,
        subcommands: [DeadLettersCommand.self, Requeue.self, Replay.self])

    /// Where the bus is: its data directory, or a running topology.
    struct Location: ParsableArguments {
        @Argument(help: "The data directory holding event-bus-bus.sqlite (or give --topology).") var directory: String?
        @Option(help: "Ask the running bus of this topology instead of reading a directory.") var topology: String?
        @Option(name: .customLong("as"), help: "The client key to call with (one of the topology's security.clients).") var client: String?

        func validate() throws {
            guard (directory == nil) != (topology == nil) else {
                throw ValidationError("give a data directory or --topology FILE (one of them)")
            }
        }

        /// The directory form of a command that changes the queues: refused while a bus runs on
        /// the directory, whose queues live in its memory (`BusLock`).
        func openForChanges() throws -> DatabaseQueue {
            if let directory, BusLock.isHeld(in: directory) {
                FileHandle.standardError.put(Data("erp: an event bus is running on \(directory): it would not see rows written into its folder until it restarts; ask it through its topology instead (--topology FILE)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            let queue = try open()
            // Which bus this is, when it last ran: a folder of an older run (an `erp up` started
            // with --data elsewhere) took a requeue ("requeued 0") or a replay without a word.
            let newest = try? queue.read { try Int64.fetchOne($0, sql: "SELECT MAX(appendedAt) FROM event") }
            let when = newest.flatMap { $0 }.map { ISO8601DateFormatter().string(from: Date(timeIntervalSince1970: Double($0) / 1000)) } ?? "never: the log is empty"
            FileHandle.standardError.put(Data("erp events: a stopped bus's database in \(absolutePath(directory ?? ".")), its newest event appended \(when) (an erp up started with --data FOLDER keeps its bus there: give that folder, or --topology for a running one)\n".utf8))
            return queue
        }

        func open() throws -> DatabaseQueue {
            guard let directory, let file = ServiceCatalog.databaseFileName(of: .eventBus) else { preconditionFailure("validated: a directory") }
            let path = directory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else {
                FileHandle.standardError.put(Data("erp: no bus database at \(path)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            return try DatabaseQueue(path: path, configuration: configuration)
        }

        /// Calls the running bus with `request`, or nil when reading a directory.
        func callBus<R: RPCRequest>(_ request: R) async throws -> R.Response? {
            guard let topology else { return nil }
            let loaded: Topology
            do { loaded = try Topology.load(path: topology) } catch {
                FileHandle.standardError.put(Data("erp: \(error)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            guard let client = client ?? loaded.clients.first else {
                FileHandle.standardError.put(Data("erp: \(topology) admits no client key (security.clients); a tool needs one\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            let connection = try await TopologyClient.connect(to: loaded, as: client)
            do {
                let answer = try await connection.call(request)
                await connection.close()
                return answer
            } catch {
                await connection.close()
                FileHandle.standardError.put(Data("erp: the bus of \(topology) answered: \(error)\n".utf8))
                throw ExitCode(ExitStatus.unreachable)
            }
        }
    }

    static func groups() -> [Subscription] { ServiceCatalog.startOrder.flatMap(ServiceCatalog.subscriptions(of:)) }

    static func subscription(_ group: String) throws -> Subscription {
        guard let found = groups().first(where: { $0.group == group }) else {
            let known = groups().map(\.group).joined(separator: ", ")
            FileHandle.standardError.put(Data("erp: no consumer group '\(group)'; groups: \(known)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        return found
    }

    static var nowMilliseconds: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    struct DeadLettersCommand: AsyncParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List dead letters, oldest first.")
        @OptionGroup var location: Location
        @Option(help: "Only this consumer group's.") var group: String?
        @Option(parsing: .unconditional, help: "At most this many.") var limit = 100
        @Flag(help: "One JSON object instead of a table.") var json = false

        func validate() throws {
            guard limit >= 1 else { throw ValidationError("--limit must be at least 1, not \(limit)") }
        }

        func run() async throws {
            if let group { _ = try Events.subscription(group) }
            let letters: DeadLetters
            if let answer = try await location.callBus(ListDeadLetters(group: group, limit: limit)) { letters = answer } else {
                letters = try await location.open().read { try EventLog.deadLetters(group: group, limit: limit, in: $0) }
            }
            if json {
                print(String(decoding: try JSONCoding.encode(letters), as: UTF8.self))
                return
            }
            if letters.letters.isEmpty { print("no dead letters"); return }
            for letter in letters.letters {
                print("\(letter.group)\tseq \(letter.sequence)\t\(letter.eventType) \(letter.eventId)\t\(letter.attempts) attempts\t\(letter.lastError ?? "")")
            }
            if let total = letters.total, total > letters.letters.count {
                print("… \(total - letters.letters.count) more (\(total) in all; --limit shows more)")
            }
        }
    }

    struct Requeue: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a group's dead letters back in its queue.")
        @OptionGroup var location: Location
        @Option(help: "The consumer group.") var group: String
        @Option(name: .customLong("seq"), parsing: .unconditionalSingleValue, help: "Only the dead letter at this log position (repeatable).") var sequences: [Int64] = []

        func run() async throws {
            _ = try Events.subscription(group)
            let chosen = sequences.isEmpty ? nil : sequences
            let queued: Int, notDead: [Int64]
            if let answer = try await location.callBus(RequeueDeadLetters(group: group, sequences: chosen)) {
                (queued, notDead) = (answer.queued, answer.notDeadLetters ?? [])
            } else {
                (queued, notDead) = try await location.openForChanges().write { try EventLog.requeue(group: group, sequences: chosen, now: Events.nowMilliseconds, in: $0) }
            }
            print("requeued \(queued) dead letters of \(group)")
            // Asked for by position and not there: said, and the exit status says it too.
            if !notDead.isEmpty {
                FileHandle.standardError.put(Data("erp events requeue: no dead letter of \(group) at seq \(notDead.map(String.init).joined(separator: ", ")) (left alone)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
        }
    }

    struct Replay: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Deliver a group's events again from a log position or a time.",
            discussion: """
                Every event of the group's topics from --from (a log position, 0 = the whole log) or \
                --since (milliseconds since the epoch) on becomes pending again. A consumer whose inbox \
                has an event acknowledges it without a second effect; one that lost its database \
                rebuilds from them.
                """)
        @OptionGroup var location: Location
        @Option(help: "The consumer group.") var group: String
        @Option(parsing: .unconditional, help: "First log position to replay.") var from: Int64?
        @Option(parsing: .unconditional, help: "Replay events appended at or after this time (ms since the epoch).") var since: Int64?

        func validate() throws {
            guard from == nil || since == nil else { throw ValidationError("give --from or --since, not both") }
            // Explicit: a bare replay of the whole log to a group is too big a thing to do by default.
            guard from != nil || since != nil else { throw ValidationError("give --from N (a log position; 0: the whole log) or --since MS") }
            if let from, from < 0 { throw ValidationError("--from must be a log position, 0 or more, not \(from)") }
        }

        func run() async throws {
            let subscription = try Events.subscription(group)
            let queued: Int
            if let answer = try await location.callBus(ReplayGroup(group: group, fromSequence: max(0, from ?? 0), sinceMilliseconds: since)) {
                queued = answer.queued
            } else {
                queued = try await location.openForChanges().write { db in
                    let start = try since.map { try EventLog.firstSequence(since: $0, in: db) } ?? max(0, from ?? 0)
                    return try EventLog.replay(subscription, fromSequence: start, now: Events.nowMilliseconds, in: db)
                }
            }
            print("queued \(queued) events for \(group)")
        }
    }
}
