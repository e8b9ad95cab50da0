import Foundation
import Synchronization
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

func backend(_ id: String, dependencies: [String] = []) -> NewStory {
    NewStory(id: id, title: "Story \(id)", domain: "backend", agent: "BE-1", priority: "P1", dependencies: dependencies)
}

func fullstack(_ id: String) -> NewStory {
    NewStory(id: id, title: "Story \(id)", domain: "fullstack", agent: "fullstack")
}

@Suite("Orchestrator: signals change durable state (in-memory bus and Redis)")
struct OrchestratorTests {
    @Test("AC-01: on start it joins the shared signals group and its own groups on the system streams", arguments: BusKind.available)
    func joinsGroups(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        try await h.orchestrator.prepare()
        let own = Channels.orchestratorGroup(consumer: h.orchestrator.configuration.consumer)
        #expect(try await h.bus.groups(of: Channels.signals(h.project)).map(\.group).contains("orchestrator"))
        #expect(try await h.bus.groups(of: Channels.system(h.project)).map(\.group).contains(own))
        #expect(try await h.bus.groups(of: Channels.systemGlobal).map(\.group).contains(own))
        #expect(try await h.bus.groups(of: Channels.tasks(h.project, "be")).map(\.group).contains("agents:be"))
    }

    @Test("a full gate cycle 0→7 through signals; FE and BE are both required at gates 1–3", arguments: BusKind.available)
    func fullCycle(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        let session = try h.session([fullstack("S-1")])
        try await h.running {
            // Start-up dispatched the PM's plan.
            #expect(try await h.tasks("pm").map(\.action) == ["plan"])
            try await h.passGateZero("S-1", devRoles: ["fe", "be"])
            #expect(try h.story("S-1").state.currentGate.number == 1)
            // Both dev roles got a gate-1 task.
            #expect(try await h.tasks("fe").map(\.gate.number) == [1])
            #expect(try await h.tasks("be").map(\.gate.number) == [1])
            for gate in 1...3 {
                let evidence: [String: JSONValue] = gate == 2 ? ["build_success": true] : gate == 3 ? ["tests_passing": true, "coverage": 90] : [:]
                try await h.gate(gate, story: "S-1", from: "BE-1", extra: evidence)
                #expect(try h.story("S-1").state.currentGate.number == gate, "BE alone does not pass gate-\(gate)")
                try await h.gate(gate, story: "S-1", from: "FE-1", extra: evidence)
                #expect(try h.story("S-1").state.currentGate.number == gate + 1)
            }
            for (gate, sender) in [(4, "QA-1"), (5, "PM-1"), (6, "CTO-1"), (7, "CTO-1")] {
                try await h.gate(gate, story: "S-1", from: sender)
            }
        }
        let story = try h.story("S-1")
        #expect(story.state.status == .complete)
        // One gate checkpoint per applied gate result: the CTO's gate-0, each dev role's gates 1–3,
        // and gates 4–7 (the PM's plan is a manual checkpoint).
        #expect(
            try h.gateCheckpoints("S-1", session: session).map(\.gate) == ["gate-0"] + (1...3).flatMap { ["gate-\($0)", "gate-\($0)"] }
                + (4...7).map { "gate-\($0)" })
        #expect(try h.store.session(id: session).status == .completed)
        // Each gate's task went to its owner: QA validated gate-4, the CTO merged at gate-7.
        #expect(try await h.tasks("qa").map(\.gate.number) == [4])
        #expect(try await h.tasks("cto").map(\.gate.number) == [0, 6, 7])
    }

    @Test("AC-04: gate.passed advances the gate in the store and dispatches the next task; a duplicate changes nothing", arguments: BusKind.available)
    func gatePassedAdvancesOnce(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        let session = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            let id = MessageID.make()
            let first = try await h.signal(.gatePassed, story: "S-1", from: "BE-1", payload: ["gate_id": "gate-1", "result": "pass"], messageID: id)
            #expect(first.first?.outcomes.first?.outcome == .applied("S-1 in_progress at gate-2"))
            let second = try await h.signal(
                .gatePassed, story: "S-1", from: "BE-1", payload: ["gate_id": "gate-1", "result": "pass"], messageID: id, waitFor: 2)
            #expect(second.last?.outcomes.first?.outcome == .duplicate)
        }
        #expect(try h.story("S-1").state.currentGate.number == 2)
        #expect(try h.gateCheckpoints("S-1", session: session).map(\.gate) == ["gate-0", "gate-1"])
        #expect(try await h.tasks("be").map(\.gate.number) == [1, 2])
    }

    @Test("a stale seq from the same sender has no effect", arguments: BusKind.available)
    func staleSequence(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            let applied = try await h.signal(.gatePassed, story: "S-1", from: "BE-1", payload: ["gate_id": "gate-1", "result": "pass"], seq: 5)
            #expect(applied.first?.outcomes.first?.outcome == .applied("S-1 in_progress at gate-2"))
            let stale = try await h.signal(
                .gatePassed, story: "S-1", from: "BE-1", payload: ["gate_id": "gate-2", "result": "pass", "build_success": true], seq: 4)
            #expect(stale.first?.outcomes.first?.outcome == .ignored(.staleSequence))
        }
        #expect(try h.story("S-1").state.currentGate.number == 2)
    }

    @Test("AC-05: agent.error retries with backoff (a new attempt dispatched), then escalates at the limit", arguments: BusKind.available)
    func agentErrorRetriesThenEscalates(kind: BusKind) async throws {
        var engine = Harness.fastEngine
        engine.gates[4].maxRetries = 1
        let h = try Harness.make(kind, engine: engine)
        let session = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            try await h.gate(1, story: "S-1", from: "BE-1")
            try await h.gate(2, story: "S-1", from: "BE-1", extra: ["build_success": true])
            try await h.gate(3, story: "S-1", from: "BE-1", extra: ["tests_passing": true, "coverage": 80])
            #expect(try h.story("S-1").state.currentGate.number == 4)
            try await h.signal(.agentError, story: "S-1", from: "QA-1", payload: ["error": "runner crashed", "retry_count": 0])
            #expect(try h.story("S-1").state.retryCount == 1)
            // The retry is a scheduled dispatch: attempt 2 arrives after the backoff.
            let attempts = try await h.awaitTasks("qa", story: "S-1", count: 2)
            #expect(attempts.map(\.attempt) == [1, 2])
            try await h.signal(.agentError, story: "S-1", from: "QA-1", payload: ["error": "runner crashed again", "retry_count": 0])
        }
        let story = try h.story("S-1")
        #expect(story.state.status == .failed)
        let escalations = try h.store.escalations().filter { $0.storyID == "S-1" }
        #expect(escalations.map(\.kind) == ["retries_exhausted"])
        // Announced on the system stream with its id.
        let notices = try await h.bus.entries(of: Channels.system(h.project), count: 20).compactMap {
            try? Envelope(decoding: $0.fields, stream: "", entryID: $0.id)
        }
        let raised = notices.filter { $0.eventType == .escalationRaised }
        #expect(raised.map { $0.payload["kind"]?.stringValue } == ["retries_exhausted"])
        #expect(raised.first?.payload["escalation_id"]?.stringValue?.replacingOccurrences(of: "-", with: "") == escalations.first?.id)
        #expect(try h.store.session(id: session).status == .failed)
    }

    @Test("a non-retryable agent.error escalates at once", arguments: BusKind.available)
    func nonRetryableEscalates(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            try await h.signal(.agentError, story: "S-1", from: "BE-1", payload: ["error": "no credentials", "retryable": false])
        }
        #expect(try h.story("S-1").state.status == .blocked)
        #expect(try h.store.escalations().map(\.kind) == ["non_retryable"])
    }

    @Test("AC-05: story.blocked blocks and escalates, results are ignored; story.unblocked resumes and dispatches again", arguments: BusKind.available)
    func blockedThenUnblocked(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            try await h.signal(.storyBlocked, story: "S-1", from: "BE-1", payload: ["reason": "waiting for an API key", "blocked_by": "ops"])
            #expect(try h.story("S-1").state.status == .blocked)
            #expect(try h.store.escalations().map(\.kind) == ["blocked"])
            let ignored = try await h.gate(1, story: "S-1", from: "BE-1")
            #expect(ignored == .ignored(.engine(.storyBlocked)))
            // An unblock on the signal stream is not honoured; on the system stream it is.
            let refused = try await h.signal(
                .storyUnblocked, story: "S-1", from: "BE-1", payload: ["reason": "self-service"], stream: Channels.signals(h.project))
            #expect(refused.first?.outcomes.first?.outcome == .ignored(.notOnSystemStream(.storyUnblocked)))
            try await h.signal(.storyUnblocked, story: "S-1", from: "ops@host", payload: ["reason": "key added", "by": "ops@host"])
            #expect(try h.story("S-1").state.status == .inProgress)
        }
        // gate-1 dispatched after gate-0, and again after the unblock (the block forgot it).
        #expect(try await h.tasks("be").map(\.gate.number) == [1, 1])
    }

    @Test("session.paused: in-flight results apply, nothing new is dispatched; session.resumed dispatches", arguments: BusKind.available)
    func pauseAndResume(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        let session = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            try await h.signal(.sessionPaused, story: nil, from: "PM-1", payload: ["reason": "budget review"], session: session)
            #expect(try h.store.session(id: session).isPaused)
            try await h.gate(1, story: "S-1", from: "BE-1")
            #expect(try h.story("S-1").state.currentGate.number == 2)
            #expect(try await h.tasks("be").map(\.gate.number) == [1], "no gate-2 task while paused")
            try await h.signal(.sessionResumed, story: nil, from: "ops", payload: ["reason": "approved"], session: session)
            #expect(try !h.store.session(id: session).isPaused)
        }
        #expect(try await h.tasks("be").map(\.gate.number) == [1, 2])
    }

    @Test(
        "system.emergency_stop halts dispatch from any stream and withdraws the tasks out (agents told, late results ignored, not failures); only a clear on a system stream lifts it and they go out again",
        arguments: BusKind.available)
    func emergencyStop(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            let out = try #require(try await h.tasks("be").first)
            try await h.signal(.agentBusy, story: "S-1", from: "BE-1", payload: ["status": "busy", "task_id": .string(out.taskID)])
            try await h.signal(.systemEmergencyStop, story: nil, from: "BE-1", payload: ["reason": "rm -rf detected"], stream: Channels.signals(h.project))
            #expect(try h.store.activeStops().map(\.scope.key) == [h.project.key])
            #expect(h.orchestrator.tasks.isHalted(project: h.project.key))
            #expect(h.orchestrator.tasks.outstandingCount == 0, "the task out was withdrawn")
            let notices = try await h.bus.entries(of: Channels.agent(h.project, "BE-1"), count: 10)
            #expect(notices.contains { $0.fields.contains { $0.name == "payload" && $0.value.contains("stopped") && $0.value.contains(out.taskID) } })
            // The withdrawn task's result arrives anyway: ignored, not applied.
            let late = Envelope(
                eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: h.project.key,
                storyID: "S-1", correlationID: out.messageID)
            _ = try await h.bus.publish(late, to: Channels.signals(h.project))
            #expect(try await h.settledResults(late.messageID).first?.outcomes.first?.outcome == .ignored(.lateResult))
            let refused = try await h.signal(
                .systemEmergencyCleared, story: nil, from: "BE-1", payload: ["reason": "all good"], stream: Channels.signals(h.project))
            #expect(refused.first?.outcomes.first?.outcome == .ignored(.notOnSystemStream(.systemEmergencyCleared)))
            #expect(h.orchestrator.tasks.isHalted(project: h.project.key))
            try await h.signal(
                .systemEmergencyCleared, story: nil, from: "ops", payload: ["reason": "checked", "by": "ops"], stream: Channels.system(h.project))
            #expect(try h.store.activeStops().isEmpty)
        }
        let tasks = try await h.tasks("be")
        #expect(tasks.map(\.gate.number) == [1, 1], "the withdrawn gate-1 task goes out again on clear")
        #expect(tasks.map(\.attempt) == [1, 1], "a withdrawn task is not a failure")
        #expect(try h.story("S-1").state.retryCount == 0)
        #expect(try h.store.stopHistory().first?.clearedBy == "ops")
    }

    @Test("a declared type without a handler is acknowledged as a no-op and counted", arguments: BusKind.available)
    func unhandledTypes(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            let results = try await h.signal(.gateStarted, story: "S-1", from: "BE-1", payload: ["gate_id": "gate-0"])
            #expect(results.first?.unhandled == true)
            #expect(results.first?.disposition == .acknowledge)
        }
        #expect(try h.store.counters(prefix: "unhandled.") == ["unhandled.gate.started": 1])
        #expect(try await h.bus.pendingEntries(stream: Channels.signals(h.project), group: "orchestrator", count: 10).isEmpty)
    }

    @Test("several handlers per type run in order, then the global ones", arguments: BusKind.available)
    func handlersInOrder(kind: BusKind) async throws {
        let calls = Locked<[String]>([])
        let h = try Harness.make(
            kind,
            register: { registry in
                registry.register(Recorder(name: "first", calls: calls), for: .agentHandoff)
                registry.register(Recorder(name: "second", calls: calls), for: .agentHandoff)
                registry.registerGlobal(Recorder(name: "global", calls: calls))
            })
        try await h.running {
            let results = try await h.signal(.agentHandoff, story: "S-1", from: "BE-1", payload: ["handoff_to": "QA-1"])
            #expect(results.first?.outcomes.map(\.handler) == ["first", "second", "global"])
            #expect(results.first?.unhandled == false)
        }
        #expect(calls.withLock { $0 } == ["first", "second", "global"])
    }

    @Test("a handler error leaves the entry pending: it is delivered again, then dead-lettered", arguments: BusKind.available)
    func handlerErrorRedeliveredThenDeadLettered(kind: BusKind) async throws {
        let calls = Locked<[String]>([])
        let h = try Harness.make(
            kind,
            configure: {
                $0.reclaimAfter = .milliseconds(300)
                $0.maxDeliveries = 2
            }, register: { $0.register(Failing(calls: calls), for: .agentHandoff) })
        try await h.running {
            let id = MessageID.make()
            let results = try await h.signal(.agentHandoff, story: "S-1", from: "BE-1", payload: ["handoff_to": "QA-1"], messageID: id, waitFor: 2)
            #expect(results.allSatisfy { $0.disposition == .retry })
            // The third delivery dead-letters it (the bus), after the handler ran twice.
            let dlq = Channels.deadLetters(h.project)
            let letter = try await within(.seconds(10), "the dead letter") {
                while true {
                    if let entry = try await h.bus.entries(of: dlq, count: 1).first { return entry }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            #expect(letter.fields.first { $0.name == "dlq_error" }?.value.hasPrefix("max_deliveries") == true)
            #expect(letter.fields.first { $0.name == "message_id" }?.value == id)
        }
        #expect(calls.withLock { $0.count } == 2)
    }

    @Test(
        "a signal in the reference format (no seq, no schema_version, random session_id, result fail) applies to the right story", arguments: BusKind.available)
    func referenceFormat(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        try await h.running {
            try await h.passGateZero("S-1")
            let id = MessageID.make()
            let fields = [
                StreamField("event_type", "gate.passed"),
                StreamField("payload", #"{"gate_id": "gate-1", "result": "fail", "agent_id": "be-dev-1", "domain": "be", "retry_count": 0}"#),
                StreamField("source", "be-dev-1"), StreamField("project", h.project.key), StreamField("priority", "normal"),
                StreamField("message_id", id), StreamField("timestamp", "2026-01-27T17:07:26.123456"),
                StreamField("session_id", UUID().uuidString.lowercased()), StreamField("story_id", "S-1"),
            ]
            _ = try await h.bus.publish(fields: fields, to: Channels.signals(h.project))
            let results = try await h.settledResults(id)
            #expect(results.first?.outcomes.first?.outcome == .applied("S-1 in_progress at gate-1"))
        }
        let story = try h.story("S-1")
        #expect(story.state.currentGate.number == 1)
        #expect(story.state.retryCount == 1, "gate.passed with result fail is a failure, counted by Wave")
    }

    @Test("unknown and ambiguous stories are dead-lettered with their reason", arguments: BusKind.available)
    func unknownAndAmbiguous(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1")])
        _ = try h.session([backend("S-1")])
        try await h.running {
            let ambiguous = try await h.gate(0, story: "S-1", from: "CTO-1")
            #expect(ambiguous.map { if case .deadLetter(.ambiguousStory) = $0 { true } else { false } } == true)
            let unknown = try await h.gate(0, story: "S-404", from: "CTO-1")
            #expect(unknown.map { if case .deadLetter(.unknownStory) = $0 { true } else { false } } == true)
        }
        let letters = try await h.bus.entries(of: Channels.deadLetters(h.project), count: 10)
        let reasons = letters.compactMap { $0.fields.first { $0.name == "dlq_error" }?.value.prefix(while: { $0 != ":" }) }
        #expect(reasons.sorted() == ["ambiguous_story", "unknown_story"])
    }

    @Test("dependents start when their dependency completes", arguments: BusKind.available)
    func dependencies(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("S-1"), backend("S-2", dependencies: ["S-1"])])
        try await h.running {
            #expect(try h.story("S-2").state.status == .pending)
            try await h.passGateZero("S-1")
            for gate in 1...3 {
                try await h.gate(
                    gate, story: "S-1", from: "BE-1", extra: gate == 2 ? ["build_success": true] : gate == 3 ? ["tests_passing": true, "coverage": 80] : [:])
            }
            for (gate, sender) in [(4, "QA-1"), (5, "PM-1"), (6, "CTO-1"), (7, "CTO-1")] {
                try await h.gate(gate, story: "S-1", from: sender)
            }
            #expect(try h.story("S-1").state.status == .complete)
            #expect(try h.story("S-2").state.status == .inProgress)
        }
        #expect(try await h.tasks("pm").map(\.storyID) == ["S-1", "S-1", "S-2"])
    }

    @Test("AC-02: a published signal reaches its handler within 100 ms (a sanity bound; the benchmark measures)", arguments: BusKind.available)
    func reachesHandlerQuickly(kind: BusKind) async throws {
        let entered = Locked<[String: ContinuousClock.Instant]>([:])
        let h = try Harness.make(kind, register: { $0.registerGlobal(Stamp(entered: entered)) })
        _ = try h.session([backend("S-1")])
        try await h.running {
            // The first read of a fresh consumer is not what AC-02 is about: warm up once.
            try await h.signal(.systemHealth, story: nil, from: "BE-1", payload: ["type": "heartbeat"])
            var latencies: [Duration] = []
            for _ in 0..<21 {
                let id = MessageID.make()
                let start = ContinuousClock.now
                _ = try await h.bus.publish(
                    Envelope(eventType: .systemHealth, payload: ["type": "heartbeat"], source: "BE-1", project: h.project.key, messageID: id),
                    to: Channels.signals(h.project))
                _ = try await h.settledResults(id)
                let at = try #require(entered.withLock { $0[id] })
                latencies.append(at - start)
            }
            latencies.sort()
            // Other suites run in parallel on two cores: the median carries the bound, the worst a loose one.
            #expect(latencies[latencies.count / 2] < .milliseconds(100))
            #expect(latencies.last! < .seconds(1))
        }
        #expect(h.orchestrator.roster.agent("BE-1")?.status == "busy")
    }
}

