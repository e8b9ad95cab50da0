import Foundation
import Logging
import WaveStore
import WaveTesting

/// A database of its own on the test command's private PostgreSQL, created for one test and
/// dropped by ``drop()``; `psql` runs scripts and catalog queries in it.
struct TestDatabase {
    let url: PostgresURL
    let server: PostgresURL

    static var available: Bool { TestServers.available(TestServers.postgres) }

    static func make(_ name: String = #function) throws -> TestDatabase {
        let server = try PostgresURL(url: try TestServers.require(TestServers.postgres, "WAVE_TEST_POSTGRES_URL"))
        let prefix = name.prefix(while: { $0 != "(" }).lowercased().filter { $0.isLetter || $0.isNumber }.prefix(30)
        var url = server
        url.database = "t_\(prefix)_\(UUID().uuidString.prefix(8).lowercased())"
        let database = TestDatabase(url: url, server: server)
        _ = try database.psql(sql: "CREATE DATABASE \(url.database)", in: server)
        return database
    }

    /// Drops the database (its connections are gone by then).
    func drop() {
        _ = try? self.psql(sql: "DROP DATABASE IF EXISTS \(self.url.database) WITH (FORCE)", in: self.server)
    }

    /// Runs a script file; stops at its first error.
    func psql(file: URL) throws {
        _ = try self.run(["-f", file.path], in: self.url)
    }

    /// Runs SQL and returns the rows, one per line, fields separated by `|`.
    @discardableResult
    func psql(sql: String, in target: PostgresURL? = nil) throws -> [String] {
        let output = try self.run(["-At", "-c", sql], in: target ?? self.url)
        return output.split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
    }

    func run(_ arguments: [String], in target: PostgresURL) throws -> String {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: try TestServers.require(TestServers.psql, "WAVE_TEST_PSQL"))
        process.arguments = ["-q", "-v", "ON_ERROR_STOP=1", "-h", target.host, "-p", "\(target.port)", "-U", target.user, "-d", target.database] + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["PGPASSWORD"] = target.password ?? ""
        process.environment = environment
        let output = Pipe()
        let errors = Pipe()
        process.standardOutput = output
        process.standardError = errors
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        let errorData = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw TestEnvironmentError(message: "psql \(arguments.joined(separator: " ")) failed: \(String(decoding: errorData, as: UTF8.self))")
        }
        return String(decoding: data, as: UTF8.self)
    }

    /// The schema as text lines, by kind: columns, constraints, indexes, triggers, views,
    /// comments, extensions.
    func catalog() throws -> [String: Set<String>] {
        let tables = "'wave_sessions', 'wave_checkpoints', 'wave_story_executions'"
        return [
            "columns": Set(
                try self.psql(
                    sql: """
                        SELECT table_name || '.' || column_name || ' ' || data_type || coalesce('(' || character_maximum_length || ')', '')
                            || coalesce(' numeric(' || numeric_precision || ',' || numeric_scale || ')', '') || ' nullable=' || is_nullable
                            || ' default=' || coalesce(column_default, '-')
                        FROM information_schema.columns WHERE table_schema = 'public' AND table_name IN (\(tables))
                        """)),
            "constraints": Set(
                try self.psql(
                    sql:
                        "SELECT conrelid::regclass || ' ' || conname || ' ' || pg_get_constraintdef(oid) FROM pg_constraint WHERE connamespace = 'public'::regnamespace"
                )),
            "indexes": Set(try self.psql(sql: "SELECT indexname || ' ' || indexdef FROM pg_indexes WHERE schemaname = 'public'")),
            "triggers": Set(try self.psql(sql: "SELECT tgname || ' ' || pg_get_triggerdef(oid) FROM pg_trigger WHERE NOT tgisinternal")),
            "views": Set(try self.psql(sql: "SELECT viewname || ' ' || replace(definition, E'\\n', ' ') FROM pg_views WHERE schemaname = 'public'")),
            "comments": Set(
                try self.psql(
                    sql:
                        "SELECT relname || ' ' || obj_description(oid) FROM pg_class WHERE relnamespace = 'public'::regnamespace AND obj_description(oid) IS NOT NULL"
                )),
            "extensions": Set(try self.psql(sql: "SELECT extname FROM pg_extension")),
        ]
    }

    /// The reference's schema script (the fixture).
    static var referenceSchema: URL {
        Bundle.module.url(forResource: "reference-schema", withExtension: "sql", subdirectory: "Fixtures")!
    }

    static let logger: Logger = {
        var logger = Logger(label: "wave-pg-test")
        logger.logLevel = .critical
        return logger
    }()
}
