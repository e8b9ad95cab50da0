import GRDB
import WaveEngine
import WaveProtocol

/// One message to apply to a story.
public struct IncomingEvent: Sendable, Hashable {
    /// The message id: the ledger key, so a message applies at most once.
    public var messageID: String
    /// The event type, for the ledger.
    public var eventType: String
    /// The sender (agent id), for the per-source sequence.
    public var source: String?
    /// The sender's sequence number, if it sends one; an older or equal one than the last
    /// applied from this source for this story has no effect.
    public var seq: UInt64?
    /// The session, if the message names one (the reference sends a random one; a miss is
    /// resolved by story id).
    public var sessionID: String?
    /// The story.
    public var storyID: String
    /// What happened.
    public var event: StoryEvent
    /// Cost the signal reports, USD.
    public var costUSD: Double?
    /// Tokens the signal reports.
    public var tokens: Int?
    /// The project of the stream it arrived on: a story found without a session is looked up
    /// among that project's sessions only (`WIRE.md`).
    public var project: String?
    /// The task this message answers (the envelope's `correlation_id`), if it says.
    public var correlationID: String?

    /// Creates an incoming event.
    public init(
        messageID: String, eventType: String, source: String? = nil, seq: UInt64? = nil, sessionID: String? = nil, storyID: String, event: StoryEvent,
        costUSD: Double? = nil, tokens: Int? = nil, project: String? = nil, correlationID: String? = nil
    ) {
        self.correlationID = correlationID
        self.messageID = messageID
        self.eventType = eventType
        self.source = source
        self.seq = seq
        self.sessionID = sessionID
        self.storyID = storyID
        self.event = event
        self.costUSD = costUSD
        self.tokens = tokens
        self.project = project
    }
}

/// What applying a message did to the session.
public struct SessionEffects: Sendable, Hashable {
    /// The session's status changed (`in_progress → completed`).
    public var statusChange: SessionStatus?
    /// Spending crossed the warning threshold with this message (`session.budget_warning`).
    public var budgetWarning = false
    /// Spending went over the budget with this message: the session was paused.
    public var pausedForBudget = false
    /// Stories cancelled because a story they depend on failed.
    public var cancelledDependents: [String] = []
    /// Checkpoints, escalations and tasks of those other stories.
    public var otherEffects: [String: StoryEffects] = [:]
}

/// The outcome of ``SQLiteStore/apply(_:now:)``.
public enum ApplyResult: Sendable, Hashable {
    /// The story changed.
    case applied(StoryRecord, StoryEffects, SessionEffects)
    /// No change to the story (the effects may hold an escalation).
    case ignored(IgnoredReason, StoryRecord, StoryEffects)
    /// The message was applied before; this is what it did then.
    case duplicate(outcome: String)
    /// The sender's `seq` is not newer than the last one applied for this story.
    case staleSequence(last: UInt64)
}

extension SQLiteStore {
    /// Applies one message in one transaction: ledger check, sequence check, the engine's
    /// decision, the story row (optimistic version check), its checkpoints and escalations,
    /// dependents of a failed story, the session's derived counters and budget, the ledger
    /// entry. Applying the same message again changes nothing.
    ///
    /// - Throws: ``EngineRejection`` (premature result: do not acknowledge), ``StoreError``
    ///   (`notFound` for an unknown story, `conflict` when another writer won).
    @discardableResult
    public func apply(_ incoming: IncomingEvent, now: WaveTimestamp = .now(), jitter: Double = Double.random(in: 0..<1)) throws -> ApplyResult {
        try self.apply(batch: [incoming], now: now, jitter: jitter)[0].get()
    }

