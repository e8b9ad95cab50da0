import Foundation
import GRDB
import Logging
import Synchronization
import WaveEngine
import WaveProtocol

/// A SQLite store's file: `sqlite:PATH` (``StoreURL`` also names PostgreSQL databases).
public struct StoreLocation: Sendable, Hashable, CustomStringConvertible {
    /// The SQLite file.
    public var path: String

    /// The default, `.wave/wave.sqlite`.
    public static let `default` = StoreLocation(path: ".wave/wave.sqlite")

    /// A location by path.
    public init(path: String) { self.path = path }

    /// Parses `sqlite:PATH` (`sqlite://PATH` too); a bare path is taken as SQLite.
    /// - Throws: ``StoreError`` for `postgres://…` (see ``StoreURL``) and other schemes.
    public init(url text: String) throws(StoreError) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            throw StoreError(.invalidURL, "a PostgreSQL URL is not a SQLite file")
        }
        var path = text
        if path.hasPrefix("sqlite://") {
            path.removeFirst("sqlite://".count)
        } else if path.hasPrefix("sqlite:") {
            path.removeFirst("sqlite:".count)
        } else if path.contains("://") {
            throw StoreError(.invalidURL, "\"\(text)\" is not a store URL (sqlite:PATH)")
        }
        guard !path.isEmpty else { throw StoreError(.invalidURL, "the store URL names no file (sqlite:PATH)") }
        self.path = path
    }

    public var description: String { "sqlite:\(self.path)" }
}

/// Durability of a commit.
public enum SynchronousMode: String, Sendable {
    /// `synchronous=NORMAL` in WAL: a commit survives a process crash; the last ones may be
    /// lost on power loss. The default.
    case normal = "NORMAL"
    /// `synchronous=FULL`: every commit is on disk before it returns.
    case full = "FULL"
}

/// The SQLite store (GRDB): WAL, `synchronous=NORMAL` by default, no exclusive locking, a busy
/// timeout of 5 s, so the CLI and other tools can read and write while an orchestrator runs.
///
/// Opening it runs the pending migrations (one log line each) and adopts rows the Python
/// reference wrote (their current gate is derived and recorded in a `manual` checkpoint).
public final class SQLiteStore: Sendable {
    /// The database.
    public let pool: DatabasePool
    /// Where it is.
    public let location: StoreLocation
    /// The engine whose rules every story change goes through.
    public let engine: StoryEngine
    let logger: Logger
    /// Decoded stories by row id. An entry is used only while the row's `version` is still the
    /// cached one (every Wave writer bumps it), so another process's write is always seen.
    let storyCache = Mutex<[String: StoryRecord]>([:])
    /// How long a processed message's ledger entry is kept (default 7 days). A duplicate that
    /// arrives later than this is applied again, so the window must exceed the longest time a
    /// message can be redelivered (`maxDeliveries` × `reclaimAfter`, plus an outbox held while
    /// Redis is down).
    public let ledgerRetention: Duration
    /// Session ids as given (with or without dashes) → as stored.
    let sessionIDs = Mutex<[String: String]>([:])

    /// Opens (creating it and its folder if needed) and migrates the store.
    public init(
        location: StoreLocation, synchronous: SynchronousMode = .normal, engine: StoryEngine = StoryEngine(),
        ledgerRetention: Duration = .seconds(7 * 24 * 3600), logger: Logger
    ) throws {
        self.location = location
        self.ledgerRetention = ledgerRetention
        self.engine = engine
        self.logger = logger
        let folder = URL(fileURLWithPath: location.path).deletingLastPathComponent()
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        self.pool = try Self.open(location.path, Self.configuration(synchronous))
        try self.migrate()
        try self.adoptReferenceRows()
    }