struct Recorder: EventHandler {
    let name: String
    let calls: Locked<[String]>
    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        self.calls.withLock { $0.append(self.name) }
        return .applied(self.name)
    }
}

struct Failing: EventHandler {
    let calls: Locked<[String]>
    var name: String { "failing" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        self.calls.withLock { $0.append(signal.envelope.messageID) }
        throw HarnessError(description: "this handler always fails")
    }
}

struct Stamp: EventHandler {
    let entered: Locked<[String: ContinuousClock.Instant]>
    var name: String { "stamp" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let now = ContinuousClock.now
        self.entered.withLock { $0[signal.envelope.messageID] = now }
        return .ignored(.other("stamped"))
    }
}

/// A value behind a lock, shareable between tasks (test scaffolding).
final class Locked<Value: Sendable>: Sendable {
    let mutex: Mutex<Value>
    init(_ value: Value) { self.mutex = Mutex(value) }
    func withLock<T>(_ body: (inout Value) -> T) -> T { self.mutex.withLock { body(&$0) } }
}

@Suite("Orchestrator: maintenance", .enabled(if: BusKind.available.contains(.redis)))
struct MaintenanceTests {
    @Test("maintenance trims acknowledged history to what is kept, never what is unread, and deletes ledger entries past retention")
    func trimsAndPrunes() async throws {
        let h = try Harness.make(.redis, configure: { $0.keepAcknowledged = 5 })
        _ = try h.session([backend("M-1")])
        try await h.running {
            try await h.passGateZero("M-1")
            try await h.signal(.storyBlocked, story: "M-1", from: "BE-1", payload: ["reason": "drill"])
            // Results for a blocked story: each acknowledged and in the ledger as ignored.
            for _ in 0..<20 { try await h.gate(1, story: "M-1", from: "BE-1") }
            let stream = Channels.signals(h.project)
            #expect(try await h.bus.length(of: stream) == 23)
            let first = await h.orchestrator.maintain()
            #expect(first.trimmed >= 18 && first.pruned == 0, "\(first)")
            #expect(try await h.bus.length(of: stream) == 5, "the newest acknowledged entries are kept")
            // An entry no group has read yet is never trimmed.
            let unread = "wave:test:maintenance:\(UUID().uuidString.prefix(8))"
            for _ in 0..<3 { _ = try await h.bus.publish(Envelope(eventType: .gatePassed, source: "BE-1", project: h.project.key), to: unread) }
            try await h.bus.createGroup("late", on: unread, start: .beginning)
            let redis = try #require(h.bus as? RedisEventBus)
            #expect(try await redis.trimAcknowledged(stream: unread, keep: 1) == 0)
            #expect(try await h.bus.length(of: unread) == 3)
            _ = try await redis.client.send(DelCommand(keys: [unread]))
            // Eight days on, past the 7-day retention, the ledger entries go.
            let later = await h.orchestrator.maintain(now: WaveTimestamp.now().adding(.seconds(8 * 24 * 3600)))
            #expect(later.pruned >= 23, "\(later)")
            #expect(try h.store.processedMessages(project: h.project.key).values.reduce(0, +) == 0)
        }
    }
}

