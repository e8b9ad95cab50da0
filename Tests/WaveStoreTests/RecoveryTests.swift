import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

/// A store with one session in progress whose story S-1 failed at gate-2 after passing 0 and 1.
func storeWithFailedStory(_ name: String = #function) throws -> (SQLiteStore, SessionRecord) {
    let engine = StoryEngine(
        configuration: {
            var c = EngineConfiguration.standard
            c.gates[2].maxRetries = 1
            return c
        }())
    let store = try temporaryStore(name, engine: engine)
    let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", []), ("S-2", [])]))
    _ = try store.startNextSession(project: "shop")
    _ = try store.startReadyStories(session: session.id)
    try store.apply(try gate("S-1", 0, "pass", from: "cto"))
    try store.apply(try gate("S-1", 1, "pass", from: "be"))
    try store.apply(try gate("S-1", 2, "fail", from: "be"))
    try store.apply(try gate("S-1", 2, "fail", from: "be"))
    #expect(try store.story("S-1").state.status == .failed)
    return (store, session)
}

@Suite("Recovery")
struct RecoveryTests {
    @Test("resume_from_last: back to work at the current gate, the error cleared and that gate's budget fresh, so the next failure does not fail it at once")
    func resumeFromLast() throws {
        let (store, session) = try storeWithFailedStory()
        let outcome = try store.recover(story: "S-1", strategy: .resumeFromLast, by: "alice")
        #expect(outcome.story.state.status == .inProgress)
        #expect(outcome.story.state.currentGate.number == 2)
        #expect(outcome.story.state.errorMessage == nil && outcome.story.state.failedAt == nil)
        #expect(outcome.story.state.retryCount == 0)
        #expect(outcome.dispatches.map(\.action) == ["develop"])
        try store.apply(try gate("S-1", 2, "fail", from: "be"))
        #expect(try store.story("S-1").state.status == .inProgress)
        let recovered = try store.checkpoints(session: session.id, story: "S-1").filter { $0.state["kind"] == "recovered" }
        #expect(recovered.count == 1)
        #expect(recovered.first?.state["previous_state"] == nil, "no nesting of earlier states")
        #expect(recovered.first?.state["strategy"] == "resume_from_last")
    }

    @Test("resume_from_gate: only a gate that was reached; later gate checkpoints superseded, never deleted")
    func resumeFromGate() throws {
        let (store, session) = try storeWithFailedStory()
        let notReached = #expect(throws: StoreError.self) { try store.recover(story: "S-1", strategy: .resumeFromGate, gate: try GateID(5), by: "alice") }
        #expect(notReached?.message == "story S-1 never reached gate-5 (furthest: gate-2)")
        #expect(throws: StoreError.self) { try store.recover(story: "S-1", strategy: .resumeFromGate, by: "alice") }
        let before = try store.checkpoints(session: session.id, story: "S-1").count
        let outcome = try store.recover(story: "S-1", strategy: .resumeFromGate, gate: try GateID(1), by: "alice")
        #expect(outcome.story.state.currentGate.number == 1)
        #expect(outcome.superseded == 3, "gate-1's pass and gate-2's two failures")
        let checkpoints = try store.checkpoints(session: session.id, story: "S-1")
        #expect(checkpoints.count == before + 1)
        #expect(checkpoints.filter(\.superseded).allSatisfy { ($0.gate ?? "") >= "gate-1" && $0.type == "gate" })
        try store.apply(try gate("S-1", 1, "pass", from: "be"))
        #expect(try store.story("S-1").state.currentGate.number == 2)
    }

    @Test("restart: pending at gate-0 with a clean slate, and it really starts again")
    func restart() throws {
        let (store, session) = try storeWithFailedStory()
        let outcome = try store.recover(story: "S-1", strategy: .restart, by: "alice")
        #expect(outcome.story.state.status == .pending)
        #expect(outcome.story.state.currentGate == .first)
        #expect(outcome.story.state.gateFailures.allSatisfy { $0 == 0 })
        #expect(outcome.story.state.startedAt == nil && outcome.story.state.errorMessage == nil)
        #expect(try store.checkpoints(session: session.id, story: "S-1").filter { !$0.superseded }.count == 1, "only the restart checkpoint is current")
        let started = try store.startReadyStories(session: session.id)
        #expect(started.map(\.0.state.storyID) == ["S-1"])
        #expect(try store.story("S-1").state.status == .inProgress)
    }

