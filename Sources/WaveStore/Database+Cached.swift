import GRDB

// Hot-path statements are compiled once per connection and reused (GRDB's statement cache):
// compiling a statement is most of the cost of a small one.

extension Database {
    /// Executes one statement from the statement cache.
    func execute(cached sql: String, arguments: StatementArguments = StatementArguments()) throws {
        try self.cachedStatement(sql: sql).execute(arguments: arguments)
    }
}

extension Row {
    /// One row, through the statement cache.
    static func fetchOne(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Row? {
        try Row.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    /// All rows, through the statement cache.
    static func fetchAll(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Row] {
        try Row.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}

extension DatabaseValueConvertible where Self: StatementColumnConvertible {
    /// One value, through the statement cache.
    static func fetchOne(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> Self? {
        try Self.fetchOne(db.cachedStatement(sql: sql), arguments: arguments)
    }

    /// All values, through the statement cache.
    static func fetchAll(cached db: Database, sql: String, arguments: StatementArguments = StatementArguments()) throws -> [Self] {
        try Self.fetchAll(db.cachedStatement(sql: sql), arguments: arguments)
    }
}
