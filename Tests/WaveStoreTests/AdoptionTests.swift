import Foundation
import GRDB
import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

/// The reference's three tables as its SQLAlchemy models create them on SQLite (wave-domain.md
/// §1): CHECK constraints, UUIDs as 32 hex digits, JSON as text, none of Wave's columns.
let referenceDDL = """
    CREATE TABLE wave_sessions (
        id CHAR(32) NOT NULL, project_name VARCHAR(255) NOT NULL, wave_number INTEGER NOT NULL,
        status VARCHAR(50) NOT NULL, started_at DATETIME, completed_at DATETIME, failed_at DATETIME,
        budget_usd NUMERIC(10, 2), actual_cost_usd NUMERIC(10, 2), token_count INTEGER, story_count INTEGER,
        stories_completed INTEGER, stories_failed INTEGER, metadata JSON, created_at DATETIME, updated_at DATETIME,
        PRIMARY KEY (id),
        CONSTRAINT check_wave_number_positive CHECK (wave_number >= 0),
        CONSTRAINT check_session_status CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
        CONSTRAINT check_budget_positive CHECK (budget_usd >= 0),
        CONSTRAINT check_cost_positive CHECK (actual_cost_usd >= 0)
    );
    CREATE TABLE wave_story_executions (
        id CHAR(32) NOT NULL, session_id CHAR(32) NOT NULL, story_id VARCHAR(100) NOT NULL, story_title VARCHAR(255) NOT NULL,
        domain VARCHAR(100) NOT NULL, agent VARCHAR(100) NOT NULL, status VARCHAR(50) NOT NULL, priority VARCHAR(20),
        story_points INTEGER, started_at DATETIME, completed_at DATETIME, failed_at DATETIME, token_count INTEGER,
        cost_usd NUMERIC(10, 4), retry_count INTEGER, acceptance_criteria_passed INTEGER, acceptance_criteria_total INTEGER,
        tests_passing BOOLEAN, coverage_achieved NUMERIC(5, 2), files_created JSON, files_modified JSON,
        branch_name VARCHAR(255), commit_sha VARCHAR(40), pr_url VARCHAR(500), error_message TEXT, metadata JSON,
        created_at DATETIME, updated_at DATETIME,
        PRIMARY KEY (id),
        CONSTRAINT check_story_status CHECK (status IN ('pending', 'in_progress', 'blocked', 'review', 'complete', 'failed', 'cancelled')),
        CONSTRAINT check_cost_positive CHECK (cost_usd >= 0),
        CONSTRAINT check_retry_positive CHECK (retry_count >= 0),
        CONSTRAINT check_ac_valid CHECK (acceptance_criteria_passed <= acceptance_criteria_total),
        FOREIGN KEY(session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE
    );
    CREATE TABLE wave_checkpoints (
        id CHAR(32) NOT NULL, session_id CHAR(32) NOT NULL, checkpoint_type VARCHAR(50) NOT NULL,
        checkpoint_name VARCHAR(255) NOT NULL, story_id VARCHAR(100), gate VARCHAR(20), state JSON NOT NULL,
        agent_id VARCHAR(100), parent_checkpoint_id CHAR(32), created_at DATETIME,
        PRIMARY KEY (id),
        CONSTRAINT check_checkpoint_type CHECK (checkpoint_type IN ('gate', 'story_start', 'story_complete', 'agent_handoff', 'error', 'manual')),
        CONSTRAINT check_gate_value CHECK (gate IS NULL OR gate IN ('gate-0', 'gate-1', 'gate-2', 'gate-3', 'gate-4', 'gate-5', 'gate-6', 'gate-7')),
        FOREIGN KEY(session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE,
        FOREIGN KEY(parent_checkpoint_id) REFERENCES wave_checkpoints (id)
    );
    """

let sessionHex = "0f8e1c2d3b4a59687766554433221100"