    @Test("skip cancels; complete and cancelled stories cannot be recovered")
    func skip() throws {
        let (store, _) = try storeWithFailedStory()
        #expect(try store.recover(story: "S-1", strategy: .skip, by: "alice").story.state.status == .cancelled)
        #expect(throws: StoreError.self) { try store.recover(story: "S-1", strategy: .resumeFromLast, by: "alice") }
    }

    @Test("the start-up scan lists working stories with their current gate's tasks; approvals list manual gates; approve passes one")
    func scanAndApprove() throws {
        let (store, _) = try storeWithFailedStory()
        let scan = try store.inFlightStories()
        #expect(scan.map(\.story.state.storyID) == ["S-2"])
        #expect(scan.first?.tasks.map(\.action) == ["plan"])
        #expect(try store.awaitingApproval().map(\.state.storyID) == ["S-2"])
        let wrong = #expect(throws: StoreError.self) { try store.approve(story: "S-2", gate: try GateID(4), by: "alice", messageID: "a-1") }
        #expect(wrong?.message == "story S-2 is at gate-0, not gate-4")
        guard case .applied(let record, _, _) = try store.approve(story: "S-2", gate: .first, by: "alice", messageID: "a-2") else {
            Issue.record("not applied")
            return
        }
        #expect(record.state.currentGate.number == 1)
        let automatic = #expect(throws: StoreError.self) { try store.approve(story: "S-2", gate: try GateID(1), by: "alice", messageID: "a-3") }
        #expect(automatic?.message == "gate-1 is decided by the agents' evidence, not by approval")
    }
}

@Suite("Checkpoint retention")
struct RetentionTests {
    @Test("prunes only finished stories' checkpoints older than the cutoff, with foreign keys on")
    func prune() throws {
        let (store, session) = try storeWithFailedStory()
        // S-2 runs to complete; S-1 stays failed.
        for (g, role) in [(0, "cto"), (1, "be"), (2, "be"), (3, "be"), (4, "qa"), (5, "pm"), (6, "cto"), (7, "cto")] {
            try store.apply(try gate("S-2", g, "pass", from: role))
        }
        let s1 = try store.checkpoints(session: session.id, story: "S-1").count
        #expect(try store.pruneCheckpoints(olderThan: WaveTimestamp.now().adding(.seconds(-3600))) == 0, "nothing is old enough")
        let pruned = try store.pruneCheckpoints(olderThan: WaveTimestamp.now().adding(.seconds(60)))
        #expect(pruned > 8)
        #expect(try store.checkpoints(session: session.id, story: "S-2").isEmpty)
        #expect(try store.checkpoints(session: session.id, story: "S-1").count == s1, "a failed story keeps its checkpoints")
    }
}

@Suite("Ledger retention and repeated announcements")
struct LedgerTests {
    @Test("ledger entries older than the retention window are pruned; a change announced twice is applied once")
    func retentionAndRepeats() throws {
        let store = try SQLiteStore(location: StoreLocation(path: temporaryPath("ledger")), ledgerRetention: .seconds(60), logger: quietLogger())
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", [])]))
        _ = try store.startNextSession(project: "shop", now: t(0))
        _ = try store.startReadyStories(session: session.id, now: t(0))
        let message = try gate("S-1", 0, "fail", from: "cto", id: "old-1")
        try store.apply(message, now: t(0))
        #expect(try store.apply(message, now: t(30)) == .duplicate(outcome: "applied"))
        #expect(try store.pruneLedger(now: t(30)) == 0, "inside the window")
        #expect(try store.pruneLedger(now: t(61)) == 1)
        // The CLI's announcement received again by an orchestrator changes nothing.
        let before = try store.checkpoints(session: session.id).count
        try store.pauseSession(session.id, messageID: "pause-1", now: t(70))
        try store.pauseSession(session.id, messageID: "pause-1", now: t(71))
        #expect(try store.checkpoints(session: session.id).count == before + 1)
        try store.cancelSession(session.id, reason: "x", messageID: "cancel-1", now: t(72))
        #expect(try store.cancelSession(session.id, reason: "x", messageID: "cancel-1", now: t(73)).status == .cancelled)
    }
}