    /// Applies several messages in one transaction (one commit). A message the engine refuses
    /// (premature) or whose story does not exist gets its error in the results and changes
    /// nothing, since those are found before anything is written; any other error (SQLite's)
    /// rolls the whole batch back and is thrown, and the caller may apply the messages one by one.
    /// - Parameter jitter: the backoff jitter for every message (tests); by default a random one each.
    /// - Parameter stopAtSessionChange: stop after a message that finished its story and so
    ///   changed what its session does next (the session ended, or it has stories waiting that
    ///   may start now): the results returned are then a prefix of `batch`, and the caller starts
    ///   what is ready before applying the rest, so that each message sees what applying the
    ///   messages one by one, with the orchestrator's reactions between them, would show it.
    ///
    /// A result whose task was taken back (its deadline passed and the timeout applied, or a stop
    /// withdrew it: ``recordWithdrawals(_:reason:now:)``) gets ``StoreError/Code/withdrawn`` in its
    /// slot and changes nothing: facts in the ledger, read in the same transaction, so that every
    /// process that applies results sees them.
    /// - Parameter fence: the leases the writing instance holds (``LeaseBook``): the transaction
    ///   fails with ``StoreError/Code/leaseLost`` for a project of the batch not served under
    ///   them; `nil`: unfenced.
    public func apply(
        batch: [IncomingEvent], now: WaveTimestamp = .now(), jitter: Double? = nil, stopAtSessionChange: Bool = false,
        fence: [String: ProjectLease]? = nil
    ) throws -> [Result<ApplyResult, any Error>] {
        try self.immediateWrite { db in
            if let fence { try self.checkFence(db, projects: Set(batch.compactMap { $0.project.map(Self.projectKey) }), fence: fence) }
            var writer = BatchWriter(store: self, db: db, now: now)
            return try writer.apply(batch, jitter: jitter, stopAtSessionChange: stopAtSessionChange)
        }
    }

    /// The ledger entries that say a task was taken back: the timeout applied for it
    /// (`timeout-{task}`), or its withdrawal by a stop (`withdrawn-{task}`).
    static func withdrawalMarks(_ taskMessageID: String) -> [String] { ["timeout-\(taskMessageID)", "withdrawn-\(taskMessageID)"] }

    /// Records tasks taken back by a stop: a result that answers one of them later is not
    /// applied. The marks are ledger entries (no session, so that a session's ledger counts only
    /// its messages), pruned with the ledger.
    public func recordWithdrawals(_ tasks: [TaskEntry], reason: String, now: WaveTimestamp = .now()) throws {
        guard !tasks.isEmpty else { return }
        try self.pool.write { db in
            for task in tasks {
                try db.execute(
                    sql: """
                        INSERT OR IGNORE INTO wave_processed_messages (message_id, session_id, story_id, event_type, outcome, applied_at)
                        VALUES (?, NULL, ?, 'task.withdrawn', ?, ?)
                        """, arguments: ["withdrawn-\(task.messageID)", task.storyID, "withdrawn:\(reason)", Self.format(now)])
            }
        }
    }

    /// Runs `body` in an `IMMEDIATE` transaction: the write lock is taken before anything is
    /// read, so another process cannot change a row between this read and this write.
    func immediateWrite<T>(_ body: (Database) throws -> T) throws -> T {
        do {
            return try self.pool.writeWithoutTransaction { db in
                var result: T?
                try db.inTransaction(.immediate) {
                    result = try body(db)
                    return .commit
                }
                return result!
            }
        } catch {
            // Rolled back: a cached story may be a version that was never committed, and another
            // process could commit that version number with other content.
            self.forgetCachedStories()
            throw error
        }
    }

    func forgetCachedStories() {
        self.storyCache.withLock { $0.removeAll() }
    }

    /// A session id that exists, else `nil` (the reference's random per-process ids).
    func knownSession(_ db: Database, _ id: String?) throws -> String? {
        guard let id, !id.isEmpty else { return nil }
        // Sessions are never deleted and their ids never change: a found id can be remembered.
        if let known = self.sessionIDs.withLock({ $0[id] }) { return known }
        let forms = StoreIDs.storedForms(id)
        let stored = try String.fetchOne(cached: db, sql: "SELECT id FROM wave_sessions WHERE id IN (?, ?)", arguments: [forms.0, forms.1])
        if let stored { self.sessionIDs.withLock { if $0.count < 10_000 { $0[id] = stored } } }
        return stored
    }