/// A database as the reference leaves it: a session in progress; S-1 whose metadata lost its
/// gate updates (it says gate-1, while its checkpoints show gates 0–2 passed); S-2 pending.
func makeReferenceDatabase(at path: String, duplicateStory: Bool = false) throws {
    try FileManager.default.createDirectory(at: URL(fileURLWithPath: path).deletingLastPathComponent(), withIntermediateDirectories: true)
    let queue = try DatabaseQueue(path: path)
    try queue.write { db in
        try db.execute(sql: referenceDDL)
        try db.execute(
            sql: """
                INSERT INTO wave_sessions VALUES ('\(sessionHex)', 'shop', 3, 'in_progress', '2026-01-05 10:00:00.000000', NULL, NULL, 2.00, 0.12, 1500, 2, 0, 0, '{}',
                    '2026-01-05 10:00:00.000000', '2026-01-05 10:05:00.000000');
                INSERT INTO wave_story_executions (id, session_id, story_id, story_title, domain, agent, status, started_at, token_count, cost_usd, retry_count,
                    acceptance_criteria_passed, acceptance_criteria_total, tests_passing, metadata, created_at, updated_at)
                VALUES ('aa000000000000000000000000000001', '\(sessionHex)', 'S-1', 'Checkout', 'backend', 'BE-1', 'in_progress', '2026-01-05 10:00:01.000000',
                    1500, 0.12, 1, 3, 5, 0, '{"current_gate": "gate-1", "last_transition_reason": "started"}', '2026-01-05 10:00:01.000000', '2026-01-05 10:04:00.000000'),
                ('aa000000000000000000000000000002', '\(sessionHex)', 'S-2', 'Receipts', 'backend', 'BE-1', 'pending', NULL, 0, 0, 0, 0, 0, 0, '{}',
                    '2026-01-05 10:00:02.000000', '2026-01-05 10:00:02.000000');
                """)
        if duplicateStory {
            try db.execute(
                sql: """
                    INSERT INTO wave_story_executions (id, session_id, story_id, story_title, domain, agent, status, metadata, created_at)
                    VALUES ('aa000000000000000000000000000003', '\(sessionHex)', 'S-2', 'Receipts again', 'backend', 'BE-1', 'pending', '{}', '2026-01-05 10:00:03.000000')
                    """)
        }
        // Checkpoints with equal timestamps: only insertion order tells them apart.
        for (i, gate) in ["gate-0", "gate-1", "gate-2"].enumerated() {
            try db.execute(
                sql: """
                    INSERT INTO wave_checkpoints VALUES (?, ?, 'gate', ?, 'S-1', ?, ?, 'BE-1', NULL, '2026-01-05 10:03:00')
                    """,
                arguments: [
                    "cc00000000000000000000000000000\(i)", sessionHex, "\(gate): passed", gate,
                    "{\"gate\": \"\(gate)\", \"status\": \"passed\", \"ac_passed\": 3, \"ac_total\": 5}",
                ])
        }
    }
}

/// The reference's columns of every row, for before/after comparisons.
func referenceColumns(_ reader: any DatabaseReader) throws -> [[String]] {
    try reader.read { db in
        var rows: [[String]] = []
        for (table, columns) in [
            ("wave_sessions", "id, project_name, wave_number, status, started_at, budget_usd, actual_cost_usd, token_count, metadata, created_at"),
            (
                "wave_story_executions",
                "id, session_id, story_id, story_title, domain, agent, status, started_at, token_count, cost_usd, retry_count, acceptance_criteria_passed, acceptance_criteria_total, metadata"
            ),
            ("wave_checkpoints", "id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, created_at"),
        ] {
            for row in try Row.fetchAll(db, sql: "SELECT \(columns) FROM \(table) ORDER BY rowid") {
                rows.append([table] + row.databaseValues.map { $0.description })
            }
        }
        return rows
    }
}