@Suite("Orchestrator: a read applied as a batch")
struct BatchDispatchTests {
    @Test("a read of many signals applies each as alone would, in one transaction; refusals stay per signal", arguments: BusKind.available)
    func batchOfSignals(kind: BusKind) async throws {
        let h = try Harness.make(kind, configure: { $0.batchSize = 128 })
        let session = try h.session((0..<20).map { backend("B-\($0)") })
        try await h.orchestrator.prepare()
        // Published before the dispatcher reads: it gets them in one read.
        var envelopes: [Envelope] = []
        for gate in 0...1 {
            for story in 0..<20 {
                envelopes.append(
                    Envelope(
                        eventType: .gatePassed, payload: ["gate_id": .string("gate-\(gate)"), "result": "pass"], source: gate == 0 ? "CTO-1" : "BE-1",
                        project: h.project.key, storyID: "B-\(story)"))
            }
        }
        let unknown = Envelope(
            eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: h.project.key, storyID: "NOPE")
        let premature = Envelope(
            eventType: .gatePassed, payload: ["gate_id": "gate-6", "result": "pass"], source: "CTO-1", project: h.project.key, storyID: "B-0")
        let noGate = Envelope(eventType: .agentError, payload: ["error": "disk full"], source: "BE-1", project: h.project.key, storyID: "B-1")
        envelopes += [unknown, premature, noGate]
        _ = try await h.bus.publish(batch: envelopes.map { (Channels.signals(h.project), $0) })
        let published = envelopes
        try await h.running {
            for envelope in published { _ = try await h.settledResults(envelope.messageID) }
            // B-1's first gate-2 attempt failed in the same read: its retry goes out after the backoff.
            _ = try await h.awaitTasks("be", story: "B-1", "B-1's retry") { $0.contains { $0.gate.number == 2 && $0.attempt == 2 } }
        }
        let stories = try h.store.stories(session: session)
        #expect(stories.filter { $0.state.storyID != "B-1" }.allSatisfy { $0.state.currentGate.number == 2 })
        #expect(try h.story("B-1").state.retryCount == 1, "the agent error counted at gate-2")
        let unknownResult = try await h.settledResults(unknown.messageID)
        #expect(unknownResult.first?.disposition == .deadLetter("unknown_story: no story NOPE in project \(h.project.key)"))
        let prematureResult = try await h.settledResults(premature.messageID)
        #expect(prematureResult.first?.disposition == .retry)
        let tasks = try await h.tasks("be", count: 200)
        #expect(tasks.filter { $0.gate.number == 1 }.count == 20, "a gate-1 task for every story")
        #expect(tasks.filter { $0.gate.number == 2 && $0.attempt == 1 && $0.storyID != "B-1" }.count == 19, "a gate-2 task for every other story, once")
        // B-1's retry went out once; its first attempt at most once (not at all when the retry,
        // 10 ms on, superseded it before the read's tasks were written).
        #expect(tasks.filter { $0.gate.number == 2 && $0.attempt == 1 && $0.storyID == "B-1" }.count <= 1)
        #expect(tasks.filter { $0.storyID == "B-1" && $0.gate.number == 2 && $0.attempt == 2 }.count == 1, "B-1's retry, once")
    }
}

