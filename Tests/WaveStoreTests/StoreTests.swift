import Foundation
import GRDB
import Logging
import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

/// A fresh store in a temporary folder (test scaffolding).
func temporaryStore(_ name: String = #function, engine: StoryEngine = StoryEngine()) throws -> SQLiteStore {
    try SQLiteStore(location: StoreLocation(path: temporaryPath(name)), engine: engine, logger: quietLogger())
}

func temporaryPath(_ name: String) -> String {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-store-tests-\(UUID().uuidString.prefix(8))")
    return folder.appendingPathComponent("\(name.prefix(while: { $0 != "(" })).sqlite").path
}

func quietLogger() -> Logger {
    var logger = Logger(label: "store-test")
    logger.logLevel = .critical
    return logger
}

func stories(_ specs: [(String, [String])], domain: String = "backend") -> [NewStory] {
    specs.map { NewStory(id: $0.0, title: "Story \($0.0)", domain: domain, agent: "BE-1", dependencies: $0.1) }
}

/// A gate result message.
func gate(
    _ story: String, _ gate: Int, _ result: String, from role: String, id: String = UUID().uuidString, seq: UInt64? = nil, session: String? = nil,
    cost: Double? = nil
) throws -> IncomingEvent {
    IncomingEvent(
        messageID: id, eventType: result == "fail" ? "gate.failed" : "gate.passed", source: "\(role.uppercased())-1", seq: seq, sessionID: session,
        storyID: story,
        event: .gateResult(GateResultInput(gate: try GateID(gate), payload: ["result": .string(result)], senderRole: role, agentID: "\(role.uppercased())-1")),
        costUSD: cost
    )
}

/// Results gathered from several threads.
final class Outcomes: @unchecked Sendable {
    private let lock = NSLock()
    private var results: [Result<[String], any Error>] = []
    func append(_ result: Result<[String], any Error>) { self.lock.withLock { self.results.append(result) } }
    var all: [Result<[String], any Error>] { self.lock.withLock { self.results } }
}

@Suite("SQLite store")
struct StoreTests {
    @Test("a new store: every migration applied, WAL, synchronous NORMAL, a 5 s busy timeout, not exclusive")
    func fresh() throws {
        let store = try temporaryStore()
        #expect(try store.appliedMigrations() == Schema.migrations.map(\.id))
        let (journal, synchronous, busy, locking) = try store.pool.read { db in
            (
                try String.fetchOne(db, sql: "PRAGMA journal_mode"), try Int.fetchOne(db, sql: "PRAGMA synchronous"),
                try Int.fetchOne(db, sql: "PRAGMA busy_timeout"), try String.fetchOne(db, sql: "PRAGMA locking_mode")
            )
        }
        #expect(journal == "wal")
        #expect(synchronous == 1)  // NORMAL
        #expect((busy ?? 0) >= 5000)
        #expect(locking == "normal")
        #expect(try SQLiteStore.pendingMigrations(at: store.location).isEmpty)
        let other = try SQLiteStore(location: store.location, logger: quietLogger())  // a second process's view
        #expect(try other.sessions().isEmpty)
    }

    @Test("several openers migrating one new store at the same moment all succeed, and every migration is applied once", arguments: 0..<6)
    func concurrentMigration(round: Int) async throws {
        let path = temporaryPath("concurrent-\(round)")
        // On threads of their own, as processes would be: an opener waiting on the other's lock
        // must not hold a thread of the test run's shared pool.
        let opened = Outcomes()
        await withCheckedContinuation { (done: CheckedContinuation<Void, Never>) in
            let group = DispatchGroup()
            for _ in 0..<3 {
                DispatchQueue.global().async(group: group) {
                    let result = Result { try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger()).appliedMigrations() }
                    opened.append(result)
                }
            }
            group.notify(queue: .global()) { done.resume() }
        }
        let results = opened.all
        #expect(results.count == 3)
        for result in results { #expect(try result.get() == Schema.migrations.map(\.id)) }
    }

    @Test("session create: pending, budget as given (0 stays 0); duplicate ids, unknown dependencies and cycles are named")
    func createSession() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", []), ("S-2", ["S-1"])]), budgetUSD: 0)
        #expect(session.status == .pending)
        #expect(session.budgetUSD == 0)
        #expect(session.storyCount == 2)
        #expect(session.id.count == 32 && session.displayID.count == 36)
        #expect(try store.session(id: session.displayID).id == session.id)
        #expect(try store.stories(session: session.id).map(\.state.dependencies) == [[], ["S-1"]])
        let unknown = #expect(throws: StoreError.self) { try store.createSession(project: "shop", wave: 2, stories: stories([("S-1", ["S-9"])])) }
        #expect(unknown?.message == "story S-1 depends on S-9, which is not in the session")
        let cycle = #expect(throws: StoreError.self) {
            try store.createSession(project: "shop", wave: 2, stories: stories([("A", ["C"]), ("B", ["A"]), ("C", ["B"])]))
        }
        #expect(cycle?.message == "dependency cycle: A → C → B → A")
        #expect(throws: StoreError.self) { try store.createSession(project: "shop", wave: 2, stories: stories([("A", []), ("A", [])])) }
        #expect(throws: StoreError.self) { try store.createSession(project: "bad project!", wave: 2, stories: []) }
        #expect(try store.sessions().count == 1, "a refused session leaves nothing behind")
    }

    @Test("a story runs to complete through the store: one transaction per message, one gate checkpoint per result, counters derived")
    func runToComplete() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", []), ("S-2", ["S-1"])]))
        #expect(try store.startNextSession(project: "shop")?.status == .inProgress)
        let started = try store.startReadyStories(session: session.id)
        #expect(started.map(\.0.state.storyID) == ["S-1"], "S-2 waits for its dependency")
        #expect(started.first?.1.dispatches.map(\.action) == ["plan"])
        try store.apply(try gate("S-1", 0, "pass", from: "cto", cost: 0.05))
        for g in 1...3 { try store.apply(try gate("S-1", g, "pass", from: "be")) }
        for (g, role) in [(4, "qa"), (5, "pm"), (6, "cto"), (7, "cto")] { try store.apply(try gate("S-1", g, "pass", from: role, cost: 0.01)) }
        let s1 = try store.story("S-1")
        #expect(s1.state.status == .complete)
        #expect(s1.state.version == 9)
        let checkpoints = try store.checkpoints(session: session.id, story: "S-1")
        #expect(checkpoints.filter { $0.type == "gate" }.count == 8)
        #expect(checkpoints.map(\.seq) == checkpoints.map(\.seq).sorted())
        #expect(zip(checkpoints.dropFirst(), checkpoints).allSatisfy { $0.parentID == $1.id }, "each checkpoint links to the story's previous one")
        var refreshed = try store.session(id: session.id)
        #expect(refreshed.storiesCompleted == 1)
        #expect(abs(refreshed.actualCostUSD - 0.09) < 0.0001)
        #expect(try store.startReadyStories(session: session.id).map(\.0.state.storyID) == ["S-2"])
        for (g, role) in [(0, "cto"), (1, "be"), (2, "be"), (3, "be"), (4, "qa"), (5, "pm"), (6, "cto"), (7, "cto")] {
            try store.apply(try gate("S-2", g, "pass", from: role))
        }
        refreshed = try store.session(id: session.id)
        #expect(refreshed.status == .completed)
        #expect(refreshed.storiesCompleted == 2)
    }

    @Test("a project spelled in mixed case: every query by project finds its sessions and stories, whatever spelling asks")
    func mixedCaseProject() throws {
        let store = try temporaryStore()
        // Written as an operator typed it; asked for by the lower-cased key the streams use, by
        // the operator's spelling, and padded (WIRE.md: names compare trimmed, case-insensitively).
        let session = try store.createSession(project: "FaultProj", wave: 1, stories: stories([("S-1", []), ("S-2", [])]))
        let second = try store.createSession(project: " faultPROJ", wave: 2, stories: stories([("S-9", [])]))
        #expect(try store.liveProjects() == ["faultproj"], "one project, under its key")
        #expect(try store.sessions(project: "faultproj").map(\.id) == [second.id, session.id])
        #expect(try store.sessions(project: "FAULTPROJ ").count == 2)
        #expect(try store.oldestLiveSessionCreatedAt(project: "faultproj") == session.createdAt)
        let started = try store.startNextSession(project: "faultproj")
        #expect(started?.id == session.id, "the oldest pending session of the project starts")
        #expect(try store.startNextSession(project: "FaultProj")?.id == session.id, "one in progress: it is returned, no second starts")
        #expect(try store.sessionsInProgress(project: "faultproj").map(\.id) == [session.id])
        #expect(try store.startReadyStories(session: session.id).count == 2)
        let applied = try store.apply(
            IncomingEvent(
                messageID: UUID().uuidString, eventType: "gate.passed", source: "CTO-1", storyID: "S-1",
                event: .gateResult(GateResultInput(gate: try GateID(0), payload: ["result": .string("pass")], senderRole: "cto", agentID: "CTO-1")),
                project: "faultproj"))
        guard case .applied(let record, _, _) = applied else {
            Issue.record("a signal naming the project by its key applies to the mixed-case session's story: \(applied)")
            return
        }
        #expect(record.state.currentGate == (try GateID(1)))
        #expect(try store.story("S-2", session: nil).state.sessionID == session.id)
        #expect(try store.processedMessages(project: "faultproj").values.reduce(0, +) == 1)
        _ = try store.recordStop(scope: .project(try ProjectName("FaultProj")), reason: "test", by: "ops")
        let stopped = try store.checkpoints(session: session.id, story: nil).filter { $0.type == "manual" }
        #expect(stopped.count == 2, "the stop checkpoints both stories at work in the mixed-case project")
    }

    @Test("the same message twice changes nothing the second time; an old seq from a source has no effect")
    func idempotency() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", [])]))
        _ = try store.startNextSession(project: "shop")
        _ = try store.startReadyStories(session: session.id)
        let message = try gate("S-1", 0, "fail", from: "cto", id: "m-1")
        guard case .applied = try store.apply(message) else {
            Issue.record("first application")
            return
        }
        let after = try store.story("S-1")
        let count = try store.checkpoints(session: session.id).count
        #expect(try store.apply(message) == .duplicate(outcome: "applied"))
        #expect(try store.story("S-1") == after)
        #expect(try store.checkpoints(session: session.id).count == count)
        #expect(after.state.gateFailures[0] == 1)
        try store.apply(try gate("S-1", 0, "fail", from: "cto", seq: 5))
        #expect(try store.apply(try gate("S-1", 0, "pass", from: "cto", seq: 5)) == .staleSequence(last: 5))
        #expect(try store.apply(try gate("S-1", 0, "pass", from: "cto", seq: 4)) == .staleSequence(last: 5))
        #expect(try store.story("S-1").state.currentGate.number == 0)
        try store.apply(try gate("S-1", 0, "pass", from: "cto", seq: 6))
        #expect(try store.story("S-1").state.currentGate.number == 1)
    }

    @Test("optimistic concurrency: a write based on a stale version is refused")
    func versionConflict() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", [])]))
        _ = try store.startNextSession(project: "shop")
        _ = try store.startReadyStories(session: session.id)
        var stale = try store.story("S-1")
        try store.apply(try gate("S-1", 0, "pass", from: "cto"))  // another writer moves it on
        stale.state.status = .cancelled
        let error = #expect(throws: StoreError.self) {
            try store.immediateWrite { db in try store.writeStory(db, &stale, expectedVersion: stale.state.version, now: .now()) }
        }
        #expect(error?.code == .conflict)
        #expect(try store.story("S-1").state.status == .inProgress)
    }

    @Test("a failed story cancels its dependents; the session fails when every story is finished")
    func failureCascades() throws {
        let engine = StoryEngine(
            configuration: {
                var c = EngineConfiguration.standard
                c.gates[0].maxRetries = 0
                return c
            }())
        let store = try temporaryStore(engine: engine)
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("A", []), ("B", ["A"]), ("C", ["B"])]))
        _ = try store.startNextSession(project: "shop")
        _ = try store.startReadyStories(session: session.id)
        guard case .applied(let record, _, let effects) = try store.apply(try gate("A", 0, "fail", from: "cto")) else {
            Issue.record("not applied")
            return
        }
        #expect(record.state.status == .failed)
        #expect(effects.cancelledDependents == ["B", "C"])
        #expect(effects.statusChange == .failed)
        #expect(try store.stories(session: session.id).map(\.state.status) == [.failed, .cancelled, .cancelled])
        #expect(try store.escalations().map(\.kind) == ["retries_exhausted"])
    }

    @Test("budget: a warning at 80 %, a pause above 100 %")
    func budget() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", [])]), budgetUSD: 1.00)
        _ = try store.startNextSession(project: "shop")
        _ = try store.startReadyStories(session: session.id)
        guard case .ignored(_, _, _) = try store.apply(try gate("S-1", 0, "pass", from: "qa", cost: 0.5)) else {
            Issue.record("expected no effect")
            return
        }
        guard case .applied(_, _, let warn) = try store.apply(try gate("S-1", 0, "fail", from: "cto", cost: 0.35)) else {
            Issue.record("not applied")
            return
        }
        #expect(warn.budgetWarning && !warn.pausedForBudget)
        guard case .applied(_, _, let over) = try store.apply(try gate("S-1", 0, "pass", from: "cto", cost: 0.2)) else {
            Issue.record("not applied")
            return
        }
        #expect(over.pausedForBudget && !over.budgetWarning)
        let paused = try store.session(id: session.id)
        #expect(paused.isPaused)
        #expect(paused.status == .inProgress, "pause keeps in_progress, so the reference's CHECK still holds")
        #expect(try store.startReadyStories(session: session.id).isEmpty)
    }

    @Test("pause, resume and cancel a session; acknowledge an escalation")
    func sessionOperations() throws {
        let store = try temporaryStore()
        let session = try store.createSession(project: "shop", wave: 1, stories: stories([("S-1", []), ("S-2", [])]))
        _ = try store.startNextSession(project: "shop")
        #expect(try store.pauseSession(session.displayID).isPaused)
        #expect(try store.startReadyStories(session: session.id).isEmpty)
        #expect(try !store.resumeSession(session.id).isPaused)
        #expect(try store.startReadyStories(session: session.id).count == 2)
        try store.apply(IncomingEvent(messageID: "b1", eventType: "story.blocked", storyID: "S-1", event: .blocked(reason: "waiting")))
        let escalation = try #require(try store.escalations().first)
        try store.acknowledgeEscalation(escalation.id, by: "alice")
        #expect(try store.escalations().isEmpty)
        #expect(throws: StoreError.self) { try store.acknowledgeEscalation(escalation.id, by: "alice") }
        let cancelled = try store.cancelSession(session.id, reason: "descoped")
        #expect(cancelled.status == .cancelled)
        #expect(try store.stories(session: session.id).allSatisfy { $0.state.status == .cancelled })
    }
}
