import Foundation
import Testing
import WaveProtocol
import WaveRuntime

func task(_ story: String, gate: Int, role: String) throws -> TaskEntry {
    TaskEntry(
        taskID: MessageID.make(), storyID: story, sessionID: "s", role: role, action: "develop", gate: try GateID(gate),
        deadline: WaveTimestamp.now().adding(.seconds(60)), messageID: MessageID.make(), project: "p")
}

func result(for task: TaskEntry, from source: String, correlated: Bool = true, type: EventType = .gatePassed) -> Envelope {
    Envelope(
        eventType: type, payload: ["gate_id": .string(task.gate.description), "result": "pass"], source: source, project: "p",
        storyID: task.storyID, correlationID: correlated ? task.messageID : nil)
}

@Suite("ResultWaiter: waits resumed by results, with deadlines")
struct ResultWaiterTests {
    @Test("a wait is resumed by the result that names its task, even one that arrived before the wait began")
    func byCorrelation() async throws {
        let waiter = ResultWaiter()
        let first = try task("S-1", gate: 1, role: "be")
        let second = try task("S-2", gate: 1, role: "be")
        waiter.register(first)
        waiter.register(second)
        #expect(waiter.deliver(result(for: second, from: "BE-2")), "kept for its task: registered before dispatch")
        let deadline = ContinuousClock.now + .seconds(10)
        async let one = waiter.wait(for: first, until: deadline)
        try await Task.sleep(for: .milliseconds(20))
        #expect(waiter.deliver(result(for: first, from: "BE-1")))
        let outcome1 = await one
        guard case .result(let answered) = outcome1 else {
            Issue.record("the first wait was not resumed by its result")
            return
        }
        #expect(answered.correlationID == first.messageID)
        let outcome = await waiter.wait(for: second, until: deadline)
        guard case .result(let envelope) = outcome else {
            Issue.record("no result for the second task")
            return
        }
        #expect(envelope.correlationID == second.messageID)
    }

    @Test("without a correlation id, the story, gate and sender's role pick the task")
    func byStoryAndGate() async throws {
        let waiter = ResultWaiter()
        let fe = try task("S-1", gate: 2, role: "fe")
        let be = try task("S-1", gate: 2, role: "be")
        waiter.register(fe)
        waiter.register(be)
        #expect(waiter.deliver(result(for: be, from: "BE-1", correlated: false)))
        guard case .result(let envelope) = await waiter.wait(for: be, until: .now + .seconds(5)) else {
            Issue.record("BE's result went elsewhere")
            return
        }
        #expect(envelope.source == "BE-1")
        #expect(!waiter.deliver(Envelope(eventType: .agentReady, source: "FE-1", project: "p")), "not a result")
    }

    @Test("at the deadline a wait times out; a result after it is late, recorded and ignored")
    func deadline() async throws {
        let waiter = ResultWaiter()
        let qa = try task("S-3", gate: 4, role: "qa")
        let start = ContinuousClock.now
        #expect(await waiter.wait(for: qa, until: start + .milliseconds(100)) == .timedOut)
        #expect(ContinuousClock.now - start >= .milliseconds(100))
        #expect(!waiter.deliver(result(for: qa, from: "QA-1")))
        #expect(waiter.lateResults == 1)
    }

    @Test("waitAll waits for all at once under one shared deadline: a result ends its wait, the deadline the others")
    func waitAll() async throws {
        let waiter = ResultWaiter()
        let fe = try task("S-4", gate: 1, role: "fe")
        let be = try task("S-4", gate: 1, role: "be")
        // Registered before they are "dispatched", as the orchestrator would.
        waiter.register(fe)
        waiter.register(be)
        let start = ContinuousClock.now
        let deadline = Duration.seconds(2)
        let waiting = Task { await waiter.waitAll([fe, be], until: start + deadline) }
        #expect(waiter.deliver(result(for: fe, from: "FE-1")))
        let outcomes = await waiting.value
        let elapsed = ContinuousClock.now - start
        if case .result = outcomes[fe.messageID] {} else { Issue.record("FE's result was not seen") }
        #expect(outcomes[be.messageID] == .timedOut)
        // Both waits end by the same instant (an absolute deadline), whatever the machine's load.
        #expect(elapsed >= deadline)
    }
}

@Suite("ResultWaiter inside the orchestrator")
struct OrchestratorResultWaiterTests {
    @Test("a task registered before dispatch is answered by the result signal the dispatcher settles", arguments: BusKind.available)
    func fedBySettledSignals(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("W-1")])
        try await h.running {
            let plan = try #require(try await h.awaitTasks("pm", story: "W-1", count: 1).first)
            h.orchestrator.results.register(plan)
            let reply = Envelope(
                eventType: .gatePassed, payload: ["gate_id": "gate-0", "result": "pass", "dev_roles": ["be"]], source: "PM-1",
                project: h.project.key, storyID: "W-1", correlationID: plan.messageID)
            _ = try await h.bus.publish(reply, to: Channels.signals(h.project))
            let outcome = await h.orchestrator.results.wait(for: plan, until: .now + .seconds(10))
            guard case .result(let envelope) = outcome else {
                Issue.record("the plan's result did not reach the waiter")
                return
            }
            #expect(envelope.messageID == reply.messageID)
        }
    }
}
