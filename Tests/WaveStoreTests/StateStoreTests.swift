import Foundation
import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

@Suite("StateStore over SQLite: the asynchronous contract, on the store's executor and off it")
struct StateStoreTests {
    @Test(
        "a story driven through the protocol ends as one driven through the synchronous store; the clock is the injected one",
        arguments: [false, true])
    func sameAsSynchronous(onStoreExecutor: Bool) async throws {
        let fixed = WaveTimestamp(microsecondsSinceEpoch: 1_780_000_000_000_000)
        let store = SQLiteStateStore(try temporaryStore(), clock: { fixed })
        try await withTaskExecutorPreference(onStoreExecutor ? store.executor : nil) {
            #expect(store.storeExecutor.isCurrent == onStoreExecutor)
            try await drive(store, fixed: fixed)
        }
    }

    func drive(_ store: SQLiteStateStore, fixed: WaveTimestamp) async throws {
        let session = try await store.createSession(project: "Shop", wave: 1, stories: stories([("S-1", [])]), budgetUSD: 10)
        #expect(session.createdAt == fixed, "written with the store's clock")
        #expect(try await store.startNextSession(project: "shop")?.id == session.id)
        #expect(try await store.startReadyStories(session: session.id).map(\.0.state.storyID) == ["S-1"])
        let messages = try [gate("S-1", 0, "pass", from: "cto")] + (1...3).map { try gate("S-1", $0, "pass", from: "be") }
        let results = try await store.apply(batch: messages, stopAtSessionChange: false)
        #expect(results.count == 4)
        #expect(try results.allSatisfy { if case .applied = try $0.get() { true } else { false } })
        let again = try await store.apply(messages[0])
        guard case .duplicate = again else {
            Issue.record("a second application is a ledger duplicate: \(again)")
            return
        }
        let story = try await store.story("S-1")
        #expect(story.state.currentGate == (try GateID(4)))
        let checkpoints = try await store.checkpoints(session: session.id, story: "S-1")
        #expect(checkpoints.filter { $0.type == "gate" }.count == 4)
        #expect(checkpoints.allSatisfy { $0.createdAt == fixed }, "every checkpoint written with the store's clock: \(checkpoints.map(\.createdAt))")
        #expect(try await store.processedMessages(session: session.id)["applied"] == 4)
        #expect(try await store.liveProjects() == ["shop"])
    }

    @Test("calls from many tasks at once, on the store's executor and off it: every write lands once")
    func concurrentCalls() async throws {
        let store = SQLiteStateStore(try temporaryStore())
        try await withThrowingTaskGroup(of: Void.self) { group in
            for index in 0..<50 {
                group.addTask(executorPreference: index.isMultiple(of: 2) ? store.executor : nil) { try await store.bump("concurrent", by: 2) }
            }
            try await group.waitForAll()
        }
        #expect(try await store.counters(prefix: "concurrent")["concurrent"] == 100)
    }

    @Test("a result whose task was taken back (its timeout applied, or a stop withdrew it) is not applied: facts in the ledger, not a callback")
    func withdrawnTasksAreFacts() async throws {
        let store = SQLiteStateStore(try temporaryStore())
        let session = try await store.createSession(project: "Shop", wave: 1, stories: stories([("W-1", []), ("W-2", [])]), budgetUSD: 10)
        _ = try await store.startNextSession(project: "shop")
        _ = try await store.startReadyStories(session: session.id)
        func answer(_ story: String, task: String) throws -> IncomingEvent {
            var result = try gate(story, 0, "pass", from: "pm")
            result.correlationID = task
            return result
        }
        // W-1's task timed out: its timeout is in the ledger.
        let timeout = IncomingEvent(
            messageID: "timeout-task-1", eventType: "task.timeout", source: "orchestrator", sessionID: session.id, storyID: "W-1",
            event: .timeout(role: "pm"), project: "shop")
        _ = try await store.apply(timeout)
        // W-2's task was withdrawn by a stop.
        let task = TaskEntry(
            taskID: "t2", storyID: "W-2", sessionID: session.id, role: "pm", action: "plan", gate: try GateID(0), deadline: store.now(),
            messageID: "task-2", project: "shop")
        try await store.recordWithdrawals([task], reason: "stop")
        let late = try await store.apply(batch: [try answer("W-1", task: "task-1"), try answer("W-2", task: "task-2")], stopAtSessionChange: false)
        for result in late {
            guard case .failure(let error as StoreError) = result, error.code == .withdrawn else {
                Issue.record("a late result is refused as withdrawn: \(result)")
                continue
            }
        }
        #expect(try await store.story("W-2").state.currentGate.number == 0, "nothing changed")
        #expect(try await store.checkpoints(session: session.id, story: "W-2").filter { $0.type == "gate" }.isEmpty)
        // A result of a task that was not taken back applies; the marks count in no session's ledger.
        guard case .applied = try await store.apply(try answer("W-2", task: "task-3")) else {
            Issue.record("a current task's result applies")
            return
        }
        #expect(try await store.processedMessages(session: session.id)["withdrawn:stop"] == nil)
    }
}
