import Foundation
import GRDB
import GRDBSQLite

// One SQL statement, parsed once per connection and reused: GRDB keeps a cache of prepared
// statements per connection (`cachedStatement(sql:)`), so a service's hot path pays for binding
// and stepping, not for SQLite's parser. Use these for every single-statement query a service runs
// more than once; keep `execute(sql:)` for migrations and other multi-statement scripts.
//
// Writes and reads go past GRDB's `Statement` and `Row`: GRDB's parameters are an array of
// `DatabaseValue` existentials validated against the statement on every call, each execution runs
// GRDB's observation and region bookkeeping (nothing here uses it: no transaction observers, no
// `ValueObservation`), and a fetched `Row` is built through its adapters. In a simulated order
// that was 10 % of the CPU around 28 % in writes, and 7 % around 14 % in reads. Here each
// parameter is bound straight to SQLite's statement (a parameter pack: no array, no boxes), a
// row's values are copied out once (`SQLRow`) or read in place (`forEachRow`), and the statement
// is reset after a read so that no read stays open.

/// A value that binds to a parameter of an SQLite statement.
public protocol SQLParameter {
    /// Binds `self` to parameter `index` (1-based) of `statement`; returns SQLite's result code.
    func bind(to statement: OpaquePointer, at index: CInt) -> CInt
}

/// SQLite copies the bytes of a text or blob bound with this destructor before the bind returns.
private let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

extension String: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt {
        var text = self
        return text.withUTF8 { bytes in
            // An empty buffer may have no address, and a NULL pointer would bind SQL NULL.
            guard let base = bytes.baseAddress, bytes.count > 0 else {
                return sqlite3_bind_text(statement, index, "", 0, transient)
            }
            return base.withMemoryRebound(to: CChar.self, capacity: bytes.count) {
                sqlite3_bind_text(statement, index, $0, CInt(bytes.count), transient)
            }
        }
    }
}

extension Int64: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt {
        sqlite3_bind_int64(statement, index, self)
    }
}

extension Int: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt { Int64(self).bind(to: statement, at: index) }
}

extension Double: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt {
        sqlite3_bind_double(statement, index, self)
    }
}

extension Bool: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt { Int64(self ? 1 : 0).bind(to: statement, at: index) }
}

extension Optional: SQLParameter where Wrapped: SQLParameter {
    public func bind(to statement: OpaquePointer, at index: CInt) -> CInt {
        switch self {
        case .some(let value): value.bind(to: statement, at: index)
        case .none: sqlite3_bind_null(statement, index)
        }
    }
}

extension Database {
    /// Runs one statement from this connection's cache of prepared statements, with `arguments`
    /// bound to its `?` parameters in order. Throws `DatabaseError` as GRDB would: SQLite's result
    /// code and message, and the statement's SQL.
    public func execute<each P: SQLParameter>(cached sql: String, arguments: repeat each P) throws {
        // Not `step`: a statement run to its end holds no read open, and the reset `step` does
        // after a read would be one more call per write (measured: a little slower).
        let statement = try bound(sql, repeat each arguments).sqliteStatement
        while true {
            switch sqlite3_step(statement) {
            case SQLITE_DONE: return
            case SQLITE_ROW: continue
            case let code: throw failure(code, statement, sql)
            }
        }
    }

    /// The cached statement of `sql`, reset and with `arguments` bound.
    fileprivate func bound<each P: SQLParameter>(_ sql: String, _ arguments: repeat each P) throws -> Statement {
        let cached = try cachedStatement(sql: sql)
        let statement = cached.sqliteStatement
        // A statement left after an error, or after rows not read to the end, starts over.
        sqlite3_reset(statement)
        var index: CInt = 0
        var bindCode = SQLITE_OK
        for argument in repeat each arguments {
            index += 1
            if bindCode == SQLITE_OK { bindCode = argument.bind(to: statement, at: index) }
        }
        guard bindCode == SQLITE_OK else { throw failure(bindCode, statement, sql) }
        guard index == sqlite3_bind_parameter_count(statement) else {
            sqlite3_clear_bindings(statement)
            throw DatabaseError(resultCode: .SQLITE_MISUSE,
                                message: "\(index) arguments for \(sqlite3_bind_parameter_count(statement)) parameters",
                                sql: sql)
        }
        return cached
    }

    /// Steps the bound `statement` and calls `row` for each row until `row` returns false or
    /// the rows end; then resets it, so that no read stays open behind the caller.
    fileprivate func step(_ statement: Statement, _ sql: String, row: (OpaquePointer) throws -> Bool) throws {
        let handle = statement.sqliteStatement
        defer { sqlite3_reset(handle) }
        while true {
            switch sqlite3_step(handle) {
            case SQLITE_DONE: return
            case SQLITE_ROW: if try !row(handle) { return }
            case let code: throw failure(code, handle, sql)
            }
        }
    }

