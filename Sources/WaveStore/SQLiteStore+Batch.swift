import GRDB
import WaveEngine
import WaveProtocol

/// Applies messages in one transaction: the store's only apply path (``SQLiteStore/apply(_:now:jitter:)`` is a
/// batch of one). One ledger query for the batch (the messages and the withdrawal marks of the tasks they
/// answer), each story read once and written once (its version bumped once), checkpoints and ledger entries
/// written with their `seq` and parent links computed here. The outcome is the same as applying the messages
/// one by one at the same time (a property test compares the rows for every batch size). A sender's `seq` is
/// checked against the last one applied (read once per story, source and batch) and the newest written once
/// per batch; a message that names no known session finds its story by id within its project; a story
/// completed in a session that certainly has unfinished stories left moves the session's counter once per
/// batch. A message whose effects reach beyond its story writes what is queued, then the session's part.
struct BatchWriter {
    let store: SQLiteStore
    let db: Database
    let now: WaveTimestamp

    /// A story being changed in this batch.
    struct Work {
        var record: StoryRecord
        /// The version in the database.
        var storedVersion: Int
        /// The status in the database.
        var storedStatus: StoryStatus
        /// Changes not written yet.
        var changes = 0
    }

    var stories: [String: Work] = [:]  // by "session\0story"
    var order: [String] = []  // keys in first-touch order
    var checkpoints: [(sessionID: String, storyID: String, draft: CheckpointDraft)] = []
    var escalations: [(sessionID: String, storyID: String, draft: EscalationDraft, messageID: String)] = []
    var ledger: [(incoming: IncomingEvent, sessionID: String, outcome: String)] = []
    var counters: [String: Int] = [:]
    var tokens: [String: Int] = [:]  // by session
    var outcomes: [String: String] = [:]  // message id → outcome, this batch
    var located: [String: String] = [:]  // "project\0story" → key in `stories`, for messages without a known session
    var sequences: [String: SequenceMark] = [:]  // "session\0story\0source"
    var tallies: [String: SessionTally] = [:]  // by session

    /// A session's stories left to finish, as this batch has them.
    struct SessionTally {
        /// Stories neither complete nor failed (cancelled ones included).
        var unfinished: Int
        /// Stories cancelled.
        var cancelled: Int
        /// Whether the session is finished already.
        var terminal: Bool
        /// Stories completed in this batch, not written yet.
        var completed = 0
    }

    /// The last `seq` applied from one source for one story.
    struct SequenceMark {
        var sessionID: String
        var storyID: String
        var source: String
        var last: UInt64?
        /// Moved in this batch, not written yet.
        var dirty = false
    }

    init(store: SQLiteStore, db: Database, now: WaveTimestamp) {
        self.store = store
        self.db = db
        self.now = now
    }