@Suite("Orchestrator: results out of order")
struct OutOfOrderTests {
    @Test(
        "a story's gate result that comes before the one it follows waits, pending, and applies as soon as the earlier one does, not after the reclaim",
        arguments: BusKind.available)
    func laterResultWaits(kind: BusKind) async throws {
        // The reclaim would take 30 s: the test finishing in seconds shows the parked result applied.
        let h = try Harness.make(kind, configure: { $0.reclaimAfter = .seconds(30) })
        _ = try h.session([backend("O-1")])
        try await h.running {
            let early = try await h.signal(
                .gatePassed, story: "O-1", from: "BE-1", payload: ["gate_id": "gate-1", "result": "pass"], messageID: "00000000-0000-4000-8000-00000000e001")
            #expect(early.first?.disposition == .retry, "gate-1 before gate-0 waits")
            #expect(try h.story("O-1").state.currentGate.number == 0)
            let start = ContinuousClock.now
            try await h.gate(0, story: "O-1", from: "CTO-1")
            // The parked gate-1 result is handled again in the same turn: the story is at gate-2.
            _ = try await h.settledResults("00000000-0000-4000-8000-00000000e001", count: 2)
            #expect(ContinuousClock.now - start < .seconds(10))
            #expect(try h.story("O-1").state.currentGate.number == 2)
        }
        let pending = try await h.bus.groups(of: Channels.signals(h.project)).first { $0.group == Channels.orchestratorGroup }?.pending
        #expect(pending == 0, "both results acknowledged")
    }
}

