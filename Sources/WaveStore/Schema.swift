import GRDB

/// The schema as versioned, additive migrations (DOMAIN.md, Tables).
///
/// The first migration creates the reference's three tables exactly as the Python reference
/// creates them on SQLite (CHECK constraints, 32-hex UUIDs, JSON as text) unless they exist, so a
/// database the reference made is adopted by the same path that creates a new one. Every later
/// migration only adds: columns with defaults, tables, indexes. A migration that cannot apply
/// (duplicate stories in a session) changes nothing and names the offending rows.
enum Schema {
    /// The reference's tables, as SQLAlchemy's `create_all` makes them on SQLite, with the
    /// reference's constraint names (those of its migration and models).
    static let referenceTables = """
        CREATE TABLE IF NOT EXISTS wave_sessions (
            id CHAR(32) NOT NULL,
            project_name VARCHAR(255) NOT NULL,
            wave_number INTEGER NOT NULL,
            status VARCHAR(50) NOT NULL DEFAULT 'pending',
            started_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            completed_at DATETIME,
            failed_at DATETIME,
            budget_usd NUMERIC(10, 2) DEFAULT 2.00,
            actual_cost_usd NUMERIC(10, 2) DEFAULT 0.00,
            token_count INTEGER DEFAULT 0,
            story_count INTEGER DEFAULT 0,
            stories_completed INTEGER DEFAULT 0,
            stories_failed INTEGER DEFAULT 0,
            metadata JSON DEFAULT '{}',
            created_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            updated_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            PRIMARY KEY (id),
            CONSTRAINT wave_sessions_status_check CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
            CONSTRAINT wave_sessions_wave_number_check CHECK (wave_number >= 0),
            CONSTRAINT wave_sessions_budget_check CHECK (budget_usd >= 0),
            CONSTRAINT wave_sessions_cost_check CHECK (actual_cost_usd >= 0)
        );
        CREATE TABLE IF NOT EXISTS wave_checkpoints (
            id CHAR(32) NOT NULL,
            session_id CHAR(32) NOT NULL,
            checkpoint_type VARCHAR(50) NOT NULL,
            checkpoint_name VARCHAR(255) NOT NULL,
            story_id VARCHAR(100),
            gate VARCHAR(20),
            state JSON NOT NULL,
            agent_id VARCHAR(100),
            parent_checkpoint_id CHAR(32),
            created_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            PRIMARY KEY (id),
            CONSTRAINT wave_checkpoints_type_check CHECK (checkpoint_type IN ('gate', 'story_start', 'story_complete', 'agent_handoff', 'error', 'manual')),
            CONSTRAINT wave_checkpoints_gate_check CHECK (gate IS NULL OR gate IN ('gate-0', 'gate-1', 'gate-2', 'gate-3', 'gate-4', 'gate-5', 'gate-6', 'gate-7')),
            FOREIGN KEY(session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE,
            FOREIGN KEY(parent_checkpoint_id) REFERENCES wave_checkpoints (id)
        );
        CREATE TABLE IF NOT EXISTS wave_story_executions (
            id CHAR(32) NOT NULL,
            session_id CHAR(32) NOT NULL,
            story_id VARCHAR(100) NOT NULL,
            story_title VARCHAR(255) NOT NULL,
            domain VARCHAR(100) NOT NULL,
            agent VARCHAR(100) NOT NULL,
            status VARCHAR(50) NOT NULL DEFAULT 'pending',
            priority VARCHAR(20),
            story_points INTEGER,
            started_at DATETIME,
            completed_at DATETIME,
            failed_at DATETIME,
            token_count INTEGER DEFAULT 0,
            cost_usd NUMERIC(10, 4) DEFAULT 0,
            retry_count INTEGER DEFAULT 0,
            acceptance_criteria_passed INTEGER DEFAULT 0,
            acceptance_criteria_total INTEGER DEFAULT 0,
            tests_passing BOOLEAN DEFAULT 0,
            coverage_achieved NUMERIC(5, 2),
            files_created JSON,
            files_modified JSON,
            branch_name VARCHAR(255),
            commit_sha VARCHAR(40),
            pr_url VARCHAR(500),
            error_message TEXT,
            metadata JSON DEFAULT '{}',
            created_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            updated_at DATETIME DEFAULT (CURRENT_TIMESTAMP),
            PRIMARY KEY (id),
            CONSTRAINT wave_story_executions_status_check CHECK (status IN ('pending', 'in_progress', 'blocked', 'review', 'complete', 'failed', 'cancelled')),
            CONSTRAINT wave_story_executions_retry_check CHECK (retry_count >= 0),
            CONSTRAINT wave_story_executions_cost_check CHECK (cost_usd >= 0),
            CONSTRAINT wave_story_executions_ac_check CHECK (acceptance_criteria_passed <= acceptance_criteria_total),
            FOREIGN KEY(session_id) REFERENCES wave_sessions (id) ON DELETE CASCADE
        );
        """

