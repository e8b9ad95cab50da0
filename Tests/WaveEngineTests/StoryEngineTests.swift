import Testing
import WaveProtocol

@testable import WaveEngine

let t0 = WaveTimestamp(microsecondsSinceEpoch: 1_800_000_000_000_000)

/// Drives one story through the engine, keeping its state (test scaffolding).
struct Driver {
    var engine = StoryEngine()
    var story = StoryState(storyID: "S-1", sessionID: "s")
    var now = t0
    var effects: [StoryEffects] = []

    init(agent: String = "BE-1", configure: (inout EngineConfiguration) -> Void = { _ in }) {
        var configuration = EngineConfiguration.standard
        configure(&configuration)
        self.engine = StoryEngine(configuration: configuration)
        self.story.agent = agent
    }

    @discardableResult
    mutating func send(_ event: StoryEvent) throws -> EngineDecision {
        self.now = self.now.adding(.seconds(1))
        let decision = try self.engine.apply(event, to: self.story, now: self.now, jitter: 0.5)
        switch decision {
        case .applied(let state, let effects):
            self.story = state
            self.effects.append(effects)
        case .ignored(_, let effects):
            self.effects.append(effects)
        }
        return decision
    }

    @discardableResult
    mutating func result(_ gate: Int, _ result: String, from role: String?, _ extra: [String: JSONValue] = [:]) throws -> EngineDecision {
        var payload: [String: JSONValue] = ["gate_id": .string("gate-\(gate)"), "result": .string(result)]
        payload.merge(extra) { $1 }
        return try self.send(
            .gateResult(GateResultInput(gate: try GateID(gate), payload: payload, senderRole: role, agentID: role.map { "\($0.uppercased())-1" })))
    }

    var last: StoryEffects { self.effects.last ?? StoryEffects() }
}

func ignoredReason(_ decision: EngineDecision) -> IgnoredReason? {
    if case .ignored(let reason, _) = decision { return reason }
    return nil
}

@Suite("Story engine")
struct StoryEngineTests {
    @Test("the whole workflow: PM plan, CTO authorize, FE ∥ BE through gates 1–3, QA, PM, CTO review and merge")
    func happyPath() throws {
        var d = Driver()
        try d.send(.start)
        #expect(d.story.status == .inProgress)
        #expect(d.last.dispatches.map(\.action) == ["plan"])
        #expect(d.last.checkpoints.map(\.type) == [.storyStart])
        try d.result(0, "pass", from: "pm", ["dev_roles": ["fe", "be"]])
        #expect(d.story.devRoles == ["be", "fe"])
        #expect(d.story.currentGate == .first, "the plan is not an approval")
        #expect(d.last.dispatches.map(\.action) == ["authorize"])
        try d.result(0, "approved", from: "cto", ["approved": true])
        #expect(d.story.currentGate.number == 0, "\"approved\" is not a passing result word")
        try d.result(0, "pass", from: "cto")
        #expect(d.story.currentGate.number == 1)
        #expect(Set(d.last.dispatches.map(\.role)) == ["fe", "be"])
        // FE runs ahead through gates 1–3; the story waits for BE at gate-1.
        for gate in 1...3 { try d.result(gate, "pass", from: "fe") }
        #expect(d.story.currentGate.number == 1)
        try d.result(1, "pass", from: "be")
        #expect(d.story.currentGate.number == 2, "FE's early gate-2 result applies once the story reaches gate-2")
        try d.result(2, "pass", from: "be")
        try d.result(3, "pass", from: "be")
        #expect(d.story.currentGate.number == 4)
        #expect(d.story.status == .review)
        #expect(d.last.dispatches.map(\.role) == ["qa"])
        try d.result(4, "pass", from: "qa")
        try d.result(5, "pass", from: "pm")
        try d.result(6, "pass", from: "cto")
        try d.result(7, "pass", from: "cto")
        #expect(d.story.status == .complete)
        #expect(d.story.completedAt != nil)
        #expect(d.last.checkpoints.map(\.type) == [.gate, .storyComplete])
        // Exactly one gate checkpoint per applied gate result: 2 at gate-0 (the fail and the
        // pass; the plan is manual) + 6 dev results + 4 manual passes.
        let gateCheckpoints = d.effects.flatMap(\.checkpoints).filter { $0.type == .gate }
        #expect(gateCheckpoints.count == 2 + 6 + 4)
    }

    @Test("the pass rule: the reference's gate.passed with result fail is a failure; approved false fails")
    func passRule() throws {
        var d = Driver()
        try d.send(.start)
        try d.result(0, "fail", from: "cto")
        #expect(d.story.currentGate.number == 0)
        #expect(d.story.gateFailures[0] == 1)
        try d.result(0, "pass", from: "cto", ["approved": false])
        #expect(d.story.gateFailures[0] == 2)
        try d.result(0, "PASSED", from: "cto")
        #expect(d.story.currentGate.number == 1)
        #expect(d.story.gateFailures[0] == 0, "a gate's count resets when it passes")
        #expect(d.story.totalRetries == 2)
    }

