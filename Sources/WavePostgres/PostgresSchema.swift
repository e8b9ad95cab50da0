/// The PostgreSQL schema (SCALE.md, Schema): the reference's migration
/// (`orchestrator/migrations/001_initial_schema.sql`) as its first step, then Wave's additive
/// migrations, the same set and the same identifiers as SQLite's, in PostgreSQL's native types.
///
/// Each migration is a list of statements (the extended query protocol takes one at a time).
/// The first one creates only what is missing, so that a database made by the reference's
/// migration, or by SQLAlchemy's `create_all` (no defaults, indexes, triggers or views), is
/// adopted by the path that creates a new one: no reference column is altered or dropped.
enum PostgresSchema {
    /// One migration: its identifier, what it does (for `wave store migrate --dry-run`), and its
    /// statements.
    struct Migration: Sendable {
        var id: String
        var summary: String
        var statements: [String]
    }

    /// The reference's three tables and the columns Wave reads and writes in them: a table of one
    /// of these names without these columns belongs to something else, and Wave changes nothing.
    static let referenceColumns: [String: [String]] = [
        "wave_sessions": [
            "id", "project_name", "wave_number", "status", "started_at", "completed_at", "failed_at", "budget_usd", "actual_cost_usd",
            "token_count", "story_count", "stories_completed", "stories_failed", "metadata", "created_at", "updated_at",
        ],
        "wave_checkpoints": [
            "id", "session_id", "checkpoint_type", "checkpoint_name", "story_id", "gate", "state", "agent_id", "parent_checkpoint_id", "created_at",
        ],
        "wave_story_executions": [
            "id", "session_id", "story_id", "story_title", "domain", "agent", "status", "priority", "story_points", "started_at", "completed_at",
            "failed_at", "token_count", "cost_usd", "retry_count", "acceptance_criteria_passed", "acceptance_criteria_total", "tests_passing",
            "coverage_achieved", "files_created", "files_modified", "branch_name", "commit_sha", "pr_url", "error_message", "metadata",
            "created_at", "updated_at",
        ],
    ]