    /// Whether a message id is in the ledger already.
    func alreadyApplied(_ db: Database, _ messageID: String?) throws -> Bool {
        guard let messageID else { return false }
        return try String.fetchOne(cached: db, sql: "SELECT outcome FROM wave_processed_messages WHERE message_id = ?", arguments: [messageID]) != nil
    }

    func sessionInProgress(_ db: Database, _ sessionID: String) throws -> Bool {
        try String.fetchOne(cached: db, sql: "SELECT status FROM wave_sessions WHERE id = ?", arguments: [sessionID]) == SessionStatus.inProgress.rawValue
    }

    func dependenciesComplete(_ db: Database, _ record: StoryRecord) throws -> Bool {
        for dependency in record.state.dependencies {
            let status = try String.fetchOne(
                cached: db, sql: "SELECT status FROM wave_story_executions WHERE session_id = ? AND story_id = ?",
                arguments: [record.state.sessionID, dependency])
            guard status == StoryStatus.complete.rawValue else { return false }
        }
        return true
    }

    /// Writes the story row if its version is still `expectedVersion`; bumps the version.
    /// - Parameter changes: how many changes this write carries (a batch writes several at once);
    ///   the version moves by that many, as if they had been written one by one.
    /// - Parameter storedStatus: the status the row has now, if known: when the status does not
    ///   change it is left out of the `SET` list, since SQLite rewrites the entries of the two
    ///   indexes holding `status` for a column that is assigned, even to the same value.
    func writeStory(
        _ db: Database, _ record: inout StoryRecord, expectedVersion: Int, now: WaveTimestamp, changes: Int = 1, storedStatus: StoryStatus? = nil
    ) throws {
        let state = record.state
        record.state.version = expectedVersion + changes
        let setStatus = storedStatus != state.status
        try db.executeDirect(cached: setStatus ? Self.storyUpdate : Self.storyUpdateKeepingStatus) { bind in
            if setStatus { bind.text(state.status.rawValue) }
            bind.text(state.currentGate.description)
            bind.int(expectedVersion + changes)
            bind.int(state.retryCount)
            bind.text(state.blockedReason)
            bind.int(state.acceptanceCriteriaPassed)
            bind.int(state.acceptanceCriteriaTotal)
            bind.double((state.costUSD * 10_000).rounded() / 10_000)
            bind.int(state.tokens)
            bind.text(state.startedAt.map(Self.format))
            bind.text(state.completedAt.map(Self.format))
            bind.text(state.failedAt.map(Self.format))
            bind.text(state.errorMessage)
            bind.text(Self.metadataText(record))
            bind.text(Self.format(now))
            bind.text(record.rowID)
            bind.int(expectedVersion)
        }
        guard db.changesCount == 1 else {
            throw StoreError(.conflict, "story \(state.storyID) was changed by another writer (version \(expectedVersion) is stale); retry")
        }
        // If this transaction rolls back, the row keeps the old version and the cached copy
        // (one version ahead) is simply not used.
        self.remember(record)
    }

    static let storyUpdateKeepingStatus = """
        UPDATE wave_story_executions SET current_gate = ?, version = ?, retry_count = ?, blocked_reason = ?,
            acceptance_criteria_passed = ?, acceptance_criteria_total = ?, cost_usd = ?, token_count = ?,
            started_at = ?, completed_at = ?, failed_at = ?, error_message = ?, metadata = ?, updated_at = ?
        WHERE id = ? AND version = ?
        """
    static let storyUpdate = storyUpdateKeepingStatus.replacingOccurrences(of: "SET current_gate = ?", with: "SET status = ?, current_gate = ?")

