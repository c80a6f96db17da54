import ERPCore
import ERPServices
import Foundation
import GRDB

/// What a run's services still have in flight, read from their database files: events waiting in
/// an outbox for the bus, and deliveries the bus has yet to make. Over real processes the runner
/// waits for none to be left before it stops the services, so that the checker judges a system
/// at rest, not one caught half-way through its last flows.
public enum UnsettledWork {
    /// One line per service with work left ("event-bus: 51 deliveries pending"); empty when
    /// every outbox is empty and the bus has nothing pending. A database that cannot be read at
    /// this moment counts as unsettled (the next look may read it).
    public static func read(databaseDirectory: String) -> [String] {
        var left: [String] = []
        for (service, file) in ServiceCatalog.databaseFiles {
            let path = databaseDirectory + "/" + file
            guard FileManager.default.fileExists(atPath: path) else { continue }
            do {
                let queue = try ConsistencyChecker.openReadOnly(path: path)
                defer { try? queue.close() }
                let (outbox, pending) = try queue.read { db -> (Int, Int) in
                    let outbox = try db.tableExists("outbox") ? Int.fetchOne(db, sql: "SELECT COUNT(*) FROM outbox") ?? 0 : 0
                    guard service == .eventBus, try db.tableExists("delivery") else { return (outbox, 0) }
                    return (outbox, try Int.fetchOne(db, sql: "SELECT COUNT(*) FROM delivery WHERE status = 'pending'") ?? 0)
                }
                if outbox > 0 { left.append("\(service.rawValue): \(outbox) events in its outbox") }
                if pending > 0 { left.append("\(service.rawValue): \(pending) deliveries pending") }
            } catch {
                left.append("\(service.rawValue): not readable now (\(error))")
            }
        }
        return left
    }
}
