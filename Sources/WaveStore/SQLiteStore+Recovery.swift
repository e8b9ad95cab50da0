import GRDB
import WaveEngine
import WaveProtocol

/// How to recover a story (DOMAIN.md, Checkpoints and recovery).
public enum RecoveryStrategy: String, Sendable, Hashable, CaseIterable {
    /// Continue at the current gate with a fresh retry budget there.
    case resumeFromLast = "resume_from_last"
    /// Go back to a gate the story reached; later gate checkpoints are superseded.
    case resumeFromGate = "resume_from_gate"
    /// Back to gate-0 with a clean slate, `pending`, so it starts again.
    case restart
    /// Cancel it.
    case skip
}

/// What a recovery did.
public struct RecoveryOutcome: Sendable, Hashable {
    /// The story after it.
    public var story: StoryRecord
    /// Tasks to dispatch now.
    public var dispatches: [TaskDraft]
    /// Gate checkpoints marked superseded.
    public var superseded: Int
}

/// An in-flight story found at start-up, with what must be dispatched again.
public struct InFlightStory: Sendable, Hashable {
    /// The story.
    public var story: StoryRecord
    /// Its current gate's tasks.
    public var tasks: [TaskDraft]

    /// Creates one.
    public init(story: StoryRecord, tasks: [TaskDraft]) {
        self.story = story
        self.tasks = tasks
    }
}