    func writeEffects(_ db: Database, sessionID: String, storyID: String, _ effects: StoryEffects, messageID: String?, now: WaveTimestamp) throws {
        for checkpoint in effects.checkpoints {
            try self.appendCheckpoint(db, sessionID: sessionID, storyID: storyID, checkpoint, now: now)
        }
        for escalation in effects.escalations {
            try Self.insertEscalation(db, sessionID: sessionID, storyID: storyID, escalation, messageID: messageID, now: now)
            try self.bump(db, "escalations.\(escalation.kind)")
        }
    }

    static func insertEscalation(
        _ db: Database, sessionID: String, storyID: String, _ escalation: EscalationDraft, messageID: String?, now: WaveTimestamp
    ) throws {
        try db.execute(
            cached: """
                INSERT INTO wave_escalations (id, session_id, story_id, kind, reason, message_id, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
                """, arguments: [StoreIDs.make(), sessionID, storyID, escalation.kind, escalation.reason, messageID, Self.format(now)])
    }

    func recordLedger(_ db: Database, _ incoming: IncomingEvent, sessionID: String?, outcome: String, now: WaveTimestamp) throws {
        // The sender's seq is remembered with the ledger entry, after the decision: a message the
        // engine refused leaves no trace, so its redelivery is judged again.
        if let seq = incoming.seq, let source = incoming.source, let sessionID, outcome != "stale_seq" {
            try db.execute(
                cached: """
                    INSERT INTO wave_source_seq (session_id, story_id, source, last_seq) VALUES (?, ?, ?, ?)
                    ON CONFLICT (session_id, story_id, source) DO UPDATE SET last_seq = MAX(last_seq, excluded.last_seq)
                    """, arguments: [sessionID, incoming.storyID, source, Int64(clamping: seq)])
        }
        try Self.insertLedger(db, incoming, sessionID: sessionID, outcome: outcome, applied: Self.format(now))
    }

    /// One ledger entry.
    static func insertLedger(_ db: Database, _ incoming: IncomingEvent, sessionID: String?, outcome: String, applied: String) throws {
        try db.executeDirect(
            cached: """
                INSERT INTO wave_processed_messages (message_id, session_id, story_id, event_type, outcome, applied_at) VALUES (?, ?, ?, ?, ?, ?)
                """
        ) { bind in
            bind.text(incoming.messageID)
            bind.text(sessionID)
            bind.text(incoming.storyID)
            bind.text(incoming.eventType)
            bind.text(outcome)
            bind.text(applied)
        }
    }

    func bump(_ db: Database, _ name: String, by amount: Int = 1) throws {
        try db.execute(
            cached: "INSERT INTO wave_counters (name, value) VALUES (?, ?) ON CONFLICT (name) DO UPDATE SET value = value + excluded.value",
            arguments: [name, amount])
    }

    /// Cancels, transitively, the unfinished stories that depend on a failed one.
    func cancelDependents(_ db: Database, of failed: String, sessionID: String, now: WaveTimestamp, into effects: inout SessionEffects) throws {
        var queue = [failed]
        while let current = queue.popLast() {
            let rows = try Row.fetchAll(cached: db, sql: "SELECT \(Self.storyColumns) FROM wave_story_executions WHERE session_id = ?", arguments: [sessionID])
                .map(Self.story)
            for var record in rows where record.state.dependencies.contains(current) && !record.state.status.isFinished {
                let version = record.state.version
                guard
                    case .applied(let state, let storyEffects) = try self.engine.apply(
                        .cancel(reason: "dependency \(current) failed"), to: record.state, now: now)
                else { continue }
                record.state = state
                try self.writeStory(db, &record, expectedVersion: version, now: now)
                try self.writeEffects(db, sessionID: sessionID, storyID: state.storyID, storyEffects, messageID: nil, now: now)
                effects.cancelledDependents.append(state.storyID)
                effects.otherEffects[state.storyID] = storyEffects
                queue.append(state.storyID)
            }
        }
    }