    @Test("evidence decides gates 1–3 and overrides result pass; without evidence the result decides")
    func evidence() throws {
        var d = Driver(agent: "BE-1") { $0.gates[1].requiredChecklist = ["lint", "self-review"] }
        try d.send(.start)
        try d.result(0, "pass", from: "cto")
        try d.result(1, "pass", from: "be", ["checklist": ["lint"]])
        #expect(d.story.currentGate.number == 1)
        #expect(d.last.checkpoints.first?.state["error_message"] == "Missing items: self-review")
        try d.result(1, "fail", from: "be", ["checklist": ["lint", "self-review"]])
        #expect(d.story.currentGate.number == 2, "evidence that passes wins over result fail")
        try d.result(2, "pass", from: "be", ["build_success": false])
        #expect(d.story.currentGate.number == 2)
        #expect(d.story.gateFailures[2] == 1)
        try d.result(2, "pass", from: "be")
        #expect(d.last.checkpoints.first?.state["evidence"] == "absent")
        #expect(d.story.currentGate.number == 3)
        try d.result(3, "pass", from: "be", ["tests_passing": true, "coverage": 69.9])
        #expect(d.story.currentGate.number == 3)
        #expect(d.last.checkpoints.first?.state["error_message"] == "Coverage 69.9% < 70.0%")
        try d.result(3, "pass", from: "be", ["tests_passing": true, "coverage": 70])
        #expect(d.story.currentGate.number == 4, "the coverage threshold is inclusive")
        #expect(d.story.acceptanceCriteriaPassed == 2 && d.story.acceptanceCriteriaTotal == 2)
    }

    @Test("a manual gate passed by a role that does not own it has no effect and escalates")
    func unauthorizedApproval() throws {
        var d = Driver()
        try d.send(.start)
        let before = d.story
        let decision = try d.result(0, "pass", from: "qa")
        #expect(ignoredReason(decision) == .unauthorizedApproval)
        #expect(d.story == before)
        #expect(d.last.escalations.map(\.kind) == ["unauthorized_approval"])
        #expect(ignoredReason(try d.result(0, "fail", from: "fe")) == .notOwner)
        // An operator's approval passes it whoever owns it, and is recorded.
        try d.send(.gateResult(GateResultInput(gate: .first, payload: [:], senderRole: nil, approvedBy: "alice@host")))
        #expect(d.story.currentGate.number == 1)
        #expect(d.last.checkpoints.first?.state["approved_by"] == "alice@host")
    }

    @Test("max_retries 3: failures 1–3 schedule a retry after a stored backoff; the 4th fails the story, with an error checkpoint and an escalation")
    func retryLimit() throws {
        var d = Driver()
        try d.send(.start)
        try d.result(0, "pass", from: "cto")
        for n in 1...3 {
            try d.send(.agentError(message: "boom \(n)", retryable: true, role: "be"))
            #expect(d.story.status == .inProgress)
            #expect(d.story.retryCount == n)
            let expected = d.engine.configuration.backoff(failures: n, unit: 0.5)
            #expect(d.story.nextAttemptAt == d.now.adding(expected))
            #expect(d.last.dispatches.first?.notBefore == d.story.nextAttemptAt)
        }
        #expect(d.engine.configuration.backoff(failures: 1, unit: 0.5) == .milliseconds(750))
        #expect(d.engine.configuration.backoff(failures: 3, unit: 0.5) == .seconds(3))
        try d.send(.agentError(message: "boom 4", retryable: true, role: "be"))
        #expect(d.story.status == .failed)
        #expect(d.story.failedAt != nil)
        #expect(d.last.checkpoints.map(\.type).contains(.error))
        #expect(d.last.escalations.map(\.kind) == ["retries_exhausted"])
        #expect(ignoredReason(try d.result(1, "pass", from: "be")) == .storyFinished)
    }

    @Test("max_retries is configurable and honoured per gate")
    func configurableRetries() throws {
        var d = Driver { $0.gates[0].maxRetries = 1 }
        try d.send(.start)
        try d.result(0, "fail", from: "cto")
        #expect(d.story.status == .inProgress)
        try d.result(0, "fail", from: "cto")
        #expect(d.story.status == .failed)
    }

    @Test("a QA failure sends the story back to gate-1 with the feedback; gate-4's count survives the loop")
    func qaLoop() throws {
        var d = Driver()
        try d.send(.start)
        try d.result(0, "pass", from: "cto")
        for gate in 1...3 { try d.result(gate, "pass", from: "be") }
        try d.result(4, "fail", from: "qa", ["feedback": "the form loses input"])
        #expect(d.story.currentGate.number == 1)
        #expect(d.story.status == .inProgress)
        #expect(d.last.dispatches.map(\.feedback) == ["the form loses input"])
        for gate in 1...3 { try d.result(gate, "pass", from: "be") }
        #expect(d.story.gateFailures[4] == 1)
        try d.result(4, "fail", from: "qa")
        #expect(d.story.gateFailures[4] == 2)
        for gate in 1...3 { try d.result(gate, "pass", from: "be") }
        try d.result(4, "pass", from: "qa")
        #expect(d.story.gateFailures[4] == 0)
        #expect(d.story.currentGate.number == 5)
    }

