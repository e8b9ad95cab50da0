import Logging
import PostgresNIO
import WaveStore

/// Applies ``PostgresSchema`` to a database: every pending migration in one transaction, under
/// a PostgreSQL advisory lock, so that instances starting together migrate once (the others wait
/// for the lock, then find nothing to do), and a migration that cannot apply changes nothing.
///
/// Before changing anything it checks that tables with the reference's names are the
/// reference's (a database of something else is refused, its rows named), and that the rows
/// allow each migration (duplicate stories in a session block the unique index).
public struct PostgresMigrator: Sendable {
    /// The advisory lock's key: "WAVE" in ASCII.
    public static let lockKey: Int64 = 0x5741_5645

    /// The pool to migrate through.
    public let client: PostgresClient
    /// One line per migration applied.
    public let logger: Logger

    /// A migrator over a running client.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Every migration, in order: identifier and summary.
    public static var all: [(id: String, summary: String)] { PostgresSchema.migrations.map { ($0.id, $0.summary) } }

    /// The migrations applied so far, in order.
    public func applied() async throws -> [String] {
        try await self.client.withConnection { connection in try await Self.applied(connection, logger: self.logger) }
    }

    /// The migrations not applied yet (`wave store migrate --dry-run`): nothing is changed.
    public func pending() async throws -> [(id: String, summary: String)] {
        let done = Set(try await self.applied())
        return Self.all.filter { !done.contains($0.id) }
    }

    /// Applies what is pending; returns the identifiers applied (none when another instance did).
    /// - Throws: ``StoreError`` (`migrationBlocked`) naming the tables or rows in the way; nothing
    ///   was changed.
    @discardableResult
    public func migrate() async throws -> [String] {
        let logger = self.logger
        do {
            return try await self.client.withConnection { connection in
                try await connection.withTransaction(logger: logger) { connection in
                    try await connection.query("SELECT pg_advisory_xact_lock(\(Self.lockKey))", logger: logger)
                    let done = Set(try await Self.applied(connection, logger: logger))
                    let pending = PostgresSchema.migrations.filter { !done.contains($0.id) }
                    guard !pending.isEmpty else { return [] }
                    try await Self.checkReferenceTables(connection, logger: logger)
                    try await connection.query(
                        """
                        CREATE TABLE IF NOT EXISTS wave_schema_migrations (
                            id TEXT NOT NULL PRIMARY KEY, applied_at TIMESTAMP WITH TIME ZONE NOT NULL DEFAULT NOW())
                        """, logger: logger)
                    for migration in pending {
                        if migration.id == "005-unique-story-per-session" { try await Self.checkUniqueStories(connection, logger: logger) }
                        for statement in migration.statements {
                            try await connection.query(PostgresQuery(unsafeSQL: statement), logger: logger)
                        }
                        try await connection.query("INSERT INTO wave_schema_migrations (id) VALUES (\(migration.id))", logger: logger)
                        logger.info("migration applied", metadata: ["wave.migration": "\(migration.id)"])
                    }
                    return pending.map(\.id)
                }
            }
        } catch let error as PostgresTransactionError {
            // What failed inside is the cause; the transaction rolled back.
            if let cause = error.closureError as? StoreError { throw cause }
            throw error.closureError ?? error.commitError ?? error.beginError ?? error
        }
    }

    static func applied(_ connection: PostgresConnection, logger: Logger) async throws -> [String] {
        let exists = try await connection.query("SELECT to_regclass('wave_schema_migrations') IS NOT NULL", logger: logger)
        var present = false
        for try await value in exists.decode(Bool.self) { present = value }
        guard present else { return [] }
        var ids: [String] = []
        for try await id in try await connection.query("SELECT id FROM wave_schema_migrations ORDER BY id", logger: logger).decode(String.self) {
            ids.append(id)
        }
        return ids
    }

    /// Refuses tables that carry the reference's names without its columns.
    static func checkReferenceTables(_ connection: PostgresConnection, logger: Logger) async throws {
        var columns: [String: Set<String>] = [:]
        let rows = try await connection.query(
            """
            SELECT table_name, column_name FROM information_schema.columns
            WHERE table_schema = current_schema() AND table_name IN ('wave_sessions', 'wave_checkpoints', 'wave_story_executions')
            """, logger: logger)
        for try await (table, column) in rows.decode((String, String).self) { columns[table, default: []].insert(column) }
        var problems: [String] = []
        for (table, required) in PostgresSchema.referenceColumns.sorted(by: { $0.key < $1.key }) {
            guard let present = columns[table] else { continue }
            let missing = required.filter { !present.contains($0) }
            if !missing.isEmpty { problems.append("\(table) has no column\(missing.count == 1 ? "" : "s") \(missing.joined(separator: ", "))") }
        }
        guard problems.isEmpty else {
            throw StoreError(
                .migrationBlocked,
                "this database's tables are not the reference's (\(problems.joined(separator: "; "))): it is not a WAVE database; nothing was changed")
        }
    }

    /// Refuses the unique (session, story) index while rows break it, naming them.
    static func checkUniqueStories(_ connection: PostgresConnection, logger: Logger) async throws {
        let rows = try await connection.query(
            """
            SELECT session_id::text, story_id, COUNT(*)::bigint FROM wave_story_executions
            GROUP BY session_id, story_id HAVING COUNT(*) > 1 ORDER BY session_id, story_id LIMIT 20
            """, logger: logger)
        var names: [String] = []
        for try await (session, story, count) in rows.decode((String, String, Int64).self) {
            names.append("\(story) in session \(session) (\(count) rows)")
        }
        guard names.isEmpty else {
            throw StoreError(
                .migrationBlocked, "005-unique-story-per-session cannot apply: duplicate stories \(names.joined(separator: "; ")); nothing was changed")
        }
    }
}