    /// Updates the session after one story changed from `before` to `after`: the counters,
    /// cost and tokens move by that story's difference (derived, never typed in; the full
    /// ``refreshSession(_:sessionID:now:into:)`` recounts on the other paths), the session
    /// completes or fails when its last story finishes, and the budget rules apply.
    func updateSession(
        _ db: Database, sessionID: String, from before: StoryState, to after: StoryState, now: WaveTimestamp, into effects: inout SessionEffects
    ) throws {
        let completed = (after.status == .complete ? 1 : 0) - (before.status == .complete ? 1 : 0)
        let failed = (after.status == .failed ? 1 : 0) - (before.status == .failed ? 1 : 0)
        let cost = after.costUSD - before.costUSD
        let tokens = after.tokens - before.tokens
        let finishedNow = after.status.isFinished && !before.status.isFinished
        guard completed != 0 || failed != 0 || cost != 0 || tokens != 0 || finishedNow else { return }
        guard
            let row = try Row.fetchOne(
                cached: db,
                sql: """
                    UPDATE wave_sessions SET stories_completed = stories_completed + ?, stories_failed = stories_failed + ?,
                        actual_cost_usd = ROUND(actual_cost_usd + ?, 4), token_count = token_count + ?, updated_at = ?
                    WHERE id = ? RETURNING status, budget_usd, actual_cost_usd, paused_at, metadata, story_count, stories_completed, stories_failed
                    """, arguments: [completed, failed, cost, tokens, Self.format(now), sessionID])
        else { return }
        var status = SessionStatus(rawValue: row[0]) ?? .pending
        let budget: Double = row[1] ?? 2.0
        let total: Double = row[2] ?? 0
        var pausedAt: String? = row[3]
        var metadata = Self.object(row[4])
        var changed = false
        // The counters say whether every story may be finished (cancelled ones are counted from
        // the index, usually none); only then are the unfinished ones counted exactly, so that
        // finishing one story of thousands does not scan the others.
        var mayBeDone = false
        if finishedNow, !status.isTerminal {
            let remaining = (row[5] as Int? ?? 0) - (row[6] as Int? ?? 0) - (row[7] as Int? ?? 0)
            mayBeDone =
                try remaining <= 0
                || remaining
                    <= (Int.fetchOne(
                        cached: db,
                        sql: """
                            SELECT COUNT(*) FROM wave_story_executions WHERE session_id = ? AND status = 'cancelled'
                            """, arguments: [sessionID]) ?? 0)
        }
        if mayBeDone {
            let unfinished =
                try Int.fetchOne(
                    cached: db,
                    sql: """
                        SELECT COUNT(*) FROM wave_story_executions WHERE session_id = ? AND status NOT IN ('complete', 'cancelled', 'failed')
                        """, arguments: [sessionID]) ?? 0
            if unfinished == 0 {
                let anyFailed =
                    try Int.fetchOne(
                        cached: db, sql: "SELECT COUNT(*) FROM wave_story_executions WHERE session_id = ? AND status = 'failed'", arguments: [sessionID]) ?? 0
                status = anyFailed > 0 ? .failed : .completed
                effects.statusChange = status
                changed = true
            }
        }
        if cost > 0, !status.isTerminal {
            let warnAt = budget * self.engine.configuration.budgetWarningRatio
            if total >= warnAt, metadata["budget_warned"]?.boolValue != true {
                metadata["budget_warned"] = true
                effects.budgetWarning = true
                changed = true
            }
            if total > budget, pausedAt == nil, metadata["budget_paused"]?.boolValue != true {
                pausedAt = Self.format(now)
                metadata["budget_paused"] = true
                effects.pausedForBudget = true
                changed = true
            }
        }
        guard changed else { return }
        try db.execute(
            cached: """
                UPDATE wave_sessions SET status = ?, paused_at = ?, metadata = ?,
                    completed_at = CASE WHEN ? = 'completed' AND completed_at IS NULL THEN ? ELSE completed_at END,
                    failed_at = CASE WHEN ? = 'failed' AND failed_at IS NULL THEN ? ELSE failed_at END
                WHERE id = ?
                """,
            arguments: [
                status.rawValue, pausedAt, JSONValue.object(metadata).jsonText, status.rawValue, Self.format(now), status.rawValue, Self.format(now), sessionID,
            ])
    }