    @Test("blocked stops work and escalates; results wait; unblocking returns to the status the gate implies")
    func blockAndUnblock() throws {
        var d = Driver()
        try d.send(.start)
        try d.result(0, "pass", from: "cto")
        for gate in 1...3 { try d.result(gate, "pass", from: "be") }
        try d.send(.blocked(reason: "needs an API key"))
        #expect(d.story.status == .blocked)
        #expect(d.story.blockedReason == "needs an API key")
        #expect(d.last.escalations.map(\.kind) == ["blocked"])
        #expect(ignoredReason(try d.result(4, "pass", from: "qa")) == .storyBlocked)
        #expect(ignoredReason(try d.send(.blocked(reason: "again"))) == .noChange)
        try d.send(.unblocked(reason: nil))
        #expect(d.story.status == .review)
        #expect(d.story.blockedReason == nil)
        #expect(d.last.dispatches.map(\.role) == ["qa"])
    }

    @Test("a non-retryable agent error escalates at once and blocks the story")
    func nonRetryable() throws {
        var d = Driver()
        try d.send(.start)
        try d.send(.agentError(message: "credentials revoked", retryable: false, role: "pm"))
        #expect(d.story.status == .blocked)
        #expect(d.story.totalRetries == 0)
        #expect(d.last.escalations.map(\.kind) == ["non_retryable"])
    }

    @Test("stale results are ignored; premature ones are refused (redelivered, then dead-lettered)")
    func staleAndPremature() throws {
        var d = Driver()
        try d.send(.start)
        #expect(throws: EngineRejection.self) { try d.result(5, "pass", from: "pm") }
        try d.result(0, "pass", from: "cto")
        #expect(ignoredReason(try d.result(0, "pass", from: "cto")) == .staleGate)
        try d.result(1, "pass", from: "be")
        #expect(ignoredReason(try d.result(1, "pass", from: "be")) == .staleGate)
        #expect(throws: EngineRejection.self) { try d.result(3, "pass", from: "be") }  // skips gate-2
    }

    @Test("cancel: any unfinished story; terminal stories stay as they are")
    func cancel() throws {
        var d = Driver()
        try d.send(.cancel(reason: "dependency S-0 failed"))
        #expect(d.story.status == .cancelled)
        #expect(ignoredReason(try d.send(.start)) == .storyFinished)
        #expect(ignoredReason(try d.send(.cancel(reason: "again"))) == .storyFinished)
    }

    @Test(
        "random sequences of gate results, operator approvals, errors, timeouts and blocks never reach an illegal state, and replaying one gives the same story",
        arguments: 0..<40)
    func randomSequences(seed: Int) throws {
        var generator = SplitMix(seed: UInt64(seed))
        let roles: [String?] = ["fe", "be", "qa", "pm", "cto", nil]
        var events: [StoryEvent] = [.start]
        for _ in 0..<120 {
            switch generator.next() % 10 {
            case 0: events.append(.agentError(message: "e", retryable: generator.next() % 5 != 0, role: roles[Int(generator.next() % 6)]))
            case 1: events.append(.blocked(reason: "b"))
            case 2: events.append(.unblocked(reason: nil))
            case 3: events.append(.timeout(role: roles[Int(generator.next() % 6)]))
            case 4:
                events.append(.gateResult(GateResultInput(gate: try GateID(Int(generator.next() % 8)), payload: [:], senderRole: nil, approvedBy: "operator")))
            default:
                let gate = Int(generator.next() % 8)
                let result = generator.next() % 4 == 0 ? "fail" : "pass"
                events.append(
                    .gateResult(GateResultInput(gate: try GateID(gate), payload: ["result": .string(result)], senderRole: roles[Int(generator.next() % 6)])))
            }
        }
        func run() -> StoryState {
            var d = Driver(agent: "FULLSTACK-1")
            var applied = 0
            for event in events {
                let before = d.story
                guard let decision = try? d.send(event) else { continue }  // premature: refused, state unchanged
                if case .applied(let after, let effects) = decision {
                    applied += 1
                    for (from, to) in effects.transitions { #expect(from.canTransition(to: to), "\(from) → \(to)") }
                    #expect(after.currentGate >= before.currentGate || (before.currentGate.number == 4 && after.currentGate.number == 1))
                    if after.status == .complete { #expect(after.currentGate == .last && after.completedAt != nil) }
                    if after.status == .failed { #expect(after.failedAt != nil) }
                    #expect(after.gateFailures.allSatisfy { $0 >= 0 && $0 <= 4 })
                    #expect(after.acceptanceCriteriaPassed <= after.acceptanceCriteriaTotal)
                }
                if before.status.isTerminal { #expect(d.story.status == before.status) }
            }
            #expect(applied >= 3, "the sequence should change the story now and then")
            return d.story
        }
        #expect(run() == run())
    }
}

/// A small deterministic generator for the property tests.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { self.state = seed &+ 0x9E37_79B9_7F4A_7C15 }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