@Suite("Adopting a reference database")
struct AdoptionTests {
    @Test("upgraded in place: no row lost or changed, the current gate derived and checkpointed, checkpoints numbered in order")
    func adopt() throws {
        let path = temporaryPath("adopt")
        try makeReferenceDatabase(at: path)
        let before = try referenceColumns(try DatabaseQueue(path: path))
        let pending = try SQLiteStore.pendingMigrations(at: StoreLocation(path: path))
        #expect(pending.map(\.id) == Schema.migrations.map(\.id))

        let store = try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())
        let after = try referenceColumns(store.pool)
        #expect(Array(after.prefix(before.count)) == before, "every reference row is unchanged")
        let s1 = try store.story("S-1")
        #expect(s1.state.currentGate.number == 3, "the later of metadata (gate-1) and the gate after gate-2's passed checkpoint")
        #expect(s1.otherMetadata["last_transition_reason"] == "started", "keys Wave does not own are kept")
        #expect(try store.story("S-2").state.currentGate == .first)
        let checkpoints = try store.checkpoints(session: sessionHex, story: "S-1")
        #expect(checkpoints.map(\.seq) == [1, 2, 3, 4])
        #expect(checkpoints.prefix(3).map(\.gate) == ["gate-0", "gate-1", "gate-2"], "equal timestamps keep their insertion order")
        #expect(checkpoints.last?.type == "manual")
        #expect(checkpoints.last?.state["kind"] == "adopted")
        #expect(checkpoints.last?.state["metadata_current_gate"] == "gate-1")

        // A reference-format signal continues the story: no seq, a random session id, the
        // sender's role from its agent id.
        let signal = IncomingEvent(
            messageID: "ref-1", eventType: "gate.passed", source: "BE-1", sessionID: "deadbeef-0000-0000-0000-000000000000", storyID: "S-1",
            event: .gateResult(
                GateResultInput(gate: try GateID(3), payload: ["result": "pass", "retry_count": 0], senderRole: AgentRole.of(agentID: "BE-1"), agentID: "BE-1"))
        )
        guard case .applied(let record, _, _) = try store.apply(signal) else {
            Issue.record("not applied")
            return
        }
        #expect(record.state.currentGate.number == 4)
        #expect(record.state.status == .review)
        // Wave writes only what the reference's constraints allow, and they still hold.
        let ids = try store.pool.read { db in try String.fetchAll(db, sql: "SELECT id FROM wave_checkpoints") }
        #expect(ids.allSatisfy { $0.count == 32 && !$0.contains("-") })
        #expect(throws: (any Error).self) {
            try store.pool.write { db in try db.execute(sql: "UPDATE wave_story_executions SET status = 'paused' WHERE story_id = 'S-2'") }
        }
        // Opening again applies nothing and adopts nothing twice.
        let again = try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())
        #expect(try again.checkpoints(session: sessionHex, story: "S-1").count == 6)
    }

    @Test("a migration that existing rows break changes nothing and names them; the ones before it apply")
    func blockedMigration() throws {
        let path = temporaryPath("blocked")
        try makeReferenceDatabase(at: path, duplicateStory: true)
        let error = #expect(throws: StoreError.self) { try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger()) }
        #expect(error?.code == .migrationBlocked)
        #expect(error?.message.contains("S-2 in session \(sessionHex) (2 rows)") == true, "\(error?.message ?? "")")
        let applied = try DatabaseQueue(path: path).read { db in try String.fetchAll(db, sql: "SELECT identifier FROM grdb_migrations") }
        let blockedAt = try #require(Schema.migrations.firstIndex { $0.id == "005-unique-story-per-session" })
        #expect(applied == Schema.migrations.prefix(blockedAt).map(\.id))
        let indexes = try DatabaseQueue(path: path).read { db in
            try String.fetchAll(db, sql: "SELECT name FROM sqlite_master WHERE type = 'index' AND name = 'idx_stories_session_story'")
        }
        #expect(indexes.isEmpty)
    }
}