    /// The error of a failed bind or step, read before the statement is reset (which is what
    /// makes the cached statement usable again).
    private func failure(_ code: CInt, _ statement: OpaquePointer, _ sql: String) -> DatabaseError {
        let message = String(cString: sqlite3_errmsg(sqliteConnection))
        sqlite3_reset(statement)
        sqlite3_clear_bindings(statement)
        return DatabaseError(resultCode: ResultCode(rawValue: code), message: message, sql: sql)
    }
}

/// A value read from a column: what SQLite stored, copied out of the statement.
public enum SQLValue: Equatable, Sendable {
    case null
    case integer(Int64)
    case real(Double)
    case text(String)
    case blob([UInt8])

    /// Column `column` (0-based) of the row `statement` is on.
    init(_ statement: OpaquePointer, _ column: CInt) {
        switch sqlite3_column_type(statement, column) {
        case SQLITE_INTEGER:
            self = .integer(sqlite3_column_int64(statement, column))
        case SQLITE_FLOAT:
            self = .real(sqlite3_column_double(statement, column))
        case SQLITE_TEXT:
            // The pointer first, then the length (SQLite's documented order).
            let bytes = sqlite3_column_text(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            self = .text(bytes.map { String(decoding: UnsafeBufferPointer(start: $0, count: count), as: UTF8.self) } ?? "")
        case SQLITE_BLOB:
            let bytes = sqlite3_column_blob(statement, column)
            let count = Int(sqlite3_column_bytes(statement, column))
            self = .blob(bytes.map { Array(UnsafeRawBufferPointer(start: $0, count: count)) } ?? [])
        default:
            self = .null
        }
    }
}

/// A type a column's value converts to: what `SQLRow`'s subscripts and the scalar `fetchOne` and
/// `fetchAll` below return. The conversions are GRDB's: integers and reals convert to each other
/// only when no digit is lost; text is text.
public protocol SQLColumn {
    /// The value, or nil when `value` is NULL or does not convert.
    init?(sqlValue value: SQLValue)
}

extension String: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        guard case .text(let text) = value else { return nil }
        self = text
    }
}

extension Int64: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        switch value {
        case .integer(let integer): self = integer
        case .real(let real): guard let exact = Int64(exactly: real) else { return nil }; self = exact
        default: return nil
        }
    }
}

extension Int: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        guard let wide = Int64(sqlValue: value), let narrow = Int(exactly: wide) else { return nil }
        self = narrow
    }
}

extension Double: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        switch value {
        case .integer(let integer): self = Double(integer)
        case .real(let real): self = real
        default: return nil
        }
    }
}

extension Bool: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        guard let integer = Int64(sqlValue: value) else { return nil }
        self = integer != 0
    }
}

extension Optional: SQLColumn where Wrapped: SQLColumn {
    public init?(sqlValue value: SQLValue) {
        if value == .null { self = .none; return }
        guard let wrapped = Wrapped(sqlValue: value) else { return nil }
        self = .some(wrapped)
    }
}

/// One row of a query's result, copied out of the statement: its values by position, and the
/// statement's column names (shared by every row of the statement, not copied).
///
/// Read much as GRDB's `Row` is read, `let status: String = try row["status"]` or `try row[0]`, but
/// a missing column, or a NULL or mismatched value read as a non-optional type, is an error
/// thrown, not a trap: a database torn by a power loss can hold a NULL in a NOT NULL column (the
/// outbox relay's read of one stopped the whole simulation with SIGILL), and what a service reads
/// from its disk is input like any other. Read optionals where NULL is a legitimate value.
public struct SQLRow: Sendable {
    public let columnNames: [String]
    public let values: [SQLValue]

    init(_ statement: OpaquePointer, columnNames: [String]) {
        self.columnNames = columnNames
        var values: [SQLValue] = []
        values.reserveCapacity(columnNames.count)
        for column in 0..<CInt(columnNames.count) { values.append(SQLValue(statement, column)) }
        self.values = values
    }

    /// The position of `column`: case-insensitive, as SQL's names and GRDB's `Row` are; the exact
    /// spelling is tried first.
    private func index(of column: String) -> Int? {
        columnNames.firstIndex(of: column) ?? columnNames.firstIndex { $0.caseInsensitiveCompare(column) == .orderedSame }
    }

    public subscript<Value: SQLColumn>(_ column: String) -> Value {
        get throws { try decode(forColumn: column) }
    }

    public subscript<Value: SQLColumn>(_ index: Int) -> Value {
        get throws { try decode(atIndex: index) }
    }

