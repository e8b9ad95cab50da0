import Foundation
import PostgresNIO
import Testing
import WavePostgres
import WaveStore
import WaveTesting

/// Runs the migrator on a database.
func migrate(_ database: TestDatabase) async throws -> [String] {
    try await PostgresConnector(url: database.url, logger: TestDatabase.logger).withClient { client in
        try await PostgresMigrator(client: client, logger: TestDatabase.logger).migrate()
    }
}

@Suite("PostgreSQL schema: the reference's migration, then Wave's, under an advisory lock", .enabled(if: TestDatabase.available))
struct PostgresSchemaTests {
    /// Wave's additive columns on the reference's tables.
    static let waveColumns: Set<String> = [
        "wave_story_executions.version", "wave_story_executions.current_gate", "wave_story_executions.blocked_reason", "wave_sessions.paused_at",
        "wave_sessions.wave_cost_usd", "wave_checkpoints.seq", "wave_checkpoints.superseded",
    ]

    @Test("a new database gets exactly what the reference's migration creates, plus Wave's additions and nothing else")
    func newDatabaseMatchesTheReference() async throws {
        let reference = try TestDatabase.make()
        defer { reference.drop() }
        try reference.psql(file: TestDatabase.referenceSchema)
        let wave = try TestDatabase.make()
        defer { wave.drop() }
        let applied = try await migrate(wave)
        #expect(applied == PostgresMigrator.all.map(\.id))

        let expected = try reference.catalog()
        let actual = try wave.catalog()
        // The reference's objects, counted (a catalog query that read nothing would prove nothing).
        let counts = expected.mapValues(\.count)
        // 16 + 10 + 28 columns; 3 primary keys and 3 + 4 + 5 indexes; 3 primary keys, 3 foreign
        // keys and 4 + 2 + 4 checks.
        #expect(counts == ["columns": 54, "indexes": 15, "constraints": 16, "triggers": 2, "views": 2, "comments": 3, "extensions": 2], "\(counts)")
        for (kind, lines) in expected {
            let missing = lines.subtracting(actual[kind] ?? [])
            #expect(missing.isEmpty, "\(kind) of the reference missing or different in Wave's database: \(missing.sorted())")
        }
        // What Wave adds to the reference's tables: its own columns, nothing changed.
        let added = (actual["columns"] ?? []).subtracting(expected["columns"] ?? []).map { String($0.prefix(while: { $0 != " " })) }
        #expect(Set(added) == Self.waveColumns, "\(added.sorted())")
        // Its own indexes, by their names; the reference's views, triggers, comments unchanged.
        let indexes = (actual["indexes"] ?? []).subtracting(expected["indexes"] ?? []).map { String($0.prefix(while: { $0 != " " })) }
        #expect(
            Set(indexes) == [
                "idx_checkpoints_seq", "idx_checkpoints_story_seq", "wave_processed_messages_pkey", "idx_processed_applied", "wave_source_seq_pkey",
                "wave_outbox_pkey", "wave_escalations_pkey", "idx_escalations_open", "wave_emergency_stops_pkey", "wave_counters_pkey",
                "wave_settings_pkey", "idx_stories_session_story", "idx_stories_session_status", "idx_emergency_stops_active", "wave_orchestrators_pkey",
                "wave_schema_migrations_pkey", "wave_project_leases_pkey",
            ], "\(indexes.sorted())")
        #expect(actual["views"] == expected["views"])
        #expect(actual["triggers"] == expected["triggers"])
        #expect(actual["comments"] == expected["comments"])
        #expect(actual["extensions"] == expected["extensions"])
    }

    @Test("a database made by the reference's migration is adopted: its rows and views unchanged, checkpoints numbered in order")
    func adoptsAReferenceDatabase() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        try database.psql(file: TestDatabase.referenceSchema)
        // Rows as the reference writes them: naive UTC timestamps, a stale metadata.current_gate,
        // two-decimal costs, NULL counters.
        try database.psql(
            sql: """
                INSERT INTO wave_sessions (id, project_name, wave_number, status, started_at, budget_usd, actual_cost_usd, token_count,
                    story_count, stories_completed, stories_failed, metadata)
                VALUES ('6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'RefProj', 1, 'in_progress', '2026-11-01 10:00:00', 5.00, 1.25, NULL, 2, NULL, NULL, '{}');
                INSERT INTO wave_story_executions (id, session_id, story_id, story_title, domain, agent, status, started_at, cost_usd, metadata)
                VALUES ('11111111-2222-4333-8444-555555555555', '6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'REF-1', 'First', 'backend', 'be',
                        'in_progress', '2026-11-01 10:00:05', 0.42, '{"current_gate": "gate-1"}'),
                       ('11111111-2222-4333-8444-666666666666', '6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'REF-2', 'Second', 'frontend', 'fe',
                        'pending', NULL, 0, '{}');
                INSERT INTO wave_checkpoints (id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, created_at)
                VALUES ('aaaaaaaa-0000-4000-8000-000000000002', '6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'gate', 'gate-2 passed', 'REF-1', 'gate-2',
                        '{"status": "passed"}', 'BE-1', '2026-11-01 10:20:00'),
                       ('aaaaaaaa-0000-4000-8000-000000000001', '6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'gate', 'gate-1 passed', 'REF-1', 'gate-1',
                        '{"status": "passed"}', 'BE-1', '2026-11-01 10:10:00');
                """)
        func rows() throws -> [String] {
            try database.psql(sql: "SELECT row_to_json(s)::text FROM (SELECT * FROM wave_sessions ORDER BY id) s")
                + database.psql(sql: "SELECT row_to_json(s)::text FROM (SELECT * FROM wave_story_executions ORDER BY id) s")
                + database.psql(sql: "SELECT row_to_json(s)::text FROM (SELECT * FROM wave_checkpoints ORDER BY id) s")
        }
        let before = try rows()
        let views = try database.psql(sql: "SELECT project_name, stories_completed FROM active_wave_sessions")
        let summary = try database.psql(sql: "SELECT story_id, status, cost_usd FROM story_execution_summary ORDER BY story_id")

        #expect(try await migrate(database).count == PostgresMigrator.all.count)

        // The reference's columns of every row are as they were (Wave's columns come after them).
        let after =
            try database.psql(
                sql:
                    "SELECT row_to_json(s)::text FROM (SELECT \(try referenceColumns(database, "wave_sessions")) FROM wave_sessions ORDER BY id) s")
            + database.psql(
                sql:
                    "SELECT row_to_json(s)::text FROM (SELECT \(try referenceColumns(database, "wave_story_executions")) FROM wave_story_executions ORDER BY id) s"
            )
            + database.psql(
                sql:
                    "SELECT row_to_json(s)::text FROM (SELECT \(try referenceColumns(database, "wave_checkpoints")) FROM wave_checkpoints ORDER BY id) s")
        #expect(after == before)
        #expect(try database.psql(sql: "SELECT project_name, stories_completed FROM active_wave_sessions") == views)
        #expect(try database.psql(sql: "SELECT story_id, status, cost_usd FROM story_execution_summary ORDER BY story_id") == summary)
        // Checkpoints numbered in the order they were made, not in id order.
        #expect(try database.psql(sql: "SELECT gate || ':' || seq FROM wave_checkpoints ORDER BY seq") == ["gate-1:1", "gate-2:2"])
        #expect(try database.psql(sql: "SELECT story_id || ':' || version FROM wave_story_executions ORDER BY story_id") == ["REF-1:0", "REF-2:0"])
        // A second run finds nothing to do.
        #expect(try await migrate(database).isEmpty)
    }

    @Test("a database made by SQLAlchemy's create_all (no defaults, indexes, triggers or views) is adopted: no reference column changes")
    func adoptsACreateAllDatabase() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        // What create_all makes from the reference's models on PostgreSQL: the columns, NOT NULL,
        // keys and CHECK names; defaults stay in Python.
        try database.psql(
            sql: """
                CREATE TABLE wave_sessions (
                    id UUID NOT NULL, project_name VARCHAR(255) NOT NULL, wave_number INTEGER NOT NULL, status VARCHAR(50) NOT NULL,
                    started_at TIMESTAMP WITH TIME ZONE, completed_at TIMESTAMP WITH TIME ZONE, failed_at TIMESTAMP WITH TIME ZONE,
                    budget_usd NUMERIC(10, 2), actual_cost_usd NUMERIC(10, 2), token_count INTEGER, story_count INTEGER, stories_completed INTEGER,
                    stories_failed INTEGER, metadata JSONB, created_at TIMESTAMP WITH TIME ZONE, updated_at TIMESTAMP WITH TIME ZONE,
                    PRIMARY KEY (id),
                    CONSTRAINT wave_sessions_status_check CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
                    CONSTRAINT wave_sessions_wave_number_check CHECK (wave_number >= 0),
                    CONSTRAINT wave_sessions_budget_check CHECK (budget_usd >= 0),
                    CONSTRAINT wave_sessions_cost_check CHECK (actual_cost_usd >= 0));
                CREATE TABLE wave_checkpoints (
                    id UUID NOT NULL, session_id UUID NOT NULL, checkpoint_type VARCHAR(50) NOT NULL, checkpoint_name VARCHAR(255) NOT NULL,
                    story_id VARCHAR(100), gate VARCHAR(20), state JSONB NOT NULL, agent_id VARCHAR(100), parent_checkpoint_id UUID,
                    created_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (id),
                    CONSTRAINT wave_checkpoints_type_check CHECK (checkpoint_type IN ('gate', 'story_start', 'story_complete', 'agent_handoff', 'error', 'manual')),
                    CONSTRAINT wave_checkpoints_gate_check CHECK (gate IS NULL OR gate IN ('gate-0', 'gate-1', 'gate-2', 'gate-3', 'gate-4', 'gate-5', 'gate-6', 'gate-7')),
                    FOREIGN KEY (session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE,
                    FOREIGN KEY (parent_checkpoint_id) REFERENCES wave_checkpoints (id));
                CREATE TABLE wave_story_executions (
                    id UUID NOT NULL, session_id UUID NOT NULL, story_id VARCHAR(100) NOT NULL, story_title VARCHAR(255) NOT NULL,
                    domain VARCHAR(100) NOT NULL, agent VARCHAR(100) NOT NULL, status VARCHAR(50) NOT NULL, priority VARCHAR(20), story_points INTEGER,
                    started_at TIMESTAMP WITH TIME ZONE, completed_at TIMESTAMP WITH TIME ZONE, failed_at TIMESTAMP WITH TIME ZONE, token_count INTEGER,
                    cost_usd NUMERIC(10, 4), retry_count INTEGER, acceptance_criteria_passed INTEGER, acceptance_criteria_total INTEGER,
                    tests_passing BOOLEAN, coverage_achieved NUMERIC(5, 2), files_created TEXT[], files_modified TEXT[], branch_name VARCHAR(255),
                    commit_sha VARCHAR(40), pr_url VARCHAR(500), error_message TEXT, metadata JSONB, created_at TIMESTAMP WITH TIME ZONE,
                    updated_at TIMESTAMP WITH TIME ZONE, PRIMARY KEY (id),
                    CONSTRAINT wave_story_executions_status_check CHECK (status IN ('pending', 'in_progress', 'blocked', 'review', 'complete', 'failed', 'cancelled')),
                    CONSTRAINT wave_story_executions_retry_check CHECK (retry_count >= 0),
                    CONSTRAINT wave_story_executions_cost_check CHECK (cost_usd >= 0),
                    CONSTRAINT wave_story_executions_ac_check CHECK (acceptance_criteria_passed <= acceptance_criteria_total),
                    FOREIGN KEY (session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE);
                INSERT INTO wave_sessions (id, project_name, wave_number, status, started_at, budget_usd, actual_cost_usd, metadata)
                VALUES ('6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'Shop', 2, 'pending', '2026-11-02 09:00:00', 3.50, 0.00, '{}');
                INSERT INTO wave_story_executions (id, session_id, story_id, story_title, domain, agent, status, metadata)
                VALUES ('11111111-2222-4333-8444-555555555555', '6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'C-1', 'Cart', 'backend', 'be', 'pending', NULL);
                """)
        let before = try database.catalog()
        let rowsBefore = try database.psql(sql: "SELECT row_to_json(s)::text FROM (SELECT * FROM wave_story_executions) s")
        #expect(try await migrate(database) == PostgresMigrator.all.map(\.id))
        let after = try database.catalog()
        // Every reference column keeps its type, nullability and (absent) default; every CHECK stays.
        #expect(before["columns"]!.isSubset(of: after["columns"]!), "\(before["columns"]!.subtracting(after["columns"]!).sorted())")
        #expect(before["constraints"]!.isSubset(of: after["constraints"]!))
        #expect(
            try database.psql(
                sql:
                    "SELECT row_to_json(s)::text FROM (SELECT \(try referenceColumns(database, "wave_story_executions")) FROM wave_story_executions) s")
                == rowsBefore)
        // The reference's views and indexes are there now, and answer.
        #expect(try database.psql(sql: "SELECT project_name || ':' || completion_percentage FROM active_wave_sessions") == ["Shop:0"])
        #expect(try database.psql(sql: "SELECT story_id FROM story_execution_summary") == ["C-1"])
        #expect(try database.psql(sql: "SELECT count(*) FROM pg_indexes WHERE indexname LIKE 'idx_wave_%'") == ["12"])
    }

    @Test("instances starting together migrate once: one applies everything, the others wait for the lock and find nothing to do")
    func concurrentMigrationsApplyOnce() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        let results = try await withThrowingTaskGroup(of: [String].self) { group in
            for _ in 0..<3 { group.addTask { try await migrate(database) } }
            var results: [[String]] = []
            for try await result in group { results.append(result) }
            return results
        }
        #expect(results.filter { !$0.isEmpty } == [PostgresMigrator.all.map(\.id)], "\(results)")
        #expect(try database.psql(sql: "SELECT count(*) FROM wave_schema_migrations") == ["\(PostgresMigrator.all.count)"])
    }

    @Test("a database whose tables have the reference's names but other columns is refused, and nothing is changed")
    func refusesAnotherApplicationsTables() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        try database.psql(sql: "CREATE TABLE wave_sessions (id SERIAL PRIMARY KEY, name TEXT NOT NULL); INSERT INTO wave_sessions (name) VALUES ('theirs')")
        await #expect {
            try await migrate(database)
        } throws: { error in
            guard let error = error as? StoreError, error.code == .migrationBlocked else { return false }
            return error.message.contains("wave_sessions has no columns project_name") && error.message.contains("nothing was changed")
        }
        #expect(try database.psql(sql: "SELECT to_regclass('wave_schema_migrations') IS NULL AND to_regclass('wave_checkpoints') IS NULL") == ["t"])
        #expect(try database.psql(sql: "SELECT count(*) FROM pg_extension WHERE extname = 'uuid-ossp'") == ["0"])
        #expect(
            try database.psql(
                sql: "SELECT string_agg(column_name, ',' ORDER BY ordinal_position) FROM information_schema.columns WHERE table_name = 'wave_sessions'")
                == ["id,name"])
        #expect(try database.psql(sql: "SELECT name FROM wave_sessions") == ["theirs"])
    }

    @Test("duplicate stories in a session block the unique index: the rows are named and nothing is changed")
    func duplicateStoriesBlockTheMigration() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        try database.psql(file: TestDatabase.referenceSchema)
        try database.psql(
            sql: """
                INSERT INTO wave_sessions (id, project_name, wave_number) VALUES ('6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'dup', 1);
                INSERT INTO wave_story_executions (session_id, story_id, story_title, domain, agent)
                VALUES ('6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'S-1', 'One', 'backend', 'be'),
                       ('6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b', 'S-1', 'One again', 'backend', 'be');
                """)
        await #expect {
            try await migrate(database)
        } throws: { error in
            guard let error = error as? StoreError, error.code == .migrationBlocked else { return false }
            return error.message.contains("S-1 in session 6f1d2c3b-4a59-4e6f-8a7b-9c0d1e2f3a4b (2 rows)")
        }
        #expect(try database.psql(sql: "SELECT to_regclass('wave_schema_migrations') IS NULL AND to_regclass('wave_processed_messages') IS NULL") == ["t"])
        #expect(
            try database.psql(sql: "SELECT count(*) FROM information_schema.columns WHERE table_name = 'wave_story_executions' AND column_name = 'version'")
                == ["0"])
    }

    @Test("a wrong password, a server that is not there and a database that does not exist are clear errors")
    func connectionErrorsAreClear() async throws {
        let server = try PostgresURL(url: try TestServers.require(TestServers.postgres, "WAVE_TEST_POSTGRES_URL"))
        var wrong = server
        wrong.password = "not-the-password"
        await #expect {
            try await PostgresConnector(url: wrong, logger: TestDatabase.logger).check()
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .authenticationFailed && error.message.contains("check the user and password") && !error.message.contains("not-the-password")
        }
        var absent = server
        absent.port = try freePort()
        await #expect {
            try await PostgresConnector(url: absent, logger: TestDatabase.logger).check()
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .unreachable && error.message.contains("is PostgreSQL running there")
        }
        var missing = server
        missing.database = "no_such_database"
        await #expect {
            try await PostgresConnector(url: missing, logger: TestDatabase.logger).check()
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .unreachable && error.message.contains("createdb no_such_database")
        }
    }
}

