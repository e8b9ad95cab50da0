import Foundation
import GRDB
import WaveEngine
import WaveProtocol

/// An emergency stop as the store keeps it (`WIRE.md`, Emergency stop: the store is the source
/// of truth for stops set through Wave).
public struct EmergencyStopRecord: Sendable, Hashable {
    /// Its row id.
    public var id: Int64
    /// What it covers.
    public var scope: StopScope
    /// Why.
    public var reason: String
    /// Who set it.
    public var by: String
    /// Since when.
    public var since: WaveTimestamp
    /// `wave` (CLI, signal) or `legacy` (the reference's `HALT` or `wave:emergency:active`).
    public var source: String
}

/// What one orchestrator instance last recorded about itself (read by `wave status`).
public struct OrchestratorRecord: Sendable, Hashable {
    /// Its consumer name (stable across restarts).
    public var consumer: String
    /// The projects it serves (keys).
    public var projects: [String]
    /// `redis` or `embedded`.
    public var bus: String
    /// `closed`, `open` or `half_open`.
    public var circuit: String
    /// Counters and features, as a flat JSON object.
    public var state: [String: JSONValue]
    /// When it started.
    public var startedAt: WaveTimestamp
    /// Its last recorded change.
    public var lastSeen: WaveTimestamp
    /// When it stopped cleanly (`nil`: running, or died).
    public var stoppedAt: WaveTimestamp?

    /// Creates a record.
    public init(
        consumer: String, projects: [String], bus: String, circuit: String, state: [String: JSONValue] = [:],
        startedAt: WaveTimestamp, lastSeen: WaveTimestamp, stoppedAt: WaveTimestamp? = nil
    ) {
        self.consumer = consumer
        self.projects = projects
        self.bus = bus
        self.circuit = circuit
        self.state = state
        self.startedAt = startedAt
        self.lastSeen = lastSeen
        self.stoppedAt = stoppedAt
    }
}

extension SQLiteStore {
    // MARK: Emergency stops

    /// Records a stop for `scope` unless one is already active there;
    /// returns the active stop. With `messageID`, the announcing message goes to the ledger, so an
    /// orchestrator receiving it does not record it again.
    @discardableResult
    public func recordStop(
        scope: StopScope, reason: String, by: String, source: String = "wave", messageID: String? = nil,
        now: WaveTimestamp = .now()
    ) throws -> EmergencyStopRecord {
        try self.immediateWrite { db in
            if let active = try Self.activeStop(db, scope: scope) {
                try self.recordAnnouncement(db, messageID: messageID, eventType: "system.emergency_stop", now: now)
                return active
            }
            try db.execute(
                cached: """
                    INSERT INTO wave_emergency_stops (scope, reason, stopped_by, created_at, source, message_id) VALUES (?, ?, ?, ?, ?, ?)
                    """, arguments: [scope.key, reason, by, Self.format(now), source, messageID])
            let id = db.lastInsertedRowID
            try self.bump(db, "emergency_stops")
            try self.recordAnnouncement(db, messageID: messageID, eventType: "system.emergency_stop", now: now)
            try self.checkpointStopped(db, scope: scope, stopID: id, reason: reason, by: by, source: source, now: now)
            return EmergencyStopRecord(id: id, scope: scope, reason: reason, by: by, since: now, source: source)
        }
    }

    /// The state at the stop, in the same transaction: a `manual` checkpoint (`state.kind` =
    /// `emergency_stop`) for every story at work in the stop's scope, with its gate, status and
    /// retries, so that where each story stood when everything halted is on record.
    func checkpointStopped(_ db: Database, scope: StopScope, stopID: Int64, reason: String, by: String, source: String, now: WaveTimestamp) throws {
        var sql = """
            SELECT s.session_id, s.story_id, s.status, s.current_gate, s.retry_count FROM wave_story_executions s
            JOIN wave_sessions w ON w.id = s.session_id
            WHERE w.status = 'in_progress' AND s.status IN ('in_progress', 'review', 'blocked')
            """
        var arguments: StatementArguments = []
        if case .project(let project) = scope {
            sql += " AND \(Self.projectIs("w.project_name"))"
            arguments = [project.key]
        }
        for row in try Row.fetchAll(db, sql: sql, arguments: arguments) {
            let storyID: String = row["story_id"]
            let sessionID: String = row["session_id"]
            let status: String = row["status"]
            let retries: Int = row["retry_count"] ?? 0
            let gateText: String? = row["current_gate"]
            let state: [String: JSONValue] = [
                "kind": "emergency_stop", "stop_id": .number(Double(stopID)), "scope": .string(scope.key), "reason": .string(reason),
                "by": .string(by), "source": .string(source), "status": .string(status), "retry_count": .number(Double(retries)),
            ]
            let draft = CheckpointDraft(
                type: .manual, name: "Emergency stop (\(scope)): \(storyID)",
                gate: gateText.flatMap { try? GateID(parsing: $0) }, state: state, agentID: nil)
            try self.appendCheckpoint(db, sessionID: sessionID, storyID: storyID, draft, now: now)
        }
    }