    /// Derives the session's counters, cost and tokens from its stories; completes or fails it
    /// when every story is finished; warns at the budget threshold and pauses above the budget.
    func refreshSession(_ db: Database, sessionID: String, now: WaveTimestamp, into effects: inout SessionEffects) throws {
        guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM wave_sessions WHERE id = ?", arguments: [sessionID]) else { return }
        var session = Self.session(row)
        // One aggregate over the session's stories (SQLite does the counting).
        let totals = try Row.fetchOne(
            cached: db,
            sql: """
                SELECT COUNT(*) AS n, COALESCE(SUM(status = 'complete'), 0) AS completed, COALESCE(SUM(status = 'failed'), 0) AS failed,
                    COALESCE(SUM(status IN ('complete', 'cancelled', 'failed')), 0) AS finished, COALESCE(SUM(cost_usd), 0.0) AS cost,
                    COALESCE(SUM(token_count), 0) AS tokens
                FROM wave_story_executions WHERE session_id = ?
                """, arguments: [sessionID])!
        let count: Int = totals["n"]
        let completed: Int = totals["completed"]
        let failed: Int = totals["failed"]
        let finished: Int = totals["finished"]
        let cost: Double = totals["cost"]
        let tokens: Int = totals["tokens"]
        var status = session.status
        if !session.status.isTerminal, count > 0, finished == count {
            status = failed > 0 ? .failed : .completed
        }
        var metadata = session.metadata
        var pausedAt = session.pausedAt
        let previousCost = session.actualCostUSD
        if session.budgetUSD >= 0, !status.isTerminal {
            let warnAt = session.budgetUSD * self.engine.configuration.budgetWarningRatio
            if cost >= warnAt, previousCost < warnAt || metadata["budget_warned"]?.boolValue != true, metadata["budget_warned"]?.boolValue != true {
                metadata["budget_warned"] = true
                effects.budgetWarning = true
            }
            if cost > session.budgetUSD, pausedAt == nil, metadata["budget_paused"]?.boolValue != true {
                pausedAt = now
                metadata["budget_paused"] = true
                effects.pausedForBudget = true
            }
        }
        if status != session.status { effects.statusChange = status }
        session.status = status
        try db.execute(
            cached: """
                UPDATE wave_sessions SET status = ?, story_count = ?, stories_completed = ?, stories_failed = ?, actual_cost_usd = ?, token_count = ?,
                    paused_at = ?, metadata = ?, completed_at = CASE WHEN ? = 'completed' AND completed_at IS NULL THEN ? ELSE completed_at END,
                    failed_at = CASE WHEN ? = 'failed' AND failed_at IS NULL THEN ? ELSE failed_at END, updated_at = ?
                WHERE id = ?
                """,
            arguments: [
                status.rawValue, count, completed, failed, (cost * 10_000).rounded() / 10_000, tokens, pausedAt.map(Self.format),
                JSONValue.object(metadata).jsonText, status.rawValue, Self.format(now), status.rawValue, Self.format(now), Self.format(now), sessionID,
            ])
    }

    // MARK: Session lifecycle

