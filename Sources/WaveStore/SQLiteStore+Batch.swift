import GRDB
import WaveEngine
import WaveProtocol

/// Applies a batch of messages in one transaction, doing once per batch what ``SQLiteStore/apply(_:now:jitter:)``
/// does once per message: one ledger query for the batch, each story read once and written once (its version
/// bumped once), checkpoints and ledger entries inserted many rows per statement with their `seq` and parent
/// links computed here. The outcome is the same as applying the messages one by one at the same time (a property
/// test compares the rows): a message whose effects reach beyond its story (it finishes the story, starts a
/// pending one, carries a cost that the budget rules weigh, carries a `seq`, names no known session) first
/// flushes what is pending and then goes through the one-message path.
struct BatchWriter {
    let store: SQLiteStore
    let db: Database
    let now: WaveTimestamp

    /// A story being changed in this batch.
    struct Work {
        var record: StoryRecord
        /// The version in the database.
        var storedVersion: Int
        /// Changes not written yet.
        var changes = 0
    }

    var stories: [String: Work] = [:]          // by "session\0story"
    var order: [String] = []                   // keys in first-touch order
    var checkpoints: [(sessionID: String, storyID: String, draft: CheckpointDraft)] = []
    var escalations: [(sessionID: String, storyID: String, draft: EscalationDraft, messageID: String)] = []
    var ledger: [(incoming: IncomingEvent, sessionID: String, outcome: String)] = []
    var counters: [String: Int] = [:]
    var tokens: [String: Int] = [:]            // by session
    var outcomes: [String: String] = [:]       // message id → outcome, this batch

    init(store: SQLiteStore, db: Database, now: WaveTimestamp) {
        self.store = store
        self.db = db
        self.now = now
    }

    mutating func apply(_ batch: [IncomingEvent], jitter: Double?, stopAtSessionChange: Bool = false) throws -> [Result<ApplyResult, any Error>] {
        let jitters = batch.map { _ in jitter ?? Double.random(in: 0..<1) }
        try self.loadLedger(batch.map(\.messageID))
        var results: [Result<ApplyResult, any Error>] = []
        results.reserveCapacity(batch.count)
        for (incoming, jitter) in zip(batch, jitters) {
            do {
                let result = try self.applyOne(incoming, jitter: jitter)
                results.append(.success(result))
                if stopAtSessionChange, try self.changesSession(result) { break }
            } catch let error as EngineRejection {
                results.append(.failure(error))
            } catch let error as StoreError where error.code == .notFound || error.code == .ambiguous {
                results.append(.failure(error))
            }
        }
        try self.flush()
        return results
    }

    /// Whether a result finished its story and so changed what the session does next: the
    /// session's status changed, or stories wait in it that may start now.
    func changesSession(_ result: ApplyResult) throws -> Bool {
        guard case .applied(let record, _, let session) = result, record.state.status.isFinished else { return false }
        if session.statusChange != nil { return true }
        return try Bool.fetchOne(cached: self.db, sql: "SELECT EXISTS (SELECT 1 FROM wave_story_executions WHERE session_id = ? AND status = 'pending')",
                                 arguments: [record.state.sessionID]) ?? false
    }