    /// Clears the active stop of `scope`; `onlySource` limits it to stops from that source (a legacy
    /// `RESUME` clears only a legacy stop). Returns the stop cleared, `nil` if none was active.
    @discardableResult
    public func clearStop(
        scope: StopScope, by: String, reason: String?, onlySource: String? = nil, messageID: String? = nil,
        now: WaveTimestamp = .now()
    ) throws -> EmergencyStopRecord? {
        try self.immediateWrite { db in
            try self.recordAnnouncement(db, messageID: messageID, eventType: "system.emergency_cleared", now: now)
            guard let active = try Self.activeStop(db, scope: scope) else { return nil }
            if let onlySource, active.source != onlySource { return nil }
            try db.execute(
                cached: "UPDATE wave_emergency_stops SET cleared_at = ?, cleared_by = ?, clear_reason = ? WHERE id = ?",
                arguments: [Self.format(now), by, reason, active.id])
            return active
        }
    }

    /// Every active stop, oldest first.
    public func activeStops() throws -> [EmergencyStopRecord] {
        try self.pool.read { db in
            try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_emergency_stops WHERE cleared_at IS NULL ORDER BY id").compactMap(Self.stop)
        }
    }

    /// Every stop and clear, newest first (the audit).
    public func stopHistory(limit: Int = 100) throws -> [(stop: EmergencyStopRecord, clearedAt: WaveTimestamp?, clearedBy: String?)] {
        try self.pool.read { db in
            try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_emergency_stops ORDER BY id DESC LIMIT ?", arguments: [limit]).compactMap { row in
                Self.stop(row).map { ($0, Self.timestamp(row["cleared_at"]), row["cleared_by"]) }
            }
        }
    }

    static func activeStop(_ db: Database, scope: StopScope) throws -> EmergencyStopRecord? {
        try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_emergency_stops WHERE cleared_at IS NULL ORDER BY id").compactMap(Self.stop)
            .first { $0.scope == scope }
    }

    /// A stored stop; `nil` for a row whose scope is neither `global` nor a valid project name
    /// (written by hand): no stop Wave can act on.
    static func stop(_ row: Row) -> EmergencyStopRecord? {
        guard let scope = try? StopScope(key: row["scope"] ?? "") else { return nil }
        return EmergencyStopRecord(
            id: row["id"], scope: scope, reason: row["reason"], by: row["stopped_by"],
            since: Self.timestamp(row["created_at"]) ?? WaveTimestamp(microsecondsSinceEpoch: 0), source: row["source"] ?? "wave")
    }

    func recordAnnouncement(_ db: Database, messageID: String?, eventType: String, now: WaveTimestamp) throws {
        guard let messageID, try !self.alreadyApplied(db, messageID) else { return }
        try self.recordLedger(
            db, IncomingEvent(messageID: messageID, eventType: eventType, storyID: "", event: .report),
            sessionID: nil, outcome: "applied", now: now)
    }

    /// Whether a message id is in the ledger (applied before, by this process or another).
    public func isApplied(messageID: String) throws -> Bool {
        try self.pool.read { db in try self.alreadyApplied(db, messageID) }
    }

    // MARK: Orchestrator instances

    /// Records (inserts or replaces) what an orchestrator instance says about itself.
    public func recordOrchestrator(_ record: OrchestratorRecord) throws {
        try self.pool.write { db in
            try db.execute(
                cached: """
                    INSERT INTO wave_orchestrators (consumer, projects, bus, circuit, state, started_at, last_seen, stopped_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)
                    ON CONFLICT (consumer) DO UPDATE SET projects = excluded.projects, bus = excluded.bus, circuit = excluded.circuit,
                        state = excluded.state, started_at = excluded.started_at, last_seen = excluded.last_seen, stopped_at = excluded.stopped_at
                    """,
                arguments: [
                    record.consumer, record.projects.joined(separator: ","), record.bus, record.circuit, JSONValue.object(record.state).jsonText,
                    Self.format(record.startedAt), Self.format(record.lastSeen), record.stoppedAt.map(Self.format),
                ])
        }
    }

    /// Every orchestrator instance recorded, most recently seen first.
    public func orchestrators() throws -> [OrchestratorRecord] {
        try self.pool.read { db in
            try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_orchestrators ORDER BY last_seen DESC").map { row in
                let projects: String = row["projects"]
                var state: [String: JSONValue] = [:]
                if let text: String = row["state"], case .object(let object)? = JSONValue(jsonText: text) { state = object }
                return OrchestratorRecord(
                    consumer: row["consumer"], projects: projects.split(separator: ",").map(String.init), bus: row["bus"], circuit: row["circuit"],
                    state: state, startedAt: Self.timestamp(row["started_at"]) ?? WaveTimestamp(microsecondsSinceEpoch: 0),
                    lastSeen: Self.timestamp(row["last_seen"]) ?? WaveTimestamp(microsecondsSinceEpoch: 0), stoppedAt: Self.timestamp(row["stopped_at"])
                )
            }
        }
    }

    // MARK: Summaries

    /// Sessions per status.
    public func sessionCounts() throws -> [String: Int] {
        try self.pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(cached: db, sql: "SELECT status, COUNT(*) FROM wave_sessions GROUP BY status") {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    /// Messages in the processed-message ledger of a session, by outcome (`applied`,
    /// `ignored:{reason}`, …): how many signals a session's stories took.
    public func processedMessages(session id: String) throws -> [String: Int] {
        try self.pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(
                cached: db, sql: "SELECT outcome, COUNT(*) FROM wave_processed_messages WHERE session_id = ? GROUP BY outcome",
                arguments: [StoreIDs.normalize(id)])
            {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    /// Messages in the processed-message ledger of a project's sessions, by outcome.
    public func processedMessages(project: String) throws -> [String: Int] {
        let key = Self.projectKey(project)
        return try self.pool.read { db in
            var counts: [String: Int] = [:]
            for row in try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT m.outcome, COUNT(*) FROM wave_processed_messages m JOIN wave_sessions s ON s.id = m.session_id
                    WHERE \(Self.projectIs("s.project_name")) GROUP BY m.outcome
                    """, arguments: [key])
            {
                counts[row[0]] = row[1]
            }
            return counts
        }
    }

    /// Counters whose name starts with `prefix`.
    public func counters(prefix: String) throws -> [String: Int] {
        try self.pool.read { db in
            var counters: [String: Int] = [:]
            for row in try Row.fetchAll(
                cached: db, sql: "SELECT name, value FROM wave_counters WHERE substr(name, 1, ?) = ?", arguments: [prefix.count, prefix])
            {
                counters[row[0]] = row[1]
            }
            return counters
        }
    }

    /// Adds to a counter.
    public func bump(_ name: String, by amount: Int = 1) throws {
        try self.pool.write { db in try self.bump(db, name, by: amount) }
    }

    /// The projects with a session that is not terminal (pending or in progress).
    public func liveProjects() throws -> [String] {
        try self.pool.read { db in
            try String.fetchAll(
                cached: db,
                sql: "SELECT DISTINCT lower(trim(project_name)) AS project FROM wave_sessions WHERE status IN ('pending', 'in_progress') ORDER BY project")
        }
    }

    /// When the oldest session of `project` that is not terminal was created (where a new
    /// `orchestrator` group starts reading, WIRE.md); `nil` if there is none.
    public func oldestLiveSessionCreatedAt(project: String) throws -> WaveTimestamp? {
        let key = Self.projectKey(project)
        return try self.pool.read { db in
            let text = try String.fetchOne(
                cached: db,
                sql: """
                    SELECT MIN(created_at) FROM wave_sessions WHERE status IN ('pending', 'in_progress') AND \(Self.projectIs())
                    """, arguments: [key])
            return Self.timestamp(text)
        }
    }

    /// The in-progress sessions of a project.
    public func sessionsInProgress(project: String) throws -> [SessionRecord] {
        let key = Self.projectKey(project)
        return try self.pool.read { db in
            try Row.fetchAll(
                cached: db, sql: "SELECT * FROM wave_sessions WHERE status = 'in_progress' AND \(Self.projectIs()) ORDER BY created_at, rowid",
                arguments: [key]
            ).map(Self.session)
        }
    }
}

extension SQLiteStore {
    /// The escalations a message raised (to announce them with their ids).
    public func escalations(messageID: String) throws -> [EscalationRecord] {
        try self.pool.read { db in
            try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_escalations WHERE message_id = ? ORDER BY created_at, rowid", arguments: [messageID]).map(
                Self.escalation)
        }
    }
}