    mutating func apply(
        _ batch: [IncomingEvent], jitter: Double?, stopAtSessionChange: Bool = false
    ) throws -> [Result<ApplyResult, any Error>] {
        let jitters = batch.map { _ in jitter ?? Double.random(in: 0..<1) }
        // The ledger entries of the messages, and the marks of the tasks their results answer
        // (taken back by their deadline or by a stop), in one query.
        try self.loadLedger(batch.map(\.messageID) + batch.compactMap(\.correlationID).flatMap(SQLiteStore.withdrawalMarks))
        var results: [Result<ApplyResult, any Error>] = []
        results.reserveCapacity(batch.count)
        for (incoming, jitter) in zip(batch, jitters) {
            if self.outcomes[incoming.messageID] == nil, let task = incoming.correlationID,
                SQLiteStore.withdrawalMarks(task).contains(where: { self.outcomes[$0] != nil })
            {
                results.append(.failure(StoreError(.withdrawn, "the task \(incoming.correlationID ?? "?") was taken back before its result applied")))
                continue
            }
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
        return try Bool.fetchOne(
            cached: self.db, sql: "SELECT EXISTS (SELECT 1 FROM wave_story_executions WHERE session_id = ? AND status = 'pending')",
            arguments: [record.state.sessionID]) ?? false
    }

    mutating func loadLedger(_ ids: [String]) throws {
        if ids.count == 1 {
            // A batch of one (the most common read when signals trickle in): one bound lookup.
            let id = ids[0]
            if let outcome = try self.db.fetchOneDirect(
                cached: "SELECT outcome FROM wave_processed_messages WHERE message_id = ?", { $0.text(id) }, { $0.text(0) })
            {
                self.outcomes[id] = outcome ?? ""
            }
            return
        }
        var start = 0
        while start < ids.count {
            let chunk = Array(ids[start..<min(start + 500, ids.count)])
            let marks = Array(repeating: "?", count: chunk.count).joined(separator: ", ")
            for row in try Row.fetchAll(
                cached: self.db, sql: "SELECT message_id, outcome FROM wave_processed_messages WHERE message_id IN (\(marks))",
                arguments: StatementArguments(chunk))
            {
                self.outcomes[row[0]] = row[1]
            }
            start += chunk.count
        }
    }

    /// Forgets what this batch read of stories, sessions and senders' numbering, after a
    /// change that reached beyond one story (other stories, the session's row) was written.
    mutating func forgetReads() {
        self.stories.removeAll(keepingCapacity: true)
        self.order.removeAll(keepingCapacity: true)
        self.located.removeAll(keepingCapacity: true)
        self.sequences.removeAll(keepingCapacity: true)
        self.tallies.removeAll(keepingCapacity: true)
    }

    static func outcome(of result: ApplyResult) -> String {
        switch result {
        case .applied: "applied"
        case .ignored(let reason, _, _): "ignored:\(reason.rawValue)"
        case .duplicate(let outcome): outcome
        case .staleSequence: "stale_seq"
        }
    }

    /// Applies one message: the only apply path (a single message is a batch of one). The story's
    /// change, its checkpoints, escalations, ledger entry, counters and the sender's `seq` are
    /// queued and written once per batch. A change whose effects reach beyond the story (it carries
    /// a cost the budget rules weigh, it starts a pending story, it fails the story, or it may
    /// finish the session) writes what is queued at once and then updates the session: cancelled
    /// dependents, the session's counters, status and budget, in the same transaction.
    mutating func applyOne(_ incoming: IncomingEvent, jitter: Double) throws -> ApplyResult {
        if let outcome = self.outcomes[incoming.messageID] { return .duplicate(outcome: outcome) }
        let (key, located) = try self.locate(incoming)
        var work = located
        let sessionID = work.record.state.sessionID
        var sequenceKey: String?
        if let seq = incoming.seq, let source = incoming.source {
            let mark = try self.sequence(sessionID: sessionID, storyID: incoming.storyID, source: source)
            if let last = mark.last, seq <= last {
                self.ledger.append((incoming, sessionID, "stale_seq"))
                self.outcomes[incoming.messageID] = "stale_seq"
                return .staleSequence(last: last)
            }
            sequenceKey = mark.key
        }
        let before = work.record.state
        var state = before
        // Effects beyond the story: written at once, after what is queued.
        var wide = false
        if let cost = incoming.costUSD, cost > 0, cost.isFinite {
            state.costUSD += cost
            wide = true
        }
        if let added = incoming.tokens, added > 0 { state.tokens += added }
        // A result for a pending story whose dependencies are complete starts it.
        var startEffects = StoryEffects()
        if state.status == .pending, case .gateResult = incoming.event, try self.store.sessionInProgress(self.db, sessionID),
            try self.store.dependenciesComplete(self.db, work.record),
            case .applied(let started, let effects) = try self.store.engine.apply(.start, to: state, now: self.now, jitter: jitter)
        {
            state = started
            startEffects = effects
            wide = true
        }
        let decision = try self.store.engine.apply(incoming.event, to: state, now: self.now, jitter: jitter)
        var result: ApplyResult
        switch decision {
        case .applied(let after, var effects):
            effects.checkpoints.insert(contentsOf: startEffects.checkpoints, at: 0)
            effects.dispatches.insert(contentsOf: startEffects.dispatches, at: 0)
            effects.transitions.insert(contentsOf: startEffects.transitions, at: 0)
            effects.escalations.insert(contentsOf: startEffects.escalations, at: 0)
            if after.status.isFinished, !wide {
                // Only a completion that certainly leaves the session unfinished stays queued.
                if after.status == .complete, !before.status.isFinished, try self.completionLeavesWork(sessionID) {
                    self.tallies[sessionID]!.unfinished -= 1
                    self.tallies[sessionID]!.completed += 1
                } else {
                    wide = true
                }
            }
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
            for draft in startEffects.checkpoints + effects.checkpoints { self.checkpoints.append((sessionID, state.storyID, draft)) }
            for draft in startEffects.escalations + effects.escalations { self.escalations.append((sessionID, state.storyID, draft, incoming.messageID)) }
            self.counters["ignored.\(reason.rawValue)", default: 0] += 1
            self.ledger.append((incoming, sessionID, "ignored:\(reason.rawValue)"))
            result = .ignored(reason, work.record, effects)
        }
        if !wide, let added = incoming.tokens, added > 0 { self.tokens[sessionID, default: 0] += added }
        if let sequenceKey, let seq = incoming.seq {
            self.sequences[sequenceKey]!.last = max(self.sequences[sequenceKey]!.last ?? 0, seq)
            self.sequences[sequenceKey]!.dirty = true
        }
        if self.stories[key] == nil { self.order.append(key) }
        self.stories[key] = work
        self.outcomes[incoming.messageID] = Self.outcome(of: result)
        guard wide else { return result }
        try self.flush()
        var session = SessionEffects()
        let after = work.record.state
        if case .applied(let record, let effects, _) = result {
            if after.status == .failed, before.status != .failed {
                try self.store.cancelDependents(self.db, of: after.storyID, sessionID: sessionID, now: self.now, into: &session)
                try self.store.refreshSession(self.db, sessionID: sessionID, now: self.now, into: &session)
            } else {
                try self.store.updateSession(self.db, sessionID: sessionID, from: before, to: after, now: self.now, into: &session)
            }
            result = .applied(record, effects, session)
        } else {
            try self.store.updateSession(self.db, sessionID: sessionID, from: before, to: after, now: self.now, into: &session)
        }
        self.forgetReads()
        return result
    }

    /// The story a message is for, as this batch has it (with changes not written yet) or as the
    /// database has it: by the message's session if that session exists, else by story id
    /// within the message's project (one live story, or `ambiguous`).
    mutating func locate(_ incoming: IncomingEvent) throws -> (key: String, work: Work) {
        let known = try self.store.knownSession(self.db, incoming.sessionID)
        let projectKey = known == nil ? "\(incoming.project ?? "")\u{0}\(incoming.storyID)" : nil
        if let projectKey, let key = self.located[projectKey], let work = self.stories[key] { return (key, work) }
        if let known, let work = self.stories["\(known)\u{0}\(incoming.storyID)"] { return ("\(known)\u{0}\(incoming.storyID)", work) }
        let record = try self.store.findStory(self.db, storyID: incoming.storyID, session: known, project: incoming.project)
        let key = "\(record.state.sessionID)\u{0}\(incoming.storyID)"
        if let projectKey { self.located[projectKey] = key }
        return (key, self.stories[key] ?? Work(record: record, storedVersion: record.state.version, storedStatus: record.state.status))
    }

    /// Whether completing one more story of the session leaves stories that are neither
    /// finished nor cancelled (so the session does not end with it).
    mutating func completionLeavesWork(_ sessionID: String) throws -> Bool {
        if self.tallies[sessionID] == nil {
            guard
                let row = try Row.fetchOne(
                    cached: self.db,
                    sql: """
                        SELECT status, story_count - stories_completed - stories_failed,
                            (SELECT COUNT(*) FROM wave_story_executions WHERE session_id = wave_sessions.id AND status = 'cancelled')
                        FROM wave_sessions WHERE id = ?
                        """, arguments: [sessionID])
            else { return false }
            let status: String = row[0]
            self.tallies[sessionID] = SessionTally(
                unfinished: row[1] ?? 0, cancelled: row[2] ?? 0,
                terminal: SessionStatus(rawValue: status)?.isTerminal ?? true)
        }
        let tally = self.tallies[sessionID]!
        return !tally.terminal && tally.unfinished - 1 > tally.cancelled
    }

    /// The last `seq` applied from `source` to a story: this batch's, else the database's.
    mutating func sequence(sessionID: String, storyID: String, source: String) throws -> (key: String, last: UInt64?) {
        let key = "\(sessionID)\u{0}\(storyID)\u{0}\(source)"
        if let mark = self.sequences[key] { return (key, mark.last) }
        let stored = try Int64.fetchOne(
            cached: self.db, sql: "SELECT last_seq FROM wave_source_seq WHERE session_id = ? AND story_id = ? AND source = ?",
            arguments: [sessionID, storyID, source])
        let last = stored.map { UInt64(clamping: $0) }
        self.sequences[key] = SequenceMark(sessionID: sessionID, storyID: storyID, source: source, last: last)
        return (key, last)
    }

    /// Writes what is pending: each changed story once, then checkpoints, escalations, ledger
    /// entries, counters and session tokens.
    mutating func flush() throws {
        for key in self.order {
            guard var work = self.stories[key], work.changes > 0 else { continue }
            try self.store.writeStory(
                self.db, &work.record, expectedVersion: work.storedVersion, now: self.now, changes: work.changes, storedStatus: work.storedStatus)
            work.storedVersion = work.record.state.version
            work.storedStatus = work.record.state.status
            work.changes = 0
            self.stories[key] = work
        }
        try self.insertCheckpoints()
        for escalation in self.escalations {
            try SQLiteStore.insertEscalation(
                self.db, sessionID: escalation.sessionID, storyID: escalation.storyID, escalation.draft, messageID: escalation.messageID, now: self.now)
            self.counters["escalations.\(escalation.draft.kind)", default: 0] += 1
        }
        self.escalations.removeAll(keepingCapacity: true)
        try self.insertLedger()
        try self.writeSequences()
        for (name, amount) in self.counters { try self.store.bump(self.db, name, by: amount) }
        self.counters.removeAll(keepingCapacity: true)
        for (sessionID, tally) in self.tallies where tally.completed > 0 {
            try self.db.execute(
                cached: "UPDATE wave_sessions SET stories_completed = stories_completed + ?, updated_at = ? WHERE id = ?",
                arguments: [tally.completed, SQLiteStore.format(self.now), sessionID])
            self.tallies[sessionID]!.completed = 0
        }
        for (sessionID, amount) in self.tokens {
            try self.db.execute(
                cached: "UPDATE wave_sessions SET token_count = token_count + ?, updated_at = ? WHERE id = ?",
                arguments: [amount, SQLiteStore.format(self.now), sessionID])
        }
        self.tokens.removeAll(keepingCapacity: true)
    }

    mutating func insertCheckpoints() throws {
        guard !self.checkpoints.isEmpty else { return }
        if self.checkpoints.count == 1, let (sessionID, storyID, draft) = self.checkpoints.first {
            // One statement (its seq and parent from subqueries) where a batch has one checkpoint.
            try self.store.appendCheckpoint(self.db, sessionID: sessionID, storyID: storyID, draft, now: self.now)
            self.checkpoints.removeAll(keepingCapacity: true)
            return
        }
        var seq = (try Int.fetchOne(cached: self.db, sql: "SELECT MAX(seq) FROM wave_checkpoints") ?? 0)
        var parents: [String: String?] = [:]
        let created = SQLiteStore.format(self.now)
        for (sessionID, storyID, draft) in self.checkpoints {
            let key = "\(sessionID)\u{0}\(storyID)"
            if parents[key] == nil {
                parents[key] = .some(
                    try self.db.fetchOneDirect(
                        cached: "SELECT id FROM wave_checkpoints WHERE session_id = ? AND story_id = ? ORDER BY seq DESC LIMIT 1",
                        { bind in
                            bind.text(sessionID)
                            bind.text(storyID)
                        }, { $0.text(0) }) ?? nil)
            }
            let id = StoreIDs.make()
            seq += 1
            try SQLiteStore.insertCheckpoint(
                self.db, id: id, sessionID: sessionID, storyID: storyID, draft, parent: parents[key] ?? nil, created: created, seq: seq)
            parents[key] = .some(id)
        }
        self.checkpoints.removeAll(keepingCapacity: true)
    }

    mutating func insertLedger() throws {
        guard !self.ledger.isEmpty else { return }
        let applied = SQLiteStore.format(self.now)
        for (incoming, sessionID, outcome) in self.ledger {
            try SQLiteStore.insertLedger(self.db, incoming, sessionID: sessionID, outcome: outcome, applied: applied)
        }
        self.ledger.removeAll(keepingCapacity: true)
    }

    /// The newest `seq` of each (story, source) moved in this batch, one upsert.
    mutating func writeSequences() throws {
        var rows: [[(any DatabaseValueConvertible)?]] = []
        for (key, mark) in self.sequences where mark.dirty {
            rows.append([mark.sessionID, mark.storyID, mark.source, Int64(clamping: mark.last ?? 0)])
            self.sequences[key]!.dirty = false
        }
        guard !rows.isEmpty else { return }
        try self.insertRows(
            "INSERT INTO wave_source_seq (session_id, story_id, source, last_seq) VALUES ", rowTemplate: "(?, ?, ?, ?)", rows: rows,
            tail: " ON CONFLICT (session_id, story_id, source) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)")
    }

    /// Multi-row INSERTs, up to 64 rows a statement.
    func insertRows(_ head: String, rowTemplate: String, rows: [[(any DatabaseValueConvertible)?]], tail: String = "") throws {
        var start = 0
        while start < rows.count {
            let chunk = rows[start..<min(start + 64, rows.count)]
            let sql = head + Array(repeating: rowTemplate, count: chunk.count).joined(separator: ", ") + tail
            var values: [(any DatabaseValueConvertible)?] = []
            for row in chunk { values.append(contentsOf: row) }
            try self.db.cachedStatement(sql: sql).execute(arguments: StatementArguments(values))
            start += chunk.count
        }
    }
}