    /// Starts the oldest pending session of a project (`in_progress`), if there is one and no
    /// session of the project is in progress; returns it.
    public func startNextSession(project: String, now: WaveTimestamp = .now(), fence: [String: ProjectLease]? = nil) throws -> SessionRecord? {
        let key = Self.projectKey(project)
        return try self.immediateWrite { db in
            if let fence { try self.checkFence(db, projects: [key], fence: fence) }
            if let running = try Row.fetchOne(
                cached: db, sql: "SELECT * FROM wave_sessions WHERE \(Self.projectIs()) AND status = 'in_progress' ORDER BY created_at LIMIT 1",
                arguments: [key])
            {
                return Self.session(running)
            }
            guard
                let next = try Row.fetchOne(
                    cached: db, sql: "SELECT * FROM wave_sessions WHERE \(Self.projectIs()) AND status = 'pending' ORDER BY created_at, rowid LIMIT 1",
                    arguments: [key])
            else {
                return nil
            }
            let id: String = next["id"]
            try db.execute(
                cached: "UPDATE wave_sessions SET status = 'in_progress', started_at = ?, updated_at = ? WHERE id = ?",
                arguments: [Self.format(now), Self.format(now), id])
            return Self.session(try Row.fetchOne(cached: db, sql: "SELECT * FROM wave_sessions WHERE id = ?", arguments: [id])!)
        }
    }

    /// Starts pending stories whose dependencies are complete, in creation order, up to the
    /// parallel limit of working stories; nothing while the session is paused or not in
    /// progress. Returns each started story with its effects (the tasks to dispatch).
    public func startReadyStories(session id: String, now: WaveTimestamp = .now()) throws -> [(StoryRecord, StoryEffects)] {
        let session = try self.session(id: id)
        return try self.immediateWrite { db in
            guard let row = try Row.fetchOne(cached: db, sql: "SELECT * FROM wave_sessions WHERE id = ?", arguments: [session.id]) else { return [] }
            let current = Self.session(row)
            guard current.status == .inProgress, current.pausedAt == nil else { return [] }
            // Only the pending rows are read, and the working ones counted (both from the
            // (session, status) index): finishing one story of thousands must not read them all.
            let pending = try Row.fetchAll(
                cached: db,
                sql: "SELECT \(Self.storyColumns) FROM wave_story_executions WHERE session_id = ? AND status = 'pending' ORDER BY created_at, rowid",
                arguments: [session.id]
            ).map(Self.story)
            guard !pending.isEmpty else { return [] }
            var working =
                try Int.fetchOne(
                    cached: db, sql: "SELECT COUNT(*) FROM wave_story_executions WHERE session_id = ? AND status IN ('in_progress', 'review', 'blocked')",
                    arguments: [session.id]) ?? 0
            var started: [(StoryRecord, StoryEffects)] = []
            for var record in pending {
                guard working < self.engine.configuration.parallelLimit else { break }
                guard try self.dependenciesComplete(db, record) else { continue }
                let version = record.state.version
                guard case .applied(let state, let effects) = try self.engine.apply(.start, to: record.state, now: now) else { continue }
                record.state = state
                try self.writeStory(db, &record, expectedVersion: version, now: now)
                try self.writeEffects(db, sessionID: session.id, storyID: state.storyID, effects, messageID: nil, now: now)
                started.append((record, effects))
                working += 1
            }
            if !started.isEmpty {
                var sessionEffects = SessionEffects()
                try self.refreshSession(db, sessionID: session.id, now: now, into: &sessionEffects)
            }
            return started
        }
    }

    /// Pauses a session (`paused_at`; the status stays `in_progress`). `messageID` goes to the
    /// ledger, so the event announcing it is not applied a second time.
    @discardableResult
    public func pauseSession(_ id: String, messageID: String? = nil, now: WaveTimestamp = .now()) throws -> SessionRecord {
        try self.setPaused(id, paused: true, messageID: messageID, now: now)
    }

    /// Resumes a paused session.
    @discardableResult
    public func resumeSession(_ id: String, messageID: String? = nil, now: WaveTimestamp = .now()) throws -> SessionRecord {
        try self.setPaused(id, paused: false, messageID: messageID, now: now)
    }

