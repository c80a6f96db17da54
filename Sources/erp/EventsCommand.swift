import ArgumentParser
import ERPCore
import ERPServices
import ERPStorage
import ERPTransport
import Foundation
import GRDB

/// `erp events`: the bus's dead letters and replays, on a data directory (a report's `db/`, or a
/// topology's `dataDirectory`). Safe beside a running bus: SQLite serialises the writes, and the
/// bus's dispatchers find the requeued deliveries at their next look (within a second).
struct Events: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Dead letters and replays of the event bus, on a data directory.",
        discussion: """
            DIR is a folder holding the bus's database (event-bus-bus.sqlite): a run's report/db, or \
            the dataDirectory of a topology (.erp-data for fixtures/topology.yaml).
            """,
        subcommands: [DeadLettersCommand.self, Requeue.self, Replay.self])

    struct Location: ParsableArguments {
        @Argument(help: "The data directory holding event-bus-bus.sqlite.") var directory: String

        func open() throws -> DatabaseQueue {
            guard let file = ServiceCatalog.databaseFileName(of: .eventBus) else { preconditionFailure("the bus keeps a database") }
            let path = directory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else {
                FileHandle.standardError.write(Data("erp: no bus database at \(path)\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            var configuration = Configuration()
            configuration.busyMode = .timeout(5)
            return try DatabaseQueue(path: path, configuration: configuration)
        }
    }

    static func groups() -> [Subscription] { ServiceCatalog.startOrder.flatMap(ServiceCatalog.subscriptions(of:)) }

    static func subscription(_ group: String) throws -> Subscription {
        guard let found = groups().first(where: { $0.group == group }) else {
            let known = groups().map(\.group).joined(separator: ", ")
            FileHandle.standardError.write(Data("erp: no consumer group '\(group)'; groups: \(known)\n".utf8))
            throw ExitCode(ExitStatus.invalidInput)
        }
        return found
    }

    static var nowMilliseconds: Int64 { Int64(Date().timeIntervalSince1970 * 1000) }

    struct DeadLettersCommand: ParsableCommand {
        static let configuration = CommandConfiguration(commandName: "dead-letters", abstract: "List dead letters, oldest first.")
        @OptionGroup var location: Location
        @Option(help: "Only this consumer group's.") var group: String?
        @Option(help: "At most this many.") var limit = 100
        @Flag(help: "One JSON object instead of a table.") var json = false

        func run() throws {
            if let group { _ = try Events.subscription(group) }
            let letters = try location.open().read { try EventLog.deadLetters(group: group, limit: limit, in: $0) }
            if json {
                print(String(decoding: try JSONCoding.encode(letters), as: UTF8.self))
                return
            }
            if letters.letters.isEmpty { print("no dead letters"); return }
            for letter in letters.letters {
                print("\(letter.group)\tseq \(letter.sequence)\t\(letter.eventType) \(letter.eventId)\t\(letter.attempts) attempts\t\(letter.lastError ?? "")")
            }
        }
    }

    struct Requeue: ParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Put a group's dead letters back in its queue.")
        @OptionGroup var location: Location
        @Option(help: "The consumer group.") var group: String
        @Option(name: .customLong("seq"), help: "Only the dead letter at this log position (repeatable).") var sequences: [Int64] = []

        func run() throws {
            _ = try Events.subscription(group)
            let queued = try location.open().write {
                try EventLog.requeue(group: group, sequences: sequences.isEmpty ? nil : sequences, now: Events.nowMilliseconds, in: $0)
            }
            print("requeued \(queued) dead letters of \(group)")
        }
    }

    struct Replay: ParsableCommand {
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
        @Option(help: "First log position to replay.") var from: Int64?
        @Option(help: "Replay events appended at or after this time (ms since the epoch).") var since: Int64?

        func run() throws {
            let subscription = try Events.subscription(group)
            guard from == nil || since == nil else {
                FileHandle.standardError.write(Data("erp: give --from or --since, not both\n".utf8))
                throw ExitCode(ExitStatus.invalidInput)
            }
            let queued = try location.open().write { db in
                var start = max(0, from ?? 0)
                if let since {
                    start = try Int64.fetchOne(db, sql: "SELECT MIN(seq) FROM event WHERE appendedAt >= ?", arguments: [since]) ?? Int64.max
                }
                return try EventLog.replay(subscription, fromSequence: start, now: Events.nowMilliseconds, in: db)
            }
            print("queued \(queued) events for \(group)")
        }
    }
}