@Suite("SQLite stores take the reference's constraint and index names")
struct ReferenceNameTests {
    /// Index name → its first column, for a table.
    static func indexes(_ store: SQLiteStore, _ table: String) throws -> [String: String] {
        try store.pool.read { db in
            var result: [String: String] = [:]
            for name in try String.fetchAll(db, sql: "SELECT name FROM pragma_index_list(?) WHERE origin = 'c'", arguments: [table]) {
                result[name] = try String.fetchOne(db, sql: "SELECT name FROM pragma_index_info(?) WHERE seqno = 0", arguments: [name])
            }
            return result
        }
    }

    @Test("a new store: the reference's CHECK names and index names, none of the names Wave used before")
    func newStore() throws {
        let store = try SQLiteStore(location: StoreLocation(path: temporaryPath("names")), logger: quietLogger())
        let sql = try store.pool.read { db in try String.fetchAll(db, sql: "SELECT sql FROM sqlite_master WHERE type = 'table' AND name LIKE 'wave_%'") }
            .joined(separator: "\n")
        for name in [
            "wave_sessions_status_check", "wave_sessions_wave_number_check", "wave_sessions_budget_check", "wave_sessions_cost_check",
            "wave_checkpoints_type_check", "wave_checkpoints_gate_check", "wave_story_executions_status_check", "wave_story_executions_retry_check",
            "wave_story_executions_cost_check", "wave_story_executions_ac_check",
        ] {
            #expect(sql.contains("CONSTRAINT \(name) CHECK"), "\(name)")
        }
        let sessions = try Self.indexes(store, "wave_sessions")
        #expect(sessions["idx_wave_sessions_project"] == "project_name" && sessions["idx_wave_sessions_status"] == "status", "\(sessions)")
        let stories = try Self.indexes(store, "wave_story_executions")
        for (name, column) in [
            ("idx_wave_story_executions_session", "session_id"), ("idx_wave_story_executions_story_id", "story_id"),
            ("idx_wave_story_executions_status", "status"),
        ] {
            #expect(stories[name] == column, "\(stories)")
        }
        let all = Set(sessions.keys).union(stories.keys)
        #expect(all.isDisjoint(with: Schema.earlierIndexNames))
    }

    @Test("adopting a reference file that has its own index on a column creates no second one there")
    func noSecondIndex() throws {
        let path = temporaryPath("own-index")
        try makeReferenceDatabase(at: path)
        try DatabaseQueue(path: path).write { db in
            try db.execute(sql: "CREATE INDEX ix_wave_sessions_project_name ON wave_sessions (project_name)")
            try db.execute(sql: "CREATE INDEX idx_wave_story_executions_story_id ON wave_story_executions (story_id)")
        }
        let store = try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())
        let sessions = try Self.indexes(store, "wave_sessions")
        #expect(sessions.values.filter { $0 == "project_name" }.count == 1, "\(sessions)")
        #expect(sessions["ix_wave_sessions_project_name"] == "project_name")
        let stories = try Self.indexes(store, "wave_story_executions")
        #expect(stories.values.filter { $0 == "story_id" }.count == 1, "\(stories)")
        #expect(sessions["idx_wave_sessions_status"] == "status", "the indexes it lacks are made")
    }

    @Test("a store made with Wave's earlier index names gets the reference's names, one index per column")
    func earlierNamesRenamed() throws {
        let path = temporaryPath("earlier")
        _ = try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())
        // As the earlier 002 left it, and 008 not applied yet.
        try DatabaseQueue(path: path).write { db in
            for (earlier, index) in zip(Schema.earlierIndexNames, Schema.referenceIndexes) {
                try db.execute(sql: "DROP INDEX \(index.name)")
                try db.execute(sql: "CREATE INDEX \(earlier) ON \(index.table) (\(index.column))")
            }
            try db.execute(sql: "DELETE FROM grdb_migrations WHERE identifier = '008-reference-index-names'")
        }
        let store = try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())
        let names = Set(try Self.indexes(store, "wave_sessions").keys).union(try Self.indexes(store, "wave_story_executions").keys)
        #expect(names.isDisjoint(with: Schema.earlierIndexNames), "\(names)")
        #expect(Set(Schema.referenceIndexes.map(\.name)).isSubset(of: names), "\(names)")
    }
}
