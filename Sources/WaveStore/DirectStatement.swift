import GRDB
import GRDBSQLite

/// Binds a statement's parameters through SQLite's C API, in order, without building GRDB's
/// `StatementArguments` (an array of boxed values per row). Used by the writes that run once per
/// applied message (story rows, checkpoints, ledger entries) and the story lookup, where that
/// array cost as much as SQLite's own work.
struct DirectBinder {
    let handle: SQLiteStatement
    private(set) var index: Int32 = 0

    init(_ handle: SQLiteStatement) {
        self.handle = handle
    }

    /// SQLite copies the bytes before the call returns.
    private static let transient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

    mutating func text(_ value: String?) {
        self.index += 1
        guard var value else {
            sqlite3_bind_null(self.handle, self.index)
            return
        }
        let handle = self.handle, index = self.index
        value.withUTF8 { bytes in
            // An empty buffer may have no address; SQLite reads a null pointer as NULL, not "".
            let base = bytes.baseAddress.map { UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self) }
            if let base {
                _ = sqlite3_bind_text(handle, index, base, Int32(bytes.count), Self.transient)
            } else {
                _ = sqlite3_bind_text(handle, index, "", 0, Self.transient)
            }
        }
    }

    mutating func int(_ value: Int?) {
        self.index += 1
        if let value { sqlite3_bind_int64(self.handle, self.index, Int64(value)) } else { sqlite3_bind_null(self.handle, self.index) }
    }

    mutating func double(_ value: Double?) {
        self.index += 1
        if let value { sqlite3_bind_double(self.handle, self.index, value) } else { sqlite3_bind_null(self.handle, self.index) }
    }
}

/// The current row of a statement stepped through SQLite's C API.
struct DirectRow {
    let handle: SQLiteStatement

    func text(_ column: Int32) -> String? {
        guard sqlite3_column_type(self.handle, column) != SQLITE_NULL, let bytes = sqlite3_column_text(self.handle, column) else { return nil }
        return String(cString: bytes)
    }

    func int(_ column: Int32) -> Int? {
        sqlite3_column_type(self.handle, column) == SQLITE_NULL ? nil : Int(sqlite3_column_int64(self.handle, column))
    }
}

extension Database {
    /// Runs a cached statement that returns no rows, its parameters bound by `bind` in order.
    func executeDirect(cached sql: String, _ bind: (inout DirectBinder) -> Void) throws {
        _ = try self.stepDirect(cached: sql, bind) { _ in () }
    }

    /// Runs a cached query, its parameters bound by `bind` in order, and reads its first row with
    /// `read` (`nil` when it returns none).
    func fetchOneDirect<T>(cached sql: String, _ bind: (inout DirectBinder) -> Void, _ read: (DirectRow) -> T) throws -> T? {
        try self.stepDirect(cached: sql, bind, read)
    }

    /// Runs a cached query, its parameters bound by `bind` in order, and reads every row with `read`.
    func fetchAllDirect<T>(cached sql: String, _ bind: (inout DirectBinder) -> Void, _ read: (DirectRow) -> T) throws -> [T] {
        let handle = try self.boundStatement(cached: sql, bind)
        defer { sqlite3_reset(handle) }
        var rows: [T] = []
        while true {
            let code = sqlite3_step(handle)
            switch code {
            case SQLITE_ROW: rows.append(read(DirectRow(handle: handle)))
            case SQLITE_DONE: return rows
            default: throw DatabaseError(resultCode: ResultCode(rawValue: code), message: self.lastErrorMessage, sql: sql)
            }
        }
    }

    private func boundStatement(cached sql: String, _ bind: (inout DirectBinder) -> Void) throws -> SQLiteStatement {
        let statement = try self.cachedStatement(sql: sql)
        let handle = statement.sqliteStatement
        sqlite3_reset(handle)
        var binder = DirectBinder(handle)
        bind(&binder)
        guard binder.index == sqlite3_bind_parameter_count(handle) else {
            throw DatabaseError(resultCode: .SQLITE_MISUSE, message: "\(binder.index) parameters bound for \(sqlite3_bind_parameter_count(handle))", sql: sql)
        }
        return handle
    }

    private func stepDirect<T>(cached sql: String, _ bind: (inout DirectBinder) -> Void, _ read: (DirectRow) -> T) throws -> T? {
        let handle = try self.boundStatement(cached: sql, bind)
        defer { sqlite3_reset(handle) }
        let code = sqlite3_step(handle)
        switch code {
        case SQLITE_ROW: return read(DirectRow(handle: handle))
        case SQLITE_DONE: return nil
        default: throw DatabaseError(resultCode: ResultCode(rawValue: code), message: self.lastErrorMessage, sql: sql)
        }
    }
}