    /// Opens the pool. Switching a new file to WAL takes an exclusive lock that SQLite does not
    /// wait for: two processes creating the same store at the same moment (an orchestrator and a
    /// CLI command) see `SQLITE_BUSY` there, so the open is tried again with a backoff (10 ms
    /// doubling to 200 ms) within the busy timeout.
    static func open(_ path: String, _ configuration: Configuration) throws -> DatabasePool {
        let deadline = ContinuousClock.now + .seconds(5)
        var attempt = 0
        while true {
            do {
                return try DatabasePool(path: path, configuration: configuration)
            } catch let error as DatabaseError where error.resultCode == .SQLITE_BUSY && ContinuousClock.now < deadline {
                // sleep: backoff
                Thread.sleep(forTimeInterval: Double(min(10 << min(attempt, 5), 200)) / 1_000)
                attempt += 1
            }
        }
    }

    static func configuration(_ synchronous: SynchronousMode) -> Configuration {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.foreignKeysEnabled = true
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous.rawValue); PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -65536")
        }
        return configuration
    }

    /// Migrations not applied yet: identifier and summary (`wave store migrate --dry-run`).
    public static func pendingMigrations(at location: StoreLocation) throws -> [(id: String, summary: String)] {
        guard FileManager.default.fileExists(atPath: location.path) else {
            return Schema.migrations.map { ($0.id, $0.summary) }
        }
        let queue = try DatabaseQueue(path: location.path, configuration: Self.configuration(.normal))
        let applied = try queue.read { db in try Schema.migrator().appliedIdentifiers(db) }
        return Schema.migrations.filter { !applied.contains($0.id) }.map { ($0.id, $0.summary) }
    }

    /// Identifiers of the migrations applied, in order.
    public func appliedMigrations() throws -> [String] {
        try self.pool.read { db in try Schema.migrator().appliedMigrations(db) }
    }

    private func migrate() throws {
        let migrator = Schema.migrator()
        let before = Set(try self.pool.read { db in try migrator.appliedIdentifiers(db) })
        var seen = before
        // Always to the newest: a step-by-step target would trap (GRDB's precondition) if another
        // process (an orchestrator and a CLI command opening a new store at the same moment)
        // migrated beyond it meanwhile. A migration that fails because the other process applied
        // it first is tried again from what is applied now, as long as that moves.
        while true {
            do {
                try migrator.migrate(self.pool)
                break
            } catch {
                let now = Set(try self.pool.read { db in try migrator.appliedIdentifiers(db) })
                if Schema.migrations.allSatisfy({ now.contains($0.id) }) { break }
                guard now != seen else { throw error }
                seen = now
            }
        }
        let after = Set(try self.pool.read { db in try migrator.appliedIdentifiers(db) })
        for migration in Schema.migrations where !before.contains(migration.id) && after.contains(migration.id) {
            self.logger.info("store migration applied: \(migration.id): \(migration.summary)", metadata: ["wave.store": "\(self.location)"])
        }
    }

    // MARK: Adopting the reference's rows

    /// Gives every story row without a `current_gate` one: the later of `metadata.current_gate`
    /// and the gate after its newest passed `gate` checkpoint, recorded in a `manual` checkpoint.
    private func adoptReferenceRows() throws {
        // Adoption happens as the store opens, before any clock is injected: the system time.
        let adoptedAt = WaveTimestamp.now()
        let adopted = try self.pool.write { db -> Int in
            let rows = try Row.fetchAll(cached: db, sql: "SELECT id, session_id, story_id, metadata FROM wave_story_executions WHERE current_gate IS NULL")
            for row in rows {
                let sessionID: String = row["session_id"]
                let storyID: String = row["story_id"]
                let metadata = Self.object(row["metadata"])
                var gate = (metadata["current_gate"]?.stringValue).flatMap { try? GateID(parsing: $0) } ?? .first
                var fromCheckpoints: GateID?
                let passed = try String.fetchAll(
                    cached: db,
                    sql: """
                        SELECT gate FROM wave_checkpoints WHERE session_id = ? AND story_id = ? AND checkpoint_type = 'gate' AND gate IS NOT NULL
                        AND (state LIKE '%"status": "passed"%' OR state LIKE '%"status":"passed"%' OR checkpoint_name LIKE '%: passed%')
                        """, arguments: [sessionID, storyID])
                if let newest = passed.compactMap({ try? GateID(parsing: $0) }).max() {
                    fromCheckpoints = newest.next ?? newest
                    if let candidate = fromCheckpoints, candidate > gate { gate = candidate }
                }
                try db.execute(cached: "UPDATE wave_story_executions SET current_gate = ? WHERE id = ?", arguments: [gate.description, row["id"] as String])
                try self.appendCheckpoint(
                    db, sessionID: sessionID, storyID: storyID,
                    CheckpointDraft(
                        type: .manual, name: "Adopted: \(storyID)", gate: gate,
                        state: [
                            "kind": "adopted", "current_gate": .string(gate.description),
                            "metadata_current_gate": metadata["current_gate"] ?? .null,
                            "from_gate_checkpoints": fromCheckpoints.map { .string($0.description) } ?? .null,
                            "timestamp": .string(adoptedAt.description),
                        ], agentID: nil), now: adoptedAt)
            }
            return rows.count
        }
        if adopted > 0 {
            self.logger.info("adopted \(adopted) story rows written by the reference (current gate derived and checkpointed)")
        }
    }

    // MARK: Sessions

    /// Creates a session with its stories, `pending`. Rejects duplicate story ids, unknown
    /// dependencies and dependency cycles, naming them.
    @discardableResult
    public func createSession(project: String, wave: Int, stories: [NewStory], budgetUSD: Double = 2.00, now: WaveTimestamp = .now()) throws -> SessionRecord {
        guard wave >= 0 else { throw StoreError(.invalidInput, "the wave number must be 0 or more (got \(wave))") }
        guard budgetUSD >= 0, budgetUSD.isFinite else { throw StoreError(.invalidInput, "the budget must be 0 or more (got \(budgetUSD))") }
        do {
            _ = try ProjectName(project)
        } catch {
            throw StoreError(.invalidInput, error.description)
        }
        try Self.validate(stories)
        let id = StoreIDs.make()
        let stamp = Self.format(now)
        try self.pool.write { db in
            try db.execute(
                cached: """
                    INSERT INTO wave_sessions (id, project_name, wave_number, status, started_at, budget_usd, actual_cost_usd, token_count,
                        story_count, stories_completed, stories_failed, metadata, created_at, updated_at)
                    VALUES (?, ?, ?, 'pending', NULL, ?, 0, 0, ?, 0, 0, '{}', ?, ?)
                    """, arguments: [id, project, wave, budgetUSD, stories.count, stamp, stamp])
            for story in stories {
                var state = StoryState(storyID: story.id, sessionID: id)
                state.dependencies = story.dependencies
                state.agent = story.agent
                state.domain = story.domain
                state.acceptanceCriteriaTotal = story.acceptanceCriteriaTotal
                let record = StoryRecord(
                    rowID: StoreIDs.make(), state: state, title: story.title, priority: story.priority, otherMetadata: ["story": .object(story.source)])
                try db.execute(
                    cached: """
                        INSERT INTO wave_story_executions (id, session_id, story_id, story_title, domain, agent, status, priority, story_points,
                            token_count, cost_usd, retry_count, acceptance_criteria_passed, acceptance_criteria_total, metadata, created_at, updated_at,
                            version, current_gate)
                        VALUES (?, ?, ?, ?, ?, ?, 'pending', ?, ?, 0, 0, 0, 0, ?, ?, ?, ?, 0, 'gate-0')
                        """,
                    arguments: [
                        record.rowID, id, story.id, story.title, story.domain, story.agent, story.priority, story.storyPoints,
                        story.acceptanceCriteriaTotal, Self.metadataText(record), stamp, stamp,
                    ])
            }
        }
        return try self.session(id: id)
    }

    /// Duplicate ids, unknown dependencies and cycles, each named.
    static func validate(_ stories: [NewStory]) throws(StoreError) {
        var ids = Set<String>()
        for story in stories where !ids.insert(story.id).inserted {
            throw StoreError(.invalidInput, "story \(story.id) appears twice")
        }
        for story in stories {
            for dependency in story.dependencies where !ids.contains(dependency) {
                throw StoreError(.invalidInput, "story \(story.id) depends on \(dependency), which is not in the session")
            }
        }
        // Depth-first search for a cycle, reporting its path.
        let edges = Dictionary(uniqueKeysWithValues: stories.map { ($0.id, $0.dependencies) })
        var state: [String: Int] = [:]  // 1 visiting, 2 done
        var path: [String] = []
        func visit(_ id: String) -> [String]? {
            if state[id] == 2 { return nil }
            if state[id] == 1 {
                let start = path.firstIndex(of: id) ?? 0
                return Array(path[start...]) + [id]
            }
            state[id] = 1
            path.append(id)
            for next in edges[id] ?? [] {
                if let cycle = visit(next) { return cycle }
            }
            path.removeLast()
            state[id] = 2
            return nil
        }
        for story in stories {
            if let cycle = visit(story.id) {
                throw StoreError(.invalidInput, "dependency cycle: \(cycle.joined(separator: " → "))")
            }
        }
    }

    /// A session by id (with or without dashes).
    public func session(id: String) throws -> SessionRecord {
        let forms = StoreIDs.storedForms(id)
        guard
            let session = try self.pool.read({ db in
                try Row.fetchOne(cached: db, sql: "SELECT * FROM wave_sessions WHERE id IN (?, ?)", arguments: [forms.0, forms.1])
            })
        else {
            throw StoreError(.notFound, "no session \(id)")
        }
        return Self.session(session)
    }

    /// Whether a session has a next step to take after one of its stories finished: it is
    /// finished itself, or stories of it wait to start.
    public func sessionHasNextStep(_ id: String) throws -> Bool {
        try self.pool.read { db in
            try Bool.fetchOne(
                cached: db,
                sql: """
                    SELECT status IN ('completed', 'failed', 'cancelled')
                        OR EXISTS (SELECT 1 FROM wave_story_executions WHERE session_id = wave_sessions.id AND status = 'pending')
                    FROM wave_sessions WHERE id = ?
                    """, arguments: [id]) ?? true
        }
    }

    /// Sessions, newest first, optionally of one project.
    public func sessions(project: String? = nil) throws -> [SessionRecord] {
        try self.pool.read { db in
            if let project {
                return try Row.fetchAll(
                    cached: db, sql: "SELECT * FROM wave_sessions WHERE \(Self.projectIs()) ORDER BY created_at DESC, rowid DESC",
                    arguments: [Self.projectKey(project)]
                ).map(Self.session)
            }
            return try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_sessions ORDER BY created_at DESC, rowid DESC").map(Self.session)
        }
    }

    /// The stories of a session, in the order they were created.
    public func stories(session id: String) throws -> [StoryRecord] {
        let session = try self.session(id: id)
        return try self.pool.read { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT \(Self.storyColumns) FROM wave_story_executions WHERE session_id = ? ORDER BY created_at, rowid",
                arguments: [session.id]
            ).map(Self.story)
        }
    }

    /// A story by business id; `session` is required when the id is in several sessions.
    public func story(_ storyID: String, session: String? = nil) throws -> StoryRecord {
        try self.pool.read { db in try self.findStory(db, storyID: storyID, session: session) }
    }

    /// Checkpoints of a session (or of one story in it), in order.
    public func checkpoints(session id: String, story: String? = nil) throws -> [CheckpointRecord] {
        let session = try self.session(id: id)
        return try self.pool.read { db in
            var sql = "SELECT * FROM wave_checkpoints WHERE session_id = ?"
            var arguments: StatementArguments = [session.id]
            if let story {
                sql += " AND story_id = ?"
                arguments += [story]
            }
            return try Row.fetchAll(cached: db, sql: sql + " ORDER BY seq", arguments: arguments).map(Self.checkpoint)
        }
    }

    /// Escalations, newest first; only open ones unless `all`.
    public func escalations(all: Bool = false) throws -> [EscalationRecord] {
        try self.pool.read { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT * FROM wave_escalations \(all ? "" : "WHERE acknowledged_at IS NULL") ORDER BY created_at DESC, rowid DESC"
            ).map(Self.escalation)
        }
    }

    static func escalation(_ row: Row) -> EscalationRecord {
        EscalationRecord(
            id: row["id"], sessionID: row["session_id"], storyID: row["story_id"], kind: row["kind"], reason: row["reason"],
            createdAt: Self.timestamp(row["created_at"]) ?? WaveTimestamp(microsecondsSinceEpoch: 0),
            acknowledgedAt: Self.timestamp(row["acknowledged_at"]), acknowledgedBy: row["acknowledged_by"]
        )
    }

    /// Acknowledges an escalation.
    public func acknowledgeEscalation(_ id: String, by: String, now: WaveTimestamp = .now()) throws {
        try self.pool.write { db in
            try db.execute(
                cached: "UPDATE wave_escalations SET acknowledged_at = ?, acknowledged_by = ? WHERE id = ? AND acknowledged_at IS NULL",
                arguments: [Self.format(now), by, StoreIDs.normalize(id)])
            guard db.changesCount == 1 else {
                let exists = try Bool.fetchOne(cached: db, sql: "SELECT 1 FROM wave_escalations WHERE id = ?", arguments: [StoreIDs.normalize(id)]) ?? false
                throw StoreError(exists ? .notAllowed : .notFound, exists ? "escalation \(id) is already acknowledged" : "no escalation \(id)")
            }
        }
    }

    /// A named counter (`unhandled_events`, `unauthorized_approvals`, …).
    public func counter(_ name: String) throws -> Int {
        try self.pool.read { db in try Int.fetchOne(cached: db, sql: "SELECT value FROM wave_counters WHERE name = ?", arguments: [name]) ?? 0 }
    }

    // MARK: Helpers shared with the apply path

    func findStory(_ db: Database, storyID: String, session: String?, project: String? = nil) throws -> StoryRecord {
        // The row id and version first (from the indexes); the row is decoded only when the
        // cached copy is not that version.
        if let session {
            let forms = StoreIDs.storedForms(session)
            let key = try db.fetchOneDirect(
                cached: "SELECT id, version FROM wave_story_executions WHERE session_id IN (?, ?) AND story_id = ?",
                { bind in
                    bind.text(forms.0)
                    bind.text(forms.1)
                    bind.text(storyID)
                }, { row in (row.text(0) ?? "", row.int(1) ?? 0) })
            guard let key else { throw StoreError(.notFound, "no story \(storyID) in session \(StoreIDs.display(session))") }
            return try self.story(db, rowID: key.0, version: key.1)
        }
        // Project names compare trimmed and case-insensitively (WIRE.md, Names).
        let projectKey = project.map(Self.projectKey)
        let rows = try db.fetchAllDirect(
            cached: """
                SELECT s.id, s.version, s.status FROM wave_story_executions s JOIN wave_sessions w ON w.id = s.session_id
                WHERE s.story_id = ? AND (? IS NULL OR \(Self.projectIs("w.project_name")))
                ORDER BY (w.status IN ('pending', 'in_progress')) DESC, w.created_at DESC, w.rowid DESC
                """,
            { bind in
                bind.text(storyID)
                bind.text(projectKey)
                bind.text(projectKey)
            }, { row in (rowID: row.text(0) ?? "", version: row.int(1) ?? 0, status: StoryStatus(rawValue: row.text(2) ?? "")) })
        guard let first = rows.first else { throw StoreError(.notFound, "no story \(storyID)\(project.map { " in project \($0)" } ?? "")") }
        let live = rows.filter { !($0.status?.isTerminal ?? false) }
        if live.count > 1 {
            throw StoreError(.ambiguous, "story \(storyID) is in \(live.count) sessions; give --session")
        }
        let chosen = live.first ?? first
        return try self.story(db, rowID: chosen.rowID, version: chosen.version)
    }

    /// The one SQL condition every query that selects by project uses (WIRE.md, Names: project
    /// names compare trimmed and case-insensitively, whatever spelling a row was written with);
    /// bind ``projectKey(_:)`` of the name to its one parameter.
    static func projectIs(_ column: String = "project_name") -> String {
        "lower(trim(\(column))) = ?"
    }

    /// A project name as names compare: trimmed, lower-cased (a name already in that form, as
    /// the runtime passes them, is returned as it is).
    static func projectKey(_ name: String) -> String {
        let utf8 = name.utf8
        let plain =
            utf8.first != UInt8(ascii: " ") && utf8.last != UInt8(ascii: " ")
            && !utf8.contains { ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) || $0 >= 0x80 || $0 == UInt8(ascii: "\t") }
        return plain ? name : name.trimmingCharacters(in: .whitespaces).lowercased()
    }

    /// The story in row `rowID`: the cached copy if it is `version`, else the row, decoded and cached.
    func story(_ db: Database, rowID: String, version: Int) throws -> StoryRecord {
        if let cached = self.storyCache.withLock({ $0[rowID] }), cached.state.version == version { return cached }
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT \(Self.storyColumns) FROM wave_story_executions WHERE id = ?", arguments: [rowID]) else {
            throw StoreError(.notFound, "story row \(rowID) vanished")
        }
        let record = Self.story(row)
        self.remember(record)
        return record
    }

    /// Keeps a decoded story for the next read of the same version (bounded: cleared when full).
    func remember(_ record: StoryRecord) {
        self.storyCache.withLock { cache in
            if cache.count >= 50_000 { cache.removeAll(keepingCapacity: true) }
            cache[record.rowID] = record
        }
    }

    func appendCheckpoint(_ db: Database, sessionID: String, storyID: String?, _ draft: CheckpointDraft, now: WaveTimestamp) throws {
        // One statement: the next seq and the story's previous checkpoint come from subqueries.
        try db.executeDirect(
            cached: """
                INSERT INTO wave_checkpoints (id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, parent_checkpoint_id, created_at, seq, superseded)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?,
                    (SELECT id FROM wave_checkpoints WHERE session_id = ? AND story_id IS ? ORDER BY seq DESC LIMIT 1), ?,
                    (SELECT COALESCE(MAX(seq), 0) + 1 FROM wave_checkpoints), 0)
                """
        ) { bind in
            Self.bindCheckpoint(&bind, id: StoreIDs.make(), sessionID: sessionID, storyID: storyID, draft)
            bind.text(sessionID)
            bind.text(storyID)
            bind.text(Self.format(now))
        }
    }

    /// One checkpoint row, its `seq` and parent given.
    static func insertCheckpoint(
        _ db: Database, id: String, sessionID: String, storyID: String?, _ draft: CheckpointDraft, parent: String?, created: String, seq: Int
    ) throws {
        try db.executeDirect(
            cached: """
                INSERT INTO wave_checkpoints (id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, parent_checkpoint_id, created_at, seq, superseded)
                VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)
                """
        ) { bind in
            Self.bindCheckpoint(&bind, id: id, sessionID: sessionID, storyID: storyID, draft)
            bind.text(parent)
            bind.text(created)
            bind.int(seq)
        }
    }

    /// A checkpoint's first eight columns, `id` to `agent_id`, names and agent ids cut to the
    /// reference's column sizes.
    static func bindCheckpoint(_ bind: inout DirectBinder, id: String, sessionID: String, storyID: String?, _ draft: CheckpointDraft) {
        bind.text(id)
        bind.text(sessionID)
        bind.text(draft.type.rawValue)
        bind.text(String(draft.name.prefix(255)))
        bind.text(storyID)
        bind.text(draft.gate?.description)
        bind.text(JSONValue.object(draft.state).jsonText)
        bind.text(draft.agentID.map { String($0.prefix(100)) })
    }

    // MARK: Row mapping

    static func session(_ row: Row) -> SessionRecord {
        SessionRecord(
            id: row["id"], project: row["project_name"], wave: row["wave_number"],
            status: SessionStatus(rawValue: row["status"]) ?? .pending, pausedAt: Self.timestamp(row["paused_at"]),
            budgetUSD: row["budget_usd"] ?? 2.0, actualCostUSD: row["actual_cost_usd"] ?? 0, tokenCount: row["token_count"] ?? 0,
            storyCount: row["story_count"] ?? 0, storiesCompleted: row["stories_completed"] ?? 0, storiesFailed: row["stories_failed"] ?? 0,
            createdAt: Self.timestamp(row["created_at"]), startedAt: Self.timestamp(row["started_at"]), metadata: Self.object(row["metadata"])
        )
    }

    /// Keys of `metadata` that Wave owns; the rest is kept as it was.
    static let ownedMetadataKeys: Set<String> = [
        "current_gate", "gate_failures", "total_retries", "dev_roles", "planned", "dev_progress", "dev_early_failures",
        "next_attempt_at", "block_reason", "dependencies",
    ]

    /// The story columns Wave reads, in the order ``story(_:)`` reads them by index (a lookup by
    /// name compares names case-insensitively, on every read).
    static let storyColumns =
        "id, session_id, story_id, story_title, domain, agent, status, priority, started_at, completed_at, failed_at, token_count, cost_usd, retry_count, acceptance_criteria_passed, acceptance_criteria_total, error_message, metadata, version, current_gate, blocked_reason"
    /// ``storyColumns`` for a query that joins sessions as `w` and stories as `s`.
    static let storyColumnsPrefixed =
        "s.id, s.session_id, s.story_id, s.story_title, s.domain, s.agent, s.status, s.priority, s.started_at, s.completed_at, s.failed_at, s.token_count, s.cost_usd, s.retry_count, s.acceptance_criteria_passed, s.acceptance_criteria_total, s.error_message, s.metadata, s.version, s.current_gate, s.blocked_reason"

    static func story(_ row: Row) -> StoryRecord {
        let metadata = Self.object(row[17])
        var state = StoryState(storyID: row[2], sessionID: row[1], status: StoryStatus(rawValue: row[6]) ?? .pending)
        state.currentGate =
            (row[19] as String?).flatMap { try? GateID(parsing: $0) }
            ?? (metadata["current_gate"]?.stringValue).flatMap { try? GateID(parsing: $0) } ?? .first
        state.version = row[18] ?? 0
        let retryColumn: Int? = row[13]
        if case .object(let failures)? = metadata["gate_failures"] {
            for (gate, count) in failures {
                if let gate = try? GateID(parsing: gate), let count = count.numberValue { state.gateFailures[gate.number] = Int(count) }
            }
        } else if let retries = retryColumn, retries > 0 {
            // A reference row: its counter was per story; count it against the current gate.
            state.gateFailures[state.currentGate.number] = retries
        }
        state.totalRetries = metadata["total_retries"]?.numberValue.map { Int($0) } ?? (retryColumn ?? 0)
        if case .array(let roles)? = metadata["dev_roles"] { state.devRoles = roles.compactMap(\.stringValue) }
        state.planned = metadata["planned"]?.boolValue ?? false
        if case .object(let progress)? = metadata["dev_progress"] {
            state.devProgress = progress.compactMapValues { $0.numberValue.map { Int($0) } }
        }
        if case .object(let early)? = metadata["dev_early_failures"] {
            state.devEarlyFailures = early.compactMapValues { $0.numberValue.map { Int($0) } }
        }
        state.acceptanceCriteriaPassed = row[14] ?? 0
        state.acceptanceCriteriaTotal = row[15] ?? 0
        state.blockedReason = row[20] ?? metadata["block_reason"]?.stringValue
        state.nextAttemptAt = (metadata["next_attempt_at"]?.stringValue).flatMap(WaveTimestamp.init(parsing:))
        state.costUSD = row[12] ?? 0
        state.tokens = row[11] ?? 0
        state.startedAt = Self.timestamp(row[8])
        state.completedAt = Self.timestamp(row[9])
        state.failedAt = Self.timestamp(row[10])
        state.errorMessage = row[16]
        if case .array(let dependencies)? = metadata["dependencies"] { state.dependencies = dependencies.compactMap(\.stringValue) }
        state.agent = row[5] ?? ""
        state.domain = row[4] ?? ""
        return StoryRecord(
            rowID: row[0], state: state, title: row[3] ?? "", priority: row[7],
            otherMetadata: metadata.filter { !Self.ownedMetadataKeys.contains($0.key) }
        )
    }

    static func metadataText(_ record: StoryRecord) -> String {
        let state = record.state
        var metadata = record.otherMetadata
        metadata["current_gate"] = .string(state.currentGate.description)
        var failures: [String: JSONValue] = [:]
        for gate in GateID.all where state.gateFailures[gate.number] > 0 { failures[gate.description] = .number(Double(state.gateFailures[gate.number])) }
        metadata["gate_failures"] = .object(failures)
        metadata["total_retries"] = .number(Double(state.totalRetries))
        metadata["dev_roles"] = .array(state.devRoles.map { .string($0) })
        metadata["planned"] = .bool(state.planned)
        metadata["dev_progress"] = .object(state.devProgress.mapValues { .number(Double($0)) })
        metadata["dev_early_failures"] = .object(state.devEarlyFailures.mapValues { .number(Double($0)) })
        metadata["next_attempt_at"] = state.nextAttemptAt.map { .string($0.description) } ?? .null
        metadata["block_reason"] = state.blockedReason.map { .string($0) } ?? .null
        metadata["dependencies"] = .array(state.dependencies.map { .string($0) })
        return JSONValue.object(metadata).jsonText
    }

    static func checkpoint(_ row: Row) -> CheckpointRecord {
        CheckpointRecord(
            id: row["id"], seq: row["seq"] ?? 0, sessionID: row["session_id"], storyID: row["story_id"], type: row["checkpoint_type"],
            name: row["checkpoint_name"], gate: row["gate"], state: Self.object(row["state"]), agentID: row["agent_id"],
            parentID: row["parent_checkpoint_id"], superseded: (row["superseded"] as Int? ?? 0) != 0,
            createdAt: Self.timestamp(row["created_at"])
        )
    }

    static func object(_ text: String?) -> [String: JSONValue] {
        guard let text, case .object(let object)? = JSONValue(jsonText: text) else { return [:] }
        return object
    }

    /// `YYYY-MM-DD HH:MM:SS.ffffff`, UTC without a zone: the reference's SQLite format.
    static func format(_ timestamp: WaveTimestamp) -> String {
        var bytes = Array(timestamp.description.utf8.dropLast())  // no "Z"
        if bytes.count > 10 { bytes[10] = UInt8(ascii: " ") }  // "T" → " "
        return String(decoding: bytes, as: UTF8.self)
    }

    static func timestamp(_ text: String?) -> WaveTimestamp? {
        text.flatMap(WaveTimestamp.init(parsing:))
    }
}