    private func setPaused(_ id: String, paused: Bool, messageID: String?, now: WaveTimestamp) throws -> SessionRecord {
        let session = try self.session(id: id)
        guard !session.status.isTerminal else { throw StoreError(.notAllowed, "session \(session.displayID) is \(session.status.rawValue)") }
        try self.immediateWrite { db in
            // The same announcement applied before (an orchestrator receiving the CLI's event): no-op.
            if try self.alreadyApplied(db, messageID) { return }
            try db.execute(
                cached: "UPDATE wave_sessions SET paused_at = ?, updated_at = ? WHERE id = ?",
                arguments: [paused ? Self.format(now) : nil, Self.format(now), session.id])
            try self.appendCheckpoint(
                db, sessionID: session.id, storyID: nil,
                CheckpointDraft(
                    type: .manual, name: paused ? "Session paused" : "Session resumed", gate: nil,
                    state: ["kind": .string(paused ? "session_paused" : "session_resumed"), "timestamp": .string(now.description)], agentID: nil), now: now)
            if let messageID {
                try self.recordLedger(
                    db, IncomingEvent(messageID: messageID, eventType: paused ? "session.paused" : "session.resumed", storyID: "", event: .start),
                    sessionID: session.id, outcome: "applied", now: now)
            }
        }
        return try self.session(id: id)
    }

    /// Cancels a session: every unfinished story is cancelled, then the session.
    @discardableResult
    public func cancelSession(_ id: String, reason: String, messageID: String? = nil, now: WaveTimestamp = .now()) throws -> SessionRecord {
        let session = try self.session(id: id)
        if session.status == .cancelled, try self.pool.read({ try self.alreadyApplied($0, messageID) }) { return session }
        guard !session.status.isTerminal else { throw StoreError(.notAllowed, "session \(session.displayID) is already \(session.status.rawValue)") }
        try self.immediateWrite { db in
            if try self.alreadyApplied(db, messageID) { return }
            let stories = try Row.fetchAll(
                cached: db, sql: "SELECT \(Self.storyColumns) FROM wave_story_executions WHERE session_id = ?", arguments: [session.id]
            ).map(Self.story)
            for var record in stories where !record.state.status.isFinished {
                let version = record.state.version
                guard case .applied(let state, let effects) = try self.engine.apply(.cancel(reason: reason), to: record.state, now: now) else { continue }
                record.state = state
                try self.writeStory(db, &record, expectedVersion: version, now: now)
                try self.writeEffects(db, sessionID: session.id, storyID: state.storyID, effects, messageID: messageID, now: now)
            }
            try db.execute(cached: "UPDATE wave_sessions SET status = 'cancelled', updated_at = ? WHERE id = ?", arguments: [Self.format(now), session.id])
            var effects = SessionEffects()
            try self.refreshSession(db, sessionID: session.id, now: now, into: &effects)
            if let messageID {
                try self.recordLedger(
                    db, IncomingEvent(messageID: messageID, eventType: "session.cancelled", storyID: "", event: .start),
                    sessionID: session.id, outcome: "applied", now: now)
            }
        }
        return try self.session(id: id)
    }

    /// Deletes ledger entries older than ``ledgerRetention`` (maintenance on its interval).
    @discardableResult
    public func pruneLedger(now: WaveTimestamp = .now()) throws -> Int {
        try self.pruneLedger(olderThan: now.adding(.zero - self.ledgerRetention))
    }

    /// Deletes ledger entries older than `cutoff`.
    @discardableResult
    public func pruneLedger(olderThan cutoff: WaveTimestamp) throws -> Int {
        try self.pool.write { db in
            try db.execute(cached: "DELETE FROM wave_processed_messages WHERE applied_at < ?", arguments: [Self.format(cutoff)])
            return db.changesCount
        }
    }
}