@Suite("PostgreSQL over TLS: sslmode and sslrootcert", .enabled(if: TestDatabase.available))
struct PostgresTLSTests {
    /// Whether the pool's connection to `url` is encrypted, as the server sees it.
    func encrypted(_ url: PostgresURL) async throws -> Bool {
        try await PostgresConnector(url: url, logger: TestDatabase.logger).withClient { client in
            var result = false
            for try await ssl in try await client.query("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").decode(Bool.self) { result = ssl }
            return result
        }
    }

    @Test("disable connects in clear; require and prefer encrypt; verify-full verifies the certificate against sslrootcert and the host name")
    func sslModes() async throws {
        let server = try PostgresURL(url: try TestServers.require(TestServers.postgres, "WAVE_TEST_POSTGRES_URL"))
        let ca = try TestServers.require(TestServers.postgresTLSCA, "WAVE_TEST_POSTGRES_TLS_CA")
        var url = server
        url.sslMode = .disable
        #expect(try await self.encrypted(url) == false)
        url.sslMode = .require
        #expect(try await self.encrypted(url) == true)
        url.sslMode = .prefer
        #expect(try await self.encrypted(url) == true)
        url.sslMode = .verifyFull
        url.host = "localhost"
        url.sslRootCertificate = ca
        #expect(try await self.encrypted(url) == true)
        #expect(try PostgresURL(url: url.connectionURL) == url, "sslrootcert survives the URL")
        // Not signed by a root the system trusts: refused, with a hint.
        url.sslRootCertificate = nil
        await #expect {
            try await PostgresConnector(url: url, logger: TestDatabase.logger).check()
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .unreachable && error.message.contains("TLS handshake") && error.message.contains("sslrootcert")
        }
    }
}

/// The reference's columns of a table, as a select list.
func referenceColumns(_ database: TestDatabase, _ table: String) throws -> String {
    let wave: Set<String> = ["version", "current_gate", "blocked_reason", "paused_at", "wave_cost_usd", "seq", "superseded"]
    return try database.psql(sql: "SELECT column_name FROM information_schema.columns WHERE table_name = '\(table)' ORDER BY ordinal_position")
        .filter { !wave.contains($0) }.joined(separator: ", ")
}

/// A loopback port nothing listens on (bound, then released).
func freePort() throws -> Int {
    let socket = Foundation.socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    defer { close(socket) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(socket, $0, length) == 0 && getsockname(socket, $0, &length) == 0 }
    }
    guard bound else { throw TestEnvironmentError(message: "no free port") }
    return Int(UInt16(bigEndian: address.sin_port))
}