    /// The reference's migration, statement by statement, with its triggers and views created
    /// only where they are missing (its own script would fail on a second run at the triggers).
    static let reference: [String] = [
        #"CREATE EXTENSION IF NOT EXISTS "uuid-ossp""#,
        """
        CREATE TABLE IF NOT EXISTS wave_sessions (
            id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
            project_name VARCHAR(255) NOT NULL,
            wave_number INTEGER NOT NULL,
            status VARCHAR(50) NOT NULL DEFAULT 'pending',
            started_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            completed_at TIMESTAMP WITH TIME ZONE,
            failed_at TIMESTAMP WITH TIME ZONE,
            budget_usd DECIMAL(10, 2) DEFAULT 2.00,
            actual_cost_usd DECIMAL(10, 2) DEFAULT 0.00,
            token_count INTEGER DEFAULT 0,
            story_count INTEGER DEFAULT 0,
            stories_completed INTEGER DEFAULT 0,
            stories_failed INTEGER DEFAULT 0,
            metadata JSONB DEFAULT '{}',
            created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            CONSTRAINT wave_sessions_status_check CHECK (status IN ('pending', 'in_progress', 'completed', 'failed', 'cancelled')),
            CONSTRAINT wave_sessions_wave_number_check CHECK (wave_number >= 0),
            CONSTRAINT wave_sessions_budget_check CHECK (budget_usd >= 0),
            CONSTRAINT wave_sessions_cost_check CHECK (actual_cost_usd >= 0)
        )
        """,
        "CREATE INDEX IF NOT EXISTS idx_wave_sessions_project ON wave_sessions(project_name)",
        "CREATE INDEX IF NOT EXISTS idx_wave_sessions_status ON wave_sessions(status)",
        "CREATE INDEX IF NOT EXISTS idx_wave_sessions_started ON wave_sessions(started_at DESC)",
        """
        CREATE TABLE IF NOT EXISTS wave_checkpoints (
            id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
            session_id UUID NOT NULL REFERENCES wave_sessions(id) ON DELETE CASCADE,
            checkpoint_type VARCHAR(50) NOT NULL,
            checkpoint_name VARCHAR(255) NOT NULL,
            story_id VARCHAR(100),
            gate VARCHAR(20),
            state JSONB NOT NULL,
            agent_id VARCHAR(100),
            parent_checkpoint_id UUID REFERENCES wave_checkpoints(id),
            created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            CONSTRAINT wave_checkpoints_type_check CHECK (checkpoint_type IN ('gate', 'story_start', 'story_complete', 'agent_handoff', 'error', 'manual')),
            CONSTRAINT wave_checkpoints_gate_check CHECK (gate IS NULL OR gate IN ('gate-0', 'gate-1', 'gate-2', 'gate-3', 'gate-4', 'gate-5', 'gate-6', 'gate-7'))
        )
        """,
        "CREATE INDEX IF NOT EXISTS idx_wave_checkpoints_session ON wave_checkpoints(session_id)",
        "CREATE INDEX IF NOT EXISTS idx_wave_checkpoints_story ON wave_checkpoints(story_id)",
        "CREATE INDEX IF NOT EXISTS idx_wave_checkpoints_created ON wave_checkpoints(created_at DESC)",
        "CREATE INDEX IF NOT EXISTS idx_wave_checkpoints_type ON wave_checkpoints(checkpoint_type)",
        """
        CREATE TABLE IF NOT EXISTS wave_story_executions (
            id UUID PRIMARY KEY DEFAULT uuid_generate_v4(),
            session_id UUID NOT NULL REFERENCES wave_sessions(id) ON DELETE CASCADE,
            story_id VARCHAR(100) NOT NULL,
            story_title VARCHAR(255) NOT NULL,
            domain VARCHAR(100) NOT NULL,
            agent VARCHAR(100) NOT NULL,
            status VARCHAR(50) NOT NULL DEFAULT 'pending',
            priority VARCHAR(20),
            story_points INTEGER,
            started_at TIMESTAMP WITH TIME ZONE,
            completed_at TIMESTAMP WITH TIME ZONE,
            failed_at TIMESTAMP WITH TIME ZONE,
            token_count INTEGER DEFAULT 0,
            cost_usd DECIMAL(10, 4) DEFAULT 0.00,
            retry_count INTEGER DEFAULT 0,
            acceptance_criteria_passed INTEGER DEFAULT 0,
            acceptance_criteria_total INTEGER DEFAULT 0,
            tests_passing BOOLEAN DEFAULT false,
            coverage_achieved DECIMAL(5, 2),
            files_created TEXT[],
            files_modified TEXT[],
            branch_name VARCHAR(255),
            commit_sha VARCHAR(40),
            pr_url VARCHAR(500),
            error_message TEXT,
            metadata JSONB DEFAULT '{}',
            created_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            updated_at TIMESTAMP WITH TIME ZONE DEFAULT NOW(),
            CONSTRAINT wave_story_executions_status_check CHECK (status IN ('pending', 'in_progress', 'blocked', 'review', 'complete', 'failed', 'cancelled')),
            CONSTRAINT wave_story_executions_retry_check CHECK (retry_count >= 0),
            CONSTRAINT wave_story_executions_cost_check CHECK (cost_usd >= 0),
            CONSTRAINT wave_story_executions_ac_check CHECK (acceptance_criteria_passed <= acceptance_criteria_total)
        )
        """,
        "CREATE INDEX IF NOT EXISTS idx_wave_story_executions_session ON wave_story_executions(session_id)",
        "CREATE INDEX IF NOT EXISTS idx_wave_story_executions_story_id ON wave_story_executions(story_id)",
        "CREATE INDEX IF NOT EXISTS idx_wave_story_executions_status ON wave_story_executions(status)",
        "CREATE INDEX IF NOT EXISTS idx_wave_story_executions_agent ON wave_story_executions(agent)",
        "CREATE INDEX IF NOT EXISTS idx_wave_story_executions_started ON wave_story_executions(started_at DESC)",
        """
        CREATE OR REPLACE FUNCTION update_updated_at_column()
        RETURNS TRIGGER AS $$
        BEGIN
            NEW.updated_at = NOW();
            RETURN NEW;
        END;
        $$ LANGUAGE plpgsql
        """,
        """
        DO $$ BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'update_wave_sessions_updated_at' AND tgrelid = 'wave_sessions'::regclass) THEN
                CREATE TRIGGER update_wave_sessions_updated_at BEFORE UPDATE ON wave_sessions FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
            END IF;
            IF NOT EXISTS (SELECT 1 FROM pg_trigger WHERE tgname = 'update_wave_story_executions_updated_at' AND tgrelid = 'wave_story_executions'::regclass) THEN
                CREATE TRIGGER update_wave_story_executions_updated_at BEFORE UPDATE ON wave_story_executions FOR EACH ROW EXECUTE FUNCTION update_updated_at_column();
            END IF;
        END $$
        """,
        """
        DO $$ BEGIN
            IF to_regclass('active_wave_sessions') IS NULL THEN
                CREATE VIEW active_wave_sessions AS
                SELECT
                    id,
                    project_name,
                    wave_number,
                    status,
                    started_at,
                    EXTRACT(EPOCH FROM (NOW() - started_at)) / 60 AS duration_minutes,
                    budget_usd,
                    actual_cost_usd,
                    story_count,
                    stories_completed,
                    stories_failed,
                    CASE
                        WHEN story_count > 0 THEN ROUND((stories_completed::DECIMAL / story_count) * 100, 2)
                        ELSE 0
                    END AS completion_percentage
                FROM wave_sessions
                WHERE status IN ('pending', 'in_progress')
                ORDER BY started_at DESC;
            END IF;
            IF to_regclass('story_execution_summary') IS NULL THEN
                CREATE VIEW story_execution_summary AS
                SELECT
                    se.session_id,
                    se.story_id,
                    se.story_title,
                    se.domain,
                    se.agent,
                    se.status,
                    se.story_points,
                    se.started_at,
                    se.completed_at,
                    EXTRACT(EPOCH FROM (COALESCE(se.completed_at, NOW()) - se.started_at)) / 60 AS duration_minutes,
                    se.token_count,
                    se.cost_usd,
                    se.retry_count,
                    se.acceptance_criteria_passed,
                    se.acceptance_criteria_total,
                    se.tests_passing,
                    se.coverage_achieved
                FROM wave_story_executions se
                ORDER BY se.started_at DESC;
            END IF;
        END $$
        """,
        "COMMENT ON TABLE wave_sessions IS 'WAVE execution sessions with budget and progress tracking'",
        "COMMENT ON TABLE wave_checkpoints IS 'State checkpoints for crash recovery and session resumption'",
        "COMMENT ON TABLE wave_story_executions IS 'Individual story execution tracking with detailed metrics'",
    ]