    /// Each migration: its identifier (the order is the array's) and what it does, for
    /// `wave store migrate --dry-run`.
    static let migrations: [(id: String, summary: String, apply: @Sendable (Database) throws -> Void)] = [
        (
            "001-reference-tables", "the reference's wave_sessions, wave_story_executions and wave_checkpoints, unless they exist",
            { db in
                try db.execute(sql: referenceTables)
            }
        ),
        (
            "002-indexes",
            "indexes for the lookups Wave makes, under the reference's names: sessions by project and status, stories by session, story id and status (none where the file has one on that column)",
            { db in try ensureReferenceIndexes(db) }
        ),
        (
            "003-wave-columns",
            "version, current_gate and blocked_reason on stories; paused_at on sessions; seq and superseded on checkpoints (numbered in their existing order)",
            { db in
                try db.execute(
                    sql: """
                        ALTER TABLE wave_story_executions ADD COLUMN version INTEGER NOT NULL DEFAULT 0;
                        ALTER TABLE wave_story_executions ADD COLUMN current_gate VARCHAR(20);
                        ALTER TABLE wave_story_executions ADD COLUMN blocked_reason TEXT;
                        ALTER TABLE wave_sessions ADD COLUMN paused_at DATETIME;
                        ALTER TABLE wave_checkpoints ADD COLUMN seq INTEGER;
                        ALTER TABLE wave_checkpoints ADD COLUMN superseded INTEGER NOT NULL DEFAULT 0;
                        UPDATE wave_checkpoints SET seq = (
                            SELECT n FROM (SELECT id AS cid, ROW_NUMBER() OVER (ORDER BY created_at, rowid) AS n FROM wave_checkpoints)
                            WHERE cid = wave_checkpoints.id
                        );
                        CREATE UNIQUE INDEX idx_checkpoints_seq ON wave_checkpoints (seq);
                        CREATE INDEX idx_checkpoints_story_seq ON wave_checkpoints (session_id, story_id, seq);
                        """)
            }
        ),
        (
            "004-wave-tables",
            "the processed-message ledger, last seq per (story, source), the outbox, escalations, the emergency-stop audit, counters and settings",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE wave_processed_messages (
                            message_id TEXT NOT NULL PRIMARY KEY,
                            session_id CHAR(32),
                            story_id VARCHAR(100),
                            event_type VARCHAR(64) NOT NULL,
                            outcome TEXT NOT NULL,
                            applied_at DATETIME NOT NULL
                        );
                        CREATE INDEX idx_processed_applied ON wave_processed_messages (applied_at);
                        CREATE TABLE wave_source_seq (
                            session_id CHAR(32) NOT NULL,
                            story_id VARCHAR(100) NOT NULL,
                            source VARCHAR(100) NOT NULL,
                            last_seq INTEGER NOT NULL CHECK (last_seq >= 0),
                            PRIMARY KEY (session_id, story_id, source)
                        );
                        CREATE TABLE wave_outbox (
                            seq INTEGER PRIMARY KEY AUTOINCREMENT,
                            stream TEXT NOT NULL,
                            message_id TEXT NOT NULL,
                            fields JSON NOT NULL,
                            created_at DATETIME NOT NULL,
                            attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
                        );
                        CREATE TABLE wave_escalations (
                            id CHAR(32) NOT NULL PRIMARY KEY,
                            session_id CHAR(32),
                            story_id VARCHAR(100),
                            kind VARCHAR(64) NOT NULL,
                            reason TEXT NOT NULL,
                            message_id TEXT,
                            created_at DATETIME NOT NULL,
                            acknowledged_at DATETIME,
                            acknowledged_by VARCHAR(255)
                        );
                        CREATE INDEX idx_escalations_open ON wave_escalations (acknowledged_at, created_at);
                        CREATE TABLE wave_emergency_stops (
                            id INTEGER PRIMARY KEY AUTOINCREMENT,
                            scope VARCHAR(255) NOT NULL,
                            reason TEXT NOT NULL,
                            stopped_by VARCHAR(255) NOT NULL,
                            created_at DATETIME NOT NULL,
                            cleared_at DATETIME,
                            cleared_by VARCHAR(255),
                            clear_reason TEXT
                        );
                        CREATE TABLE wave_counters (
                            name VARCHAR(128) NOT NULL PRIMARY KEY,
                            value INTEGER NOT NULL DEFAULT 0
                        );
                        CREATE TABLE wave_settings (
                            key VARCHAR(128) NOT NULL PRIMARY KEY,
                            value TEXT NOT NULL
                        );
                        """)
            }
        ),
        (
            "005-unique-story-per-session", "one row per (session, story): a unique index, after checking that existing rows allow it",
            { db in
                let duplicates = try Row.fetchAll(
                    db,
                    sql: """
                        SELECT session_id, story_id, COUNT(*) AS n FROM wave_story_executions
                        GROUP BY session_id, story_id HAVING COUNT(*) > 1 ORDER BY session_id, story_id LIMIT 20
                        """)
                if !duplicates.isEmpty {
                    let names = duplicates.map {
                        "\($0["story_id"] as String? ?? "?") in session \($0["session_id"] as String? ?? "?") (\($0["n"] as Int? ?? 0) rows)"
                    }
                    throw StoreError(
                        .migrationBlocked, "005-unique-story-per-session cannot apply: duplicate stories \(names.joined(separator: "; ")); nothing was changed")
                }
                try db.execute(sql: "CREATE UNIQUE INDEX idx_stories_session_story ON wave_story_executions (session_id, story_id)")
            }
        ),
        (
            "006-story-status-per-session", "an index on (session, status), so that finishing a story counts the unfinished ones without reading them",
            { db in
                try db.execute(sql: "CREATE INDEX idx_stories_session_status ON wave_story_executions (session_id, status)")
            }
        ),
        (
            "007-runtime", "where each stop came from (wave or legacy) and its announcing message; one row per orchestrator instance for `wave status`",
            { db in
                try db.execute(
                    sql: """
                        ALTER TABLE wave_emergency_stops ADD COLUMN source VARCHAR(32) NOT NULL DEFAULT 'wave';
                        ALTER TABLE wave_emergency_stops ADD COLUMN message_id TEXT;
                        CREATE INDEX idx_emergency_stops_active ON wave_emergency_stops (cleared_at, scope);
                        CREATE TABLE wave_orchestrators (
                            consumer VARCHAR(255) NOT NULL PRIMARY KEY,
                            projects TEXT NOT NULL,
                            bus VARCHAR(32) NOT NULL,
                            circuit VARCHAR(32) NOT NULL,
                            state JSON NOT NULL,
                            started_at DATETIME NOT NULL,
                            last_seen DATETIME NOT NULL,
                            stopped_at DATETIME
                        );
                        """)
            }
        ),
        (
            "008-reference-index-names", "the indexes earlier Wave stores made under names of their own take the reference's names",
            { db in
                // The same indexes, renamed (SQLite renames an index by making it again).
                for (earlier, index) in zip(earlierIndexNames, referenceIndexes)
                where try Bool.fetchOne(db, sql: "SELECT EXISTS (SELECT 1 FROM sqlite_master WHERE type = 'index' AND name = ?)", arguments: [earlier]) == true
                {
                    try db.execute(sql: "DROP INDEX \(earlier)")
                    try db.execute(sql: "CREATE INDEX IF NOT EXISTS \(index.name) ON \(index.table) (\(index.column))")
                }
            }
        ),
        (
            "009-project-leases", "project leases with their epochs (fencing tokens), for several orchestrators",
            { db in
                try db.execute(
                    sql: """
                        CREATE TABLE wave_project_leases (
                            project VARCHAR(255) NOT NULL PRIMARY KEY,
                            owner VARCHAR(255) NOT NULL,
                            epoch INTEGER NOT NULL CHECK (epoch >= 1),
                            expires_at DATETIME NOT NULL
                        )
                        """)
            }
        ),
    ]

    /// The indexes Wave's lookups need, under the names the reference's migration gives them.
    static let referenceIndexes: [(name: String, table: String, column: String)] = [
        ("idx_wave_sessions_project", "wave_sessions", "project_name"),
        ("idx_wave_sessions_status", "wave_sessions", "status"),
        ("idx_wave_story_executions_session", "wave_story_executions", "session_id"),
        ("idx_wave_story_executions_story_id", "wave_story_executions", "story_id"),
        ("idx_wave_story_executions_status", "wave_story_executions", "status"),
    ]

    /// The names earlier Wave stores gave the same indexes, in the same order.
    static let earlierIndexNames = ["idx_sessions_project", "idx_sessions_status", "idx_stories_session", "idx_stories_story", "idx_stories_status"]

    /// Creates each of ``referenceIndexes`` unless the table already has an index whose first
    /// column is that column (under any name: a reference file's own, or an earlier Wave name).
    static func ensureReferenceIndexes(_ db: Database) throws {
        for index in referenceIndexes where try !hasIndex(db, table: index.table, leadingColumn: index.column) {
            try db.execute(sql: "CREATE INDEX \(index.name) ON \(index.table) (\(index.column))")
        }
    }

    /// Whether `table` has an index whose first column is `column`.
    static func hasIndex(_ db: Database, table: String, leadingColumn column: String) throws -> Bool {
        for name in try String.fetchAll(db, sql: "SELECT name FROM pragma_index_list(?)", arguments: [table]) {
            let first = try String.fetchOne(db, sql: "SELECT name FROM pragma_index_info(?) WHERE seqno = 0", arguments: [name])
            if first == column { return true }
        }
        return false
    }

    /// The migrator over ``migrations``.
    static func migrator() -> DatabaseMigrator {
        var migrator = DatabaseMigrator()
        for migration in migrations {
            migrator.registerMigration(migration.id) { db in try migration.apply(db) }
        }
        return migrator
    }
}