@Suite("Orchestrator: task deadlines")
struct TaskDeadlineTests {
    @Test(
        "a task that runs out of time is taken back, counts one failure, goes out again; its late result is ignored; the agent is told",
        arguments: BusKind.available)
    func timeoutRetriesThenEscalates(kind: BusKind) async throws {
        var engine = Harness.fastEngine
        engine.gates[1].timeout = .milliseconds(1_500)
        engine.gates[1].maxRetries = 1
        let h = try Harness.make(kind, engine: engine)
        _ = try h.session([backend("T-1")])
        try await h.running {
            try await h.passGateZero("T-1")
            let first = try #require(try await h.awaitTasks("be", story: "T-1", count: 1).first)
            try await h.signal(.agentBusy, story: "T-1", from: "BE-1", payload: ["status": "busy", "task_id": .string(first.taskID)])
            // No result: the deadline takes the task back and a second attempt goes out.
            let attempts = try await h.awaitTasks("be", story: "T-1", count: 2)
            #expect(attempts.map(\.attempt) == [1, 2])
            #expect(try h.story("T-1").state.gateFailures[1] >= 1)
            // The first attempt's agent answers late: recorded, not applied.
            let late = Envelope(
                eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: h.project.key,
                storyID: "T-1", correlationID: first.messageID)
            _ = try await h.bus.publish(late, to: Channels.signals(h.project))
            let results = try await h.settledResults(late.messageID)
            #expect(results.first?.outcomes.first?.outcome == .ignored(.lateResult))
            #expect(try h.story("T-1").state.currentGate.number == 1)
            // The agent that held the first attempt was told it is cancelled.
            let notices = try await h.bus.entries(of: Channels.agent(h.project, "BE-1"), count: 10)
            #expect(
                notices.contains { entry in
                    entry.fields.contains { $0.name == "event_type" && $0.value == "task.cancelled" }
                        && entry.fields.contains { $0.name == "payload" && $0.value.contains(first.taskID) }
                })
            // The second attempt runs out of time too: past the limit, the story fails and escalates.
            try await eventually("the story failed") { try h.story("T-1").state.status == .failed }
        }
        #expect(try h.store.escalations().map(\.kind) == ["retries_exhausted"])
        #expect(try h.store.counter("late_results") == 1)
        #expect(h.orchestrator.tasks.timeouts == 2)
    }
}

@Suite("Handler outcomes are typed; their text is the reasons' codes, as logged and dead-lettered")
struct OutcomeTextTests {
    @Test("each reason's code and description")
    func codes() {
        #expect(NoEffect.engine(.staleGate).code == "stale_gate")
        #expect(NoEffect.staleSequence.code == "stale_seq")
        #expect(NoEffect.lateResult.code == "late_result")
        #expect(NoEffect.notOnSystemStream(.sessionResumed).code == "resume_not_on_system_stream")
        #expect(NoEffect.notOnSystemStream(.gateApproved).code == "announcement_not_on_system_stream")
        #expect(NoEffect.sessionFinished(.completed).code == "session_completed")
        #expect(NoEffect.notAllowed("paused twice").description == "not_allowed: paused twice")
        #expect(Unusable.missingStoryID(.gatePassed).description == "missing_story_id: gate.passed names no story (envelope or payload story_id)")
        #expect(Unusable.unknownStory("no story X").description == "unknown_story: no story X")
        #expect(
            HandlerOutcome.deadLetter(.invalidPayload("gate.passed has no gate_id")).description
                == "dead-lettered (invalid_payload: gate.passed has no gate_id)")
    }
}
