import ERPCore
import ERPStorage
import Foundation
import GRDB
import GRDBSQLite
import Testing

/// `execute(cached:arguments:)`, `SQLRow` and the scalar fetches bind and read SQLite's statements
/// themselves, past GRDB's `Statement`. What they store and read must be what GRDB would, their
/// errors must be GRDB's `DatabaseError` (never a trap), and a cached statement must be usable
/// again after an error and must not hold a read open after a fetch.
@Suite struct CachedStatementsTests {
    private func withDatabase(_ body: (ServiceDatabase) throws -> Void) throws {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("erp-cached-\(UInt64.random(in: 0...UInt64.max)).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let database = try ServiceDatabase(path: path, durability: .simulated(), migrations: [
            Migration(name: "t-1") { db in
                try db.execute(sql: "CREATE TABLE t (id TEXT PRIMARY KEY, i INTEGER, w INTEGER, r REAL, b INTEGER, s TEXT, o TEXT)")
            },
        ])
        defer { try? database.close() }
        try body(database)
    }

    private static let insert = "INSERT INTO t (id, i, w, r, b, s, o) VALUES (?, ?, ?, ?, ?, ?, ?)"

    @Test func storesWhatGRDBStoresForEveryParameterType() throws {
        try withDatabase { database in
            let rows: [(String, Int, Int64, Double, Bool, String, String?)] = [
                ("a", 1, Int64.max, 0.1, true, "", nil),
                ("b", -7, Int64.min, -2.5e300, false, "åäö – 🚀 \"quoted\" \\ back", "x"),
                ("c", 0, 0, 3, true, String(repeating: "long text ", count: 200), ""),
            ]
            try database.write { db in
                for row in rows {
                    try db.execute(cached: Self.insert, arguments: row.0, row.1, row.2, row.3, row.4, row.5, row.6)
                    try db.execute(sql: Self.insert, arguments: ["grdb-" + row.0, row.1, row.2, row.3, row.4, row.5, row.6])
                }
            }
            try database.read { db in
                // Byte for byte and type for type, as GRDB's own binding stored them.
                let describe = "SELECT quote(i) || '|' || quote(w) || '|' || quote(r) || '|' || quote(b) || '|' || quote(s) || '|' || quote(o) FROM t WHERE id = ?"
                for row in rows {
                    let ours = try String.fetchOne(db, sql: describe, arguments: [row.0])
                    let grdbs = try String.fetchOne(db, sql: describe, arguments: ["grdb-" + row.0])
                    #expect(ours != nil && ours == grdbs)
                }
                // An empty string is text, not NULL; nil is NULL.
                #expect(try String.fetchOne(db, sql: "SELECT typeof(s) || typeof(o) FROM t WHERE id = 'a'") == "textnull")
                // And read back through the new readers as they went in.
                for row in rows {
                    let read = try #require(try SQLRow.fetchOne(db, cached: "SELECT i, w, r, b, s, o FROM t WHERE id = ?", arguments: row.0))
                    #expect(try read["i"] as Int == row.1)
                    #expect(try read["w"] as Int64 == row.2)
                    #expect(try read["r"] as Double == row.3)
                    #expect(try read["b"] as Bool == row.4)
                    #expect(try read["s"] as String == row.5)
                    #expect(try read["o"] as String? == row.6)
                    #expect(try read["I"] as Int == row.1, "names are case-insensitive, as in SQL")
                    #expect(try Int64.fetchOne(db, cached: "SELECT w FROM t WHERE id = ?", arguments: row.0) == row.2)
                    #expect(try String.fetchOne(db, cached: "SELECT s FROM t WHERE id = ?", arguments: row.0) == row.5)
                }
            }
        }
    }

    @Test func errorsAreDatabaseErrorsAndTheStatementServesAgain() throws {
        try withDatabase { database in
            try database.write { db in
                try db.execute(cached: Self.insert, arguments: "k", 1, Int64(1), 1.0, true, "s", String?.none)
                let duplicate = #expect(throws: DatabaseError.self) {
                    try db.execute(cached: Self.insert, arguments: "k", 2, Int64(2), 2.0, false, "t", String?.none)
                }
                #expect(duplicate?.resultCode == .SQLITE_CONSTRAINT)
                #expect(duplicate?.sql == Self.insert)
                #expect(duplicate?.message?.contains("UNIQUE") == true)
                // The same cached statement, right after its failure.
                try db.execute(cached: Self.insert, arguments: "k2", 2, Int64(2), 2.0, false, "t", String?.none)

                let short = #expect(throws: DatabaseError.self) {
                    try db.execute(cached: Self.insert, arguments: "k3", 3)
                }
                #expect(short?.resultCode == .SQLITE_MISUSE)
                #expect(try Int.fetchOne(db, cached: "SELECT count(*) FROM t") == 2)

                let missing = #expect(throws: DatabaseError.self) { try db.execute(cached: "UPDATE nowhere SET x = ?", arguments: 1) }
                #expect(missing?.resultCode == .SQLITE_ERROR)
            }
            try database.read { db in
                // NULL and no row are nil; a value of another type is an error, not nil and not a trap.
                #expect(try String.fetchOne(db, cached: "SELECT o FROM t WHERE id = 'k'") == nil)
                #expect(try String.fetchOne(db, cached: "SELECT s FROM t WHERE id = 'none'") == nil)
                let mismatch = #expect(throws: DatabaseError.self) { try Int.fetchOne(db, cached: "SELECT s FROM t WHERE id = 'k'") }
                #expect(mismatch?.resultCode == .SQLITE_MISMATCH)
                let row = try #require(try SQLRow.fetchOne(db, cached: "SELECT id, s FROM t WHERE id = 'k'"))
                #expect(throws: SQLRowDecodingError.self) { try row.decode(forColumn: "nope") as String }
                #expect(throws: SQLRowDecodingError.self) { try row.decode(forColumn: "s") as Int }
                #expect(try row.decode(forColumn: "s") as String == "s")
            }
        }
    }

    /// A row's subscripts throw where GRDB's trap: a NULL or mismatched value read as a
    /// non-optional, or a missing column. A database torn by a power loss held a NULL in the
    /// outbox's NOT NULL `envelope`, and the relay's read of it stopped the whole simulated run
    /// with SIGILL (a reliability reviewer's `durability: {order: off}` seeds 9 and 24).
    @Test func aDamagedValueIsAnErrorNotATrap() throws {
        try withDatabase { database in
            try database.write { db in
                try db.execute(cached: Self.insert, arguments: "k", 1, Int64(1), 1.0, true, "s", String?.none)
                // The outbox's columns without its NOT NULL: the row a torn page can leave.
                try db.execute(sql: "DROP TABLE outbox; CREATE TABLE outbox (seq INTEGER PRIMARY KEY, eventId TEXT, topic TEXT, envelope TEXT)")
                try db.execute(sql: "INSERT INTO outbox (seq, eventId, topic, envelope) VALUES (1, 'evt_1', 'order.created', NULL)")
            }
            try database.read { db in
                let row = try #require(try SQLRow.fetchOne(db, cached: "SELECT id, s, o FROM t WHERE id = 'k'"))
                #expect(throws: SQLRowDecodingError.self) { try row["o"] as String }
                #expect(throws: SQLRowDecodingError.self) { try row[1] as Int }
                #expect(throws: SQLRowDecodingError.self) { try row["nope"] as String }
                #expect(throws: SQLRowDecodingError.self) { try row[7] as String }
                #expect(try row["o"] as String? == nil)
                #expect(try row[1] as String == "s")
                try db.forEachRow(cached: "SELECT s, o FROM t") { view in
                    #expect(throws: SQLRowDecodingError.self) { try view[1] as String }
                    #expect(throws: SQLRowDecodingError.self) { try view[2] as String }
                    let s: String = try view[0]
                    #expect(s == "s")
                }
                #expect(throws: SQLRowDecodingError.self) { try Outbox.pending(limit: 10, in: db) }
            }
        }
    }

    @Test func fetchesLeaveNoStatementRunning() throws {
        try withDatabase { database in
            try database.write { db in
                for i in 0..<5 { try db.execute(cached: Self.insert, arguments: "r\(i)", i, Int64(i), Double(i), true, "s", String?.none) }
            }
            try database.read { db in
                let all = "SELECT id FROM t ORDER BY id"
                // fetchOne stops at the first of five rows: the statement must be reset, not left
                // mid-way holding a read snapshot (which would keep WAL checkpoints back).
                #expect(try String.fetchOne(db, cached: all) == "r0")
                #expect(sqlite3_stmt_busy(try db.cachedStatement(sql: all).sqliteStatement) == 0)
                let first = try SQLRow.fetchOne(db, cached: all)
                #expect(try first?["id"] as String? == "r0")
                #expect(sqlite3_stmt_busy(try db.cachedStatement(sql: all).sqliteStatement) == 0)
                #expect(try String.fetchAll(db, cached: all) == (0..<5).map { "r\($0)" })
                var seen: [String] = []
                try db.forEachRow(cached: "SELECT id, i FROM t WHERE i >= ? ORDER BY id", arguments: 3) { row in
                    seen.append("\(try row[0] as String)=\(try row[1] as Int)")
                }
                #expect(seen == ["r3=3", "r4=4"])
                #expect(sqlite3_get_autocommit(db.sqliteConnection) != 0, "no transaction left open by the reads")
            }
        }
    }
}