extension SQLiteStore {
    /// Recovers one story. Every recovery writes a `manual` checkpoint saying what it did; the
    /// state machine's recovery transitions are the only way out of `failed`.
    /// - Throws: ``StoreError`` (`notFound`, `notAllowed`: a complete or cancelled story, a
    ///   gate not reached, a missing `--gate`).
    @discardableResult
    public func recover(
        story storyID: String, session: String? = nil, strategy: RecoveryStrategy, gate target: GateID? = nil, by: String, messageID: String? = nil,
        now: WaveTimestamp = .now()
    ) throws -> RecoveryOutcome {
        try self.immediateWrite { db in
            var record = try self.findStory(db, storyID: storyID, session: session)
            if try self.alreadyApplied(db, messageID) {
                // The same recovery announced again: nothing to do, nothing more to dispatch.
                return RecoveryOutcome(story: record, dispatches: [], superseded: 0)
            }
            let before = record.state
            guard !before.status.isTerminal else {
                throw StoreError(.notAllowed, "story \(storyID) is \(before.status.rawValue) and cannot be recovered")
            }
            var state = before
            var superseded = 0
            var checkpoint: [String: JSONValue] = [
                "kind": "recovered", "strategy": .string(strategy.rawValue), "by": .string(by),
                "previous_status": .string(before.status.rawValue), "previous_gate": .string(before.currentGate.description),
                "timestamp": .string(now.description),
            ]
            switch strategy {
            case .resumeFromLast:
                state.gateFailures[state.currentGate.number] = 0
                state.nextAttemptAt = nil
                if before.status == .failed {
                    state.status = StoryStatus.working(at: state.currentGate)
                    state.failedAt = nil
                    state.errorMessage = nil
                }
            case .resumeFromGate:
                guard let target else { throw StoreError(.invalidInput, "resume_from_gate needs --gate") }
                let reached = try String.fetchAll(
                    cached: db,
                    sql: "SELECT DISTINCT gate FROM wave_checkpoints WHERE session_id = ? AND story_id = ? AND checkpoint_type = 'gate' AND superseded = 0",
                    arguments: [before.sessionID, storyID]
                ).compactMap { try? GateID(parsing: $0) }
                let furthest = max(before.currentGate, reached.max() ?? .first)
                guard target <= furthest else {
                    throw StoreError(.notAllowed, "story \(storyID) never reached \(target) (furthest: \(furthest))")
                }
                state.currentGate = target
                for gate in GateID.all where gate >= target { state.gateFailures[gate.number] = 0 }
                state.devProgress = [:]
                state.devEarlyFailures = [:]
                state.nextAttemptAt = nil
                state.status = StoryStatus.working(at: target)
                state.failedAt = nil
                state.errorMessage = nil
                state.blockedReason = nil
                try db.execute(
                    cached:
                        "UPDATE wave_checkpoints SET superseded = 1 WHERE session_id = ? AND story_id = ? AND checkpoint_type = 'gate' AND gate >= ? AND superseded = 0",
                    arguments: [before.sessionID, storyID, target.description])
                superseded = db.changesCount
                checkpoint["target_gate"] = .string(target.description)
            case .restart:
                var fresh = StoryState(storyID: before.storyID, sessionID: before.sessionID)
                fresh.version = before.version
                fresh.dependencies = before.dependencies
                fresh.agent = before.agent
                fresh.domain = before.domain
                fresh.acceptanceCriteriaTotal = before.acceptanceCriteriaTotal
                fresh.costUSD = before.costUSD  // money spent stays spent
                fresh.tokens = before.tokens
                fresh.totalRetries = before.totalRetries
                state = fresh
                try db.execute(
                    cached: "UPDATE wave_checkpoints SET superseded = 1 WHERE session_id = ? AND story_id = ? AND superseded = 0",
                    arguments: [before.sessionID, storyID])
                superseded = db.changesCount
            case .skip:
                state.status = .cancelled
                state.errorMessage = "skipped by \(by)"
                state.nextAttemptAt = nil
            }
            guard before.status == state.status || before.status.canRecover(to: state.status) else {
                throw StoreError(
                    .notAllowed, "story \(storyID): \(before.status.rawValue) → \(state.status.rawValue) is not a recovery the state machine allows")
            }
            record.state = state
            try self.writeStory(db, &record, expectedVersion: before.version, now: now)
            try self.appendCheckpoint(
                db, sessionID: before.sessionID, storyID: storyID,
                CheckpointDraft(
                    type: .manual, name: "Recovered (\(strategy.rawValue)): \(storyID)", gate: state.currentGate, state: checkpoint, agentID: nil), now: now)
            // A failed session whose story is back at work is in progress again.
            try db.execute(
                cached: "UPDATE wave_sessions SET status = 'in_progress', failed_at = NULL WHERE id = ? AND status = 'failed'",
                arguments: [before.sessionID])
            var effects = SessionEffects()
            try self.refreshSession(db, sessionID: before.sessionID, now: now, into: &effects)
            if let messageID {
                try self.recordLedger(
                    db, IncomingEvent(messageID: messageID, eventType: EventType.storyRecovered.rawValue, storyID: storyID, event: .start),
                    sessionID: before.sessionID, outcome: "applied", now: now)
            }
            return RecoveryOutcome(story: record, dispatches: self.engine.tasks(for: record.state, now: now), superseded: superseded)
        }
    }

    /// Recovers every failed story of a session with one strategy.
    public func recover(session id: String, strategy: RecoveryStrategy, by: String, now: WaveTimestamp = .now()) throws -> [RecoveryOutcome] {
        guard strategy != .resumeFromGate else { throw StoreError(.invalidInput, "resume_from_gate applies to one story (give its gate)") }
        let session = try self.session(id: id)
        return try self.stories(session: session.id).filter { $0.state.status == .failed }.map {
            try self.recover(story: $0.state.storyID, session: session.id, strategy: strategy, by: by, now: now)
        }
    }