    /// Column `column`, or an error (not a trap) when it is missing or its value does not convert.
    public func decode<Value: SQLColumn>(forColumn column: String) throws -> Value {
        guard let index = index(of: column) else {
            throw SQLRowDecodingError(description: "no column \(column) among \(columnNames)")
        }
        return try decode(atIndex: index)
    }

    /// Column `index` (0-based), or an error when it is missing or its value does not convert.
    public func decode<Value: SQLColumn>(atIndex index: Int) throws -> Value {
        guard values.indices.contains(index) else {
            throw SQLRowDecodingError(description: "no column \(index) among \(columnNames)")
        }
        guard let value = Value(sqlValue: values[index]) else {
            throw SQLRowDecodingError(description: "column \(columnNames[index]) holds \(values[index]), not \(Value.self)")
        }
        return value
    }

    /// The first row of `sql` run with `arguments`, or nil when there is none.
    public static func fetchOne<each P: SQLParameter>(_ db: Database, cached sql: String, arguments: repeat each P) throws -> SQLRow? {
        let statement = try db.bound(sql, repeat each arguments)
        let names = statement.columnNames
        var first: SQLRow?
        try db.step(statement, sql) { handle in
            first = SQLRow(handle, columnNames: names)
            return false
        }
        return first
    }

    /// Every row of `sql` run with `arguments`.
    public static func fetchAll<each P: SQLParameter>(_ db: Database, cached sql: String, arguments: repeat each P) throws -> [SQLRow] {
        let statement = try db.bound(sql, repeat each arguments)
        let names = statement.columnNames
        var rows: [SQLRow] = []
        try db.step(statement, sql) { handle in
            rows.append(SQLRow(handle, columnNames: names))
            return true
        }
        return rows
    }
}

/// The row a statement is on, read in place: valid only inside the closure it is given to, and
/// each value is copied only when read (a column not read costs nothing).
public struct SQLRowView {
    let handle: OpaquePointer
    let columnCount: Int

    init(_ handle: OpaquePointer) {
        self.handle = handle
        self.columnCount = Int(sqlite3_column_count(handle))
    }

    /// Column `index` (0-based); a missing column, or a NULL or mismatched value read as a
    /// non-optional type, is an error thrown, as with `SQLRow`.
    public subscript<Value: SQLColumn>(_ index: Int) -> Value {
        get throws {
            guard index >= 0 && index < columnCount else {
                throw SQLRowDecodingError(description: "no column \(index) among \(columnCount)")
            }
            let value = SQLValue(handle, CInt(index))
            guard let converted = Value(sqlValue: value) else {
                throw SQLRowDecodingError(description: "column \(index) holds \(value), not \(Value.self)")
            }
            return converted
        }
    }
}

extension Database {
    /// Calls `body` with each row of `sql` run with `arguments`, in place (see `SQLRowView`).
    public func forEachRow<each P: SQLParameter>(cached sql: String, arguments: repeat each P,
                                                  body: (SQLRowView) throws -> Void) throws {
        let statement = try bound(sql, repeat each arguments)
        try step(statement, sql) { handle in
            try body(SQLRowView(handle))
            return true
        }
    }
}

/// A column a row was asked for that it does not have, or a value that does not convert.
public struct SQLRowDecodingError: Error, CustomStringConvertible {
    public let description: String
}

extension SQLColumn {
    /// The first column of the first row of `sql`, or nil when there is no row or it holds NULL.
    /// A value of another type is an error (`SQLITE_MISMATCH`), not nil.
    public static func fetchOne<each P: SQLParameter>(_ db: Database, cached sql: String, arguments: repeat each P) throws -> Self? {
        let statement = try db.bound(sql, repeat each arguments)
        var result: SQLValue = .null
        try db.step(statement, sql) { handle in
            result = SQLValue(handle, 0)
            return false
        }
        return try Self.converted(result, sql)
    }

    /// The first column of every row of `sql` whose value is not NULL.
    public static func fetchAll<each P: SQLParameter>(_ db: Database, cached sql: String, arguments: repeat each P) throws -> [Self] {
        let statement = try db.bound(sql, repeat each arguments)
        var values: [Self] = []
        try db.step(statement, sql) { handle in
            if let value = try Self.converted(SQLValue(handle, 0), sql) { values.append(value) }
            return true
        }
        return values
    }

    private static func converted(_ value: SQLValue, _ sql: String) throws -> Self? {
        if value == .null { return nil }
        guard let converted = Self(sqlValue: value) else {
            throw DatabaseError(resultCode: .SQLITE_MISMATCH, message: "\(value) is not \(Self.self)", sql: sql)
        }
        return converted
    }
}