    /// Wave's migrations, in order, with SQLite's identifiers.
    static let migrations: [Migration] = [
        Migration(
            id: "001-reference-tables",
            summary:
                "the reference's migration: uuid-ossp, wave_sessions, wave_checkpoints, wave_story_executions, their indexes, triggers and views, unless they exist",
            statements: reference),
        Migration(
            id: "002-indexes", summary: "indexes for the lookups Wave makes (the reference's own serve: nothing to add on PostgreSQL)", statements: []),
        Migration(
            id: "003-wave-columns",
            summary:
                "version, current_gate and blocked_reason on stories; paused_at and Wave's exact cost on sessions; seq and superseded on checkpoints (numbered in their existing order)",
            statements: [
                "ALTER TABLE wave_story_executions ADD COLUMN version INTEGER NOT NULL DEFAULT 0",
                "ALTER TABLE wave_story_executions ADD COLUMN current_gate VARCHAR(20)",
                "ALTER TABLE wave_story_executions ADD COLUMN blocked_reason TEXT",
                "ALTER TABLE wave_sessions ADD COLUMN paused_at TIMESTAMP WITH TIME ZONE",
                // The reference's actual_cost_usd is NUMERIC(10,2) (a view depends on it): Wave keeps
                // the exact cost here and writes it rounded to cents there.
                "ALTER TABLE wave_sessions ADD COLUMN wave_cost_usd DOUBLE PRECISION",
                "ALTER TABLE wave_checkpoints ADD COLUMN seq BIGINT",
                "ALTER TABLE wave_checkpoints ADD COLUMN superseded BOOLEAN NOT NULL DEFAULT false",
                """
                UPDATE wave_checkpoints SET seq = numbered.n
                FROM (SELECT id, ROW_NUMBER() OVER (ORDER BY created_at NULLS FIRST, id) AS n FROM wave_checkpoints) AS numbered
                WHERE wave_checkpoints.id = numbered.id
                """,
                "CREATE UNIQUE INDEX idx_checkpoints_seq ON wave_checkpoints (seq)",
                "CREATE INDEX idx_checkpoints_story_seq ON wave_checkpoints (session_id, story_id, seq)",
            ]),
        Migration(
            id: "004-wave-tables",
            summary: "the processed-message ledger, last seq per (story, source), the outbox, escalations, the emergency-stop audit, counters and settings",
            statements: [
                """
                CREATE TABLE wave_processed_messages (
                    message_id TEXT NOT NULL PRIMARY KEY,
                    session_id UUID,
                    story_id VARCHAR(100),
                    event_type VARCHAR(64) NOT NULL,
                    outcome TEXT NOT NULL,
                    applied_at TIMESTAMP WITH TIME ZONE NOT NULL
                )
                """,
                "CREATE INDEX idx_processed_applied ON wave_processed_messages (applied_at)",
                """
                CREATE TABLE wave_source_seq (
                    session_id UUID NOT NULL,
                    story_id VARCHAR(100) NOT NULL,
                    source VARCHAR(100) NOT NULL,
                    last_seq BIGINT NOT NULL CHECK (last_seq >= 0),
                    PRIMARY KEY (session_id, story_id, source)
                )
                """,
                """
                CREATE TABLE wave_outbox (
                    seq BIGSERIAL PRIMARY KEY,
                    stream TEXT NOT NULL,
                    message_id TEXT NOT NULL,
                    fields JSONB NOT NULL,
                    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
                    attempts INTEGER NOT NULL DEFAULT 0 CHECK (attempts >= 0)
                )
                """,
                """
                CREATE TABLE wave_escalations (
                    id UUID NOT NULL PRIMARY KEY,
                    session_id UUID,
                    story_id VARCHAR(100),
                    kind VARCHAR(64) NOT NULL,
                    reason TEXT NOT NULL,
                    message_id TEXT,
                    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
                    acknowledged_at TIMESTAMP WITH TIME ZONE,
                    acknowledged_by VARCHAR(255)
                )
                """,
                "CREATE INDEX idx_escalations_open ON wave_escalations (acknowledged_at, created_at)",
                """
                CREATE TABLE wave_emergency_stops (
                    id BIGSERIAL PRIMARY KEY,
                    scope VARCHAR(255) NOT NULL,
                    reason TEXT NOT NULL,
                    stopped_by VARCHAR(255) NOT NULL,
                    created_at TIMESTAMP WITH TIME ZONE NOT NULL,
                    cleared_at TIMESTAMP WITH TIME ZONE,
                    cleared_by VARCHAR(255),
                    clear_reason TEXT
                )
                """,
                "CREATE TABLE wave_counters (name VARCHAR(128) NOT NULL PRIMARY KEY, value BIGINT NOT NULL DEFAULT 0)",
                "CREATE TABLE wave_settings (key VARCHAR(128) NOT NULL PRIMARY KEY, value TEXT NOT NULL)",
            ]),
        Migration(
            id: "005-unique-story-per-session", summary: "one row per (session, story): a unique index, after checking that existing rows allow it",
            statements: ["CREATE UNIQUE INDEX idx_stories_session_story ON wave_story_executions (session_id, story_id)"]),
        Migration(
            id: "006-story-status-per-session",
            summary: "an index on (session, status), so that finishing a story counts the unfinished ones without reading them",
            statements: ["CREATE INDEX idx_stories_session_status ON wave_story_executions (session_id, status)"]),
        Migration(
            id: "007-runtime",
            summary: "where each stop came from (wave or legacy) and its announcing message; one row per orchestrator instance for `wave status`",
            statements: [
                "ALTER TABLE wave_emergency_stops ADD COLUMN source VARCHAR(32) NOT NULL DEFAULT 'wave'",
                "ALTER TABLE wave_emergency_stops ADD COLUMN message_id TEXT",
                "CREATE INDEX idx_emergency_stops_active ON wave_emergency_stops (cleared_at, scope)",
                """
                CREATE TABLE wave_orchestrators (
                    consumer VARCHAR(255) NOT NULL PRIMARY KEY,
                    projects TEXT NOT NULL,
                    bus VARCHAR(32) NOT NULL,
                    circuit VARCHAR(32) NOT NULL,
                    state JSONB NOT NULL,
                    started_at TIMESTAMP WITH TIME ZONE NOT NULL,
                    last_seen TIMESTAMP WITH TIME ZONE NOT NULL,
                    stopped_at TIMESTAMP WITH TIME ZONE
                )
                """,
            ]),
        Migration(
            id: "008-reference-index-names", summary: "SQLite's lookup indexes take the reference's names (on PostgreSQL they always had them)",
            statements: []),
        Migration(
            id: "009-project-leases", summary: "project leases with their epochs (fencing tokens), for several orchestrators",
            statements: [
                """
                CREATE TABLE wave_project_leases (
                    project VARCHAR(255) NOT NULL PRIMARY KEY,
                    owner VARCHAR(255) NOT NULL,
                    epoch BIGINT NOT NULL CHECK (epoch >= 1),
                    expires_at TIMESTAMP WITH TIME ZONE NOT NULL
                )
                """
            ]),
    ]
}