    /// The start-up scan: every working story of the sessions in progress, with its current
    /// gate's tasks (issue 6's leases decide which of them are re-dispatched).
    public func inFlightStories(now: WaveTimestamp = .now()) throws -> [InFlightStory] {
        try self.pool.read { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT \(Self.storyColumnsPrefixed) FROM wave_story_executions s JOIN wave_sessions w ON w.id = s.session_id
                    WHERE w.status = 'in_progress' AND s.status IN ('in_progress', 'review', 'blocked') ORDER BY w.created_at, s.created_at, s.rowid
                    """
            ).map(Self.story).map { InFlightStory(story: $0, tasks: self.engine.tasks(for: $0.state, now: now)) }
        }
    }

    /// Stories waiting at a manual gate (an approval would move them), oldest session first.
    public func awaitingApproval() throws -> [StoryRecord] {
        let manual = GateID.all.filter { !self.engine.configuration[$0].automatic }.map(\.description)
        return try self.pool.read { db in
            try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT \(Self.storyColumnsPrefixed) FROM wave_story_executions s JOIN wave_sessions w ON w.id = s.session_id
                    WHERE w.status = 'in_progress' AND s.status IN ('in_progress', 'review') AND s.current_gate IN (\(manual.map { "'\($0)'" }.joined(separator: ", ")))
                    ORDER BY w.created_at, s.created_at, s.rowid
                    """
            ).map(Self.story)
        }
    }

    /// An operator's approval of a story's current manual gate (`wave approve`).
    /// - Throws: ``StoreError`` when the story is not at that gate or cannot take it.
    @discardableResult
    public func approve(
        story storyID: String, session: String? = nil, gate: GateID, by: String, messageID: String, now: WaveTimestamp = .now()
    ) throws -> ApplyResult {
        let record = try self.story(storyID, session: session)
        guard record.state.currentGate == gate else {
            throw StoreError(.notAllowed, "story \(storyID) is at \(record.state.currentGate), not \(gate)")
        }
        guard !self.engine.configuration[gate].automatic else {
            throw StoreError(.notAllowed, "\(gate) is decided by the agents' evidence, not by approval")
        }
        let incoming = IncomingEvent(
            messageID: messageID, eventType: EventType.gateApproved.rawValue, source: by, sessionID: record.state.sessionID, storyID: storyID,
            event: .gateResult(GateResultInput(gate: gate, payload: ["result": "pass", "approved_by": .string(by)], senderRole: nil, approvedBy: by))
        )
        do {
            return try self.apply(incoming, now: now)
        } catch let rejection as EngineRejection {
            throw StoreError(.notAllowed, rejection.detail)
        }
    }
}

extension SQLiteStore {
    /// Checkpoint retention (off unless an operator runs it): deletes the checkpoints of stories
    /// that are complete or cancelled and whose last checkpoint is older than `cutoff`. Stories
    /// in any other state keep every checkpoint (recovery may need them). Checkpoints are deleted
    /// newest first within a story, so a parent link never points at a deleted row.
    /// - Returns: how many checkpoints were deleted.
    @discardableResult
    public func pruneCheckpoints(olderThan cutoff: WaveTimestamp) throws -> Int {
        try self.immediateWrite { db in
            let stories = try Row.fetchAll(
                cached: db,
                sql: """
                    SELECT c.session_id, c.story_id FROM wave_checkpoints c
                    JOIN wave_story_executions s ON s.session_id = c.session_id AND s.story_id = c.story_id
                    WHERE s.status IN ('complete', 'cancelled')
                    GROUP BY c.session_id, c.story_id HAVING MAX(c.created_at) < ?
                    """, arguments: [Self.format(cutoff)])
            var deleted = 0
            for story in stories {
                let ids = try String.fetchAll(
                    cached: db, sql: "SELECT id FROM wave_checkpoints WHERE session_id = ? AND story_id = ? ORDER BY seq DESC",
                    arguments: [story[0] as String, story[1] as String])
                for id in ids {
                    // Another story's checkpoint never names this one as parent, but be safe.
                    try db.execute(cached: "UPDATE wave_checkpoints SET parent_checkpoint_id = NULL WHERE parent_checkpoint_id = ?", arguments: [id])
                    try db.execute(cached: "DELETE FROM wave_checkpoints WHERE id = ?", arguments: [id])
                    deleted += 1
                }
            }
            return deleted
        }
    }
}