    mutating func loadLedger(_ ids: [String]) throws {
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            for row in try Row.fetchAll(self.db, sql: "SELECT message_id, outcome FROM wave_processed_messages WHERE message_id IN (\(marks))",
                                        arguments: StatementArguments(chunk)) {
                self.outcomes[row[0]] = row[1]
            }
            start += chunk.count
        }
    }

    /// The one-message path, after flushing, for a message whose effects reach beyond its story.
    mutating func slow(_ incoming: IncomingEvent, jitter: Double) throws -> ApplyResult {
        try self.flush()
        self.stories.removeAll(keepingCapacity: true)
        self.order.removeAll(keepingCapacity: true)
        let result = try self.store.apply(self.db, incoming, now: self.now, jitter: jitter)
        self.outcomes[incoming.messageID] = Self.outcome(of: result)
        return result
    }

    static func outcome(of result: ApplyResult) -> String {
        switch result {
        case .applied: "applied"
        case .ignored(let reason, _, _): "ignored:\(reason.rawValue)"
        case .duplicate(let outcome): outcome
        case .staleSequence: "stale_seq"
        }
    }

    mutating func applyOne(_ incoming: IncomingEvent, jitter: Double) throws -> ApplyResult {
        if let outcome = self.outcomes[incoming.messageID] { return .duplicate(outcome: outcome) }
        guard incoming.seq == nil, (incoming.costUSD ?? 0) <= 0,
              let sessionID = try self.store.knownSession(self.db, incoming.sessionID) else {
            return try self.slow(incoming, jitter: jitter)
        }
        let key = "\(sessionID)\u{0}\(incoming.storyID)"
        var work: Work
        if let existing = self.stories[key] {
            work = existing
        } else {
            let record = try self.store.findStory(self.db, storyID: incoming.storyID, session: sessionID, project: incoming.project)
            work = Work(record: record, storedVersion: record.state.version)
        }
        let before = work.record.state
        if before.status == .pending, case .gateResult = incoming.event { return try self.slow(incoming, jitter: jitter) }
        var state = before
        if let added = incoming.tokens, added > 0 { state.tokens += added }
        let decision = try self.store.engine.apply(incoming.event, to: state, now: self.now, jitter: jitter)
        let result: ApplyResult
        switch decision {
        case .applied(let after, let effects):
            if after.status.isFinished { return try self.slow(incoming, jitter: jitter) }
            work.record.state = after
            work.changes += 1
            for draft in effects.checkpoints { self.checkpoints.append((sessionID, after.storyID, draft)) }
            for draft in effects.escalations { self.escalations.append((sessionID, after.storyID, draft, incoming.messageID)) }
            self.ledger.append((incoming, sessionID, "applied"))
            result = .applied(work.record, effects, SessionEffects())
        case .ignored(let reason, let effects):
            if state != before {
                work.record.state = state
                work.changes += 1
            }
            for draft in effects.escalations { self.escalations.append((sessionID, state.storyID, draft, incoming.messageID)) }
            self.counters["ignored.\(reason.rawValue)", default: 0] += 1
            self.ledger.append((incoming, sessionID, "ignored:\(reason.rawValue)"))
            result = .ignored(reason, work.record, effects)
        }
        if let added = incoming.tokens, added > 0 { self.tokens[sessionID, default: 0] += added }
        if self.stories[key] == nil { self.order.append(key) }
        self.stories[key] = work
        self.outcomes[incoming.messageID] = Self.outcome(of: result)
        return result
    }

    /// Writes what is pending: each changed story once, then checkpoints, escalations, ledger
    /// entries, counters and session tokens.
    mutating func flush() throws {
        for key in self.order {
            guard var work = self.stories[key], work.changes > 0 else { continue }
            try self.store.writeStory(self.db, &work.record, expectedVersion: work.storedVersion, now: self.now, changes: work.changes)
            work.storedVersion = work.record.state.version
            work.changes = 0
            self.stories[key] = work
        }
        try self.insertCheckpoints()
        for escalation in self.escalations {
            try self.db.execute(cached: """
                INSERT INTO wave_escalations (id, session_id, story_id, kind, reason, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [StoreIDs.make(), escalation.sessionID, escalation.storyID, escalation.draft.kind, escalation.draft.reason,
                                 escalation.messageID, SQLiteStore.format(self.now)])
            self.counters["escalations.\(escalation.draft.kind)", default: 0] += 1
        }
        self.escalations.removeAll(keepingCapacity: true)
        try self.insertLedger()
        for (name, amount) in self.counters { try self.store.bump(self.db, name, by: amount) }
        self.counters.removeAll(keepingCapacity: true)
        for (sessionID, amount) in self.tokens {
            try self.db.execute(cached: "UPDATE wave_sessions SET token_count = token_count + ?, updated_at = ? WHERE id = ?",
                                arguments: [amount, SQLiteStore.format(self.now), sessionID])
        }
        self.tokens.removeAll(keepingCapacity: true)
    }

    mutating func insertCheckpoints() throws {
        guard !self.checkpoints.isEmpty else { return }
        var seq = (try Int.fetchOne(cached: self.db, sql: "SELECT MAX(seq) FROM wave_checkpoints") ?? 0)
        var parents: [String: String?] = [:]
        let created = SQLiteStore.format(.now())
        var rows: [[(any DatabaseValueConvertible)?]] = []
        rows.reserveCapacity(self.checkpoints.count)
        for (sessionID, storyID, draft) in self.checkpoints {
            let key = "\(sessionID)\u{0}\(storyID)"
            if parents[key] == nil {
                parents[key] = .some(try String.fetchOne(cached: self.db, sql: "SELECT id FROM wave_checkpoints WHERE session_id = ? AND story_id = ? ORDER BY seq DESC LIMIT 1",
                                                         arguments: [sessionID, storyID]))
            }
            let id = StoreIDs.make()
            seq += 1
            rows.append([id, sessionID, draft.type.rawValue, String(draft.name.prefix(255)), storyID, draft.gate?.description,
                         JSONValue.object(draft.state).jsonText, draft.agentID.map { String($0.prefix(100)) }, parents[key] ?? nil, created, seq])
            parents[key] = .some(id)
        }
        try self.insertRows(
            "INSERT INTO wave_checkpoints (id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, parent_checkpoint_id, created_at, seq, superseded) VALUES ",
            rowTemplate: "(?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, 0)", rows: rows)
        self.checkpoints.removeAll(keepingCapacity: true)
    }

    mutating func insertLedger() throws {
        guard !self.ledger.isEmpty else { return }
        let applied = SQLiteStore.format(self.now)
        let rows: [[(any DatabaseValueConvertible)?]] = self.ledger.map {
            [$0.incoming.messageID, $0.sessionID, $0.incoming.storyID, $0.incoming.eventType, $0.outcome, applied]
        }
        try self.insertRows("INSERT INTO wave_processed_messages (message_id, session_id, story_id, event_type, outcome, applied_at) VALUES ",
                            rowTemplate: "(?, ?, ?, ?, ?, ?)", rows: rows)
        self.ledger.removeAll(keepingCapacity: true)
    }

    /// Multi-row INSERTs, up to 64 rows a statement.
    func insertRows(_ head: String, rowTemplate: String, rows: [[(any DatabaseValueConvertible)?]]) throws {
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 64, rows.count)]
            let sql = head + Array(repeating: rowTemplate, count: chunk.count).joined(separator: ", ")
            var values: [(any DatabaseValueConvertible)?] = []
            for row in chunk { values.append(contentsOf: row) }
            try self.db.cachedStatement(sql: sql).execute(arguments: StatementArguments(values))
            start += chunk.count
        }
    }
}
