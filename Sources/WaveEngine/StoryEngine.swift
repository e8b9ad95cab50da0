import WaveProtocol

/// The story rules of DOMAIN.md as a pure function: an event and a story in, the new story and
/// its effects (checkpoints, escalations, tasks) out. No I/O, no clock, no randomness of its own:
/// the caller passes the time and the jitter, so every decision can be replayed.
public struct StoryEngine: Sendable {
    /// Gates, retries and backoff.
    public var configuration: EngineConfiguration

    /// Creates an engine.
    public init(configuration: EngineConfiguration = .standard) {
        self.configuration = configuration
    }

    /// Applies one event.
    /// - Parameters:
    ///   - now: the time of the change (stamps, backoff).
    ///   - jitter: a number in [0, 1) for the retry backoff.
    /// - Throws: ``EngineRejection`` for a premature gate result (not acknowledged, so it is
    ///   redelivered and finally dead-lettered).
    public func apply(_ event: StoryEvent, to story: StoryState, now: WaveTimestamp, jitter: Double = 0.5) throws(EngineRejection) -> EngineDecision {
        var change = Change(story: story, engine: self, now: now, jitter: jitter)
        let ignored = try change.run(event)
        if let (from, to) = change.illegal {
            // A rule above asked for a move the state machine forbids: refuse the whole event.
            throw EngineRejection(code: "illegal_transition", detail: "\(story.storyID): \(from.rawValue) → \(to.rawValue) is not allowed")
        }
        if let ignored { return .ignored(ignored, change.effects) }
        return .applied(change.story, change.effects)
    }
}

extension StoryEngine {
    /// The tasks a working story needs at its current gate (what a restart or a lost lease
    /// dispatches again); none for a story that is not working.
    public func tasks(for story: StoryState, now: WaveTimestamp) -> [TaskDraft] {
        guard story.status == .inProgress || story.status == .review else { return [] }
        var change = Change(story: story, engine: self, now: now, jitter: 0)
        if change.story.devRoles.isEmpty, change.isDevGate(story.currentGate) { change.story.devRoles = story.defaultDevRoles }
        change.dispatchCurrentGate(notBefore: story.nextAttemptAt)
        return change.effects.dispatches
    }
}

/// One application in progress.
private struct Change {
    var story: StoryState
    let engine: StoryEngine
    let now: WaveTimestamp
    let jitter: Double
    var effects = StoryEffects()
    /// The first forbidden transition asked for, if any.
    var illegal: (StoryStatus, StoryStatus)?

    init(story: StoryState, engine: StoryEngine, now: WaveTimestamp, jitter: Double) {
        self.story = story
        self.engine = engine
        self.now = now
        self.jitter = jitter
    }

    var configuration: EngineConfiguration { self.engine.configuration }

    mutating func run(_ event: StoryEvent) throws(EngineRejection) -> IgnoredReason? {
        switch event {
        case .start: return self.start()
        case .gateResult(let input): return try self.gateResult(input)
        case .agentError(let message, let retryable, let role): return self.agentError(message: message, retryable: retryable, role: role)
        case .timeout(let role): return self.agentError(message: "timeout at \(self.story.currentGate)", retryable: true, role: role, kind: "timeout")
        case .blocked(let reason): return self.block(reason)
        case .unblocked(let reason): return self.unblock(reason)
        case .cancel(let reason): return self.cancel(reason)
        case .report: return .noChange
        }
    }

    // MARK: Lifecycle

    mutating func start() -> IgnoredReason? {
        guard self.story.status == .pending else { return self.story.status.isFinished ? .storyFinished : .noChange }
        self.transition(to: .inProgress)
        self.story.currentGate = .first
        self.story.startedAt = self.now
        self.story.failedAt = nil
        self.story.errorMessage = nil
        self.checkpoint(
            .storyStart, "Story started: \(self.story.storyID)", gate: .first,
            [
                "current_gate": .string(GateID.first.description), "retry_count": 0, "started_at": .string(self.now.description),
            ])
        self.dispatchCurrentGate()
        return nil
    }

    mutating func block(_ reason: String) -> IgnoredReason? {
        if self.story.status == .blocked { return .noChange }
        guard self.story.status == .inProgress || self.story.status == .review else {
            return self.story.status.isFinished ? .storyFinished : .storyNotStarted
        }
        self.transition(to: .blocked)
        self.story.blockedReason = reason
        self.checkpoint(.manual, "Blocked: \(self.story.storyID)", gate: self.story.currentGate, ["kind": "blocked", "reason": .string(reason)])
        self.escalate("blocked", "\(self.story.storyID) is blocked: \(reason)")
        return nil
    }

    mutating func unblock(_ reason: String?) -> IgnoredReason? {
        guard self.story.status == .blocked else { return self.story.status.isFinished ? .storyFinished : .noChange }
        self.transition(to: StoryStatus.working(at: self.story.currentGate))
        self.story.blockedReason = nil
        self.checkpoint(
            .manual, "Unblocked: \(self.story.storyID)", gate: self.story.currentGate, ["kind": "unblocked", "reason": reason.map { .string($0) } ?? .null])
        self.dispatchCurrentGate()
        return nil
    }

    mutating func cancel(_ reason: String) -> IgnoredReason? {
        guard !self.story.status.isFinished else { return .storyFinished }
        self.transition(to: .cancelled)
        self.story.errorMessage = reason
        self.checkpoint(.manual, "Cancelled: \(self.story.storyID)", gate: self.story.currentGate, ["kind": "cancelled", "reason": .string(reason)])
        return nil
    }

    // MARK: Gate results

    mutating func gateResult(_ input: GateResultInput) throws(EngineRejection) -> IgnoredReason? {
        switch self.story.status {
        case .complete, .cancelled, .failed: return .storyFinished
        case .pending: return .storyNotStarted
        case .blocked: return .storyBlocked
        case .inProgress, .review: break
        }
        if input.gate < self.story.currentGate {
            // A result for a gate already passed: a duplicate or a straggler.
            if !(self.configuration[input.gate].automatic && self.isDevGate(self.story.currentGate)) { return .staleGate }
        }
        // Gate-0's plan step: the PM's result names the dev roles; it is not an approval.
        if self.story.currentGate == .first, input.gate == .first, input.approvedBy == nil,
            input.senderRole == "pm", self.configuration[.first].owner != "pm"
        {
            return self.plan(input)
        }
        if self.configuration[input.gate].automatic {
            return try self.devResult(input)
        }
        return try self.manualResult(input)
    }

    mutating func plan(_ input: GateResultInput) -> IgnoredReason? {
        let named = Self.devRoles(from: input.payload)
        self.story.devRoles = named.isEmpty ? self.story.defaultDevRoles : named
        self.story.planned = true
        self.checkpoint(
            .manual, "Planned: \(self.story.storyID)", gate: .first,
            [
                "kind": "plan", "dev_roles": .array(self.story.devRoles.map { .string($0) }),
            ], agent: input.agentID)
        self.dispatchCurrentGate()
        return nil
    }

    mutating func manualResult(_ input: GateResultInput) throws(EngineRejection) -> IgnoredReason? {
        let gate = input.gate
        guard gate == self.story.currentGate else {
            throw EngineRejection(code: "premature_gate", detail: "\(self.story.storyID) is at \(self.story.currentGate), not \(gate)")
        }
        let policy = self.configuration[gate]
        let passed = input.approvedBy != nil || GateOutcome(payload: input.payload) == .passed
        let authorized = input.approvedBy != nil || input.senderRole == policy.owner
        guard authorized else {
            if passed {
                self.escalate(
                    "unauthorized_approval",
                    "\(input.agentID ?? input.senderRole ?? "an unknown sender") (role \(input.senderRole ?? "unknown")) tried to pass \(gate) of \(self.story.storyID), which \(policy.owner) owns"
                )
                return .unauthorizedApproval
            }
            return .notOwner
        }
        self.recordAcceptanceCriteria(input.payload)
        var state: [String: JSONValue] = [
            "gate": .string(gate.description), "status": .string(passed ? "passed" : "failed"),
            "role": input.senderRole.map { .string($0) } ?? .null,
            "ac_passed": .number(Double(self.story.acceptanceCriteriaPassed)), "ac_total": .number(Double(self.story.acceptanceCriteriaTotal)),
        ]
        if let by = input.approvedBy { state["approved_by"] = .string(by) }
        if let reason = Self.reason(input.payload) { state["error_message"] = .string(reason) }
        self.checkpoint(.gate, "\(gate): \(passed ? "passed" : "failed")", gate: gate, state, agent: input.agentID)
        if passed {
            self.passCurrentGate()
            return nil
        }
        let reason = Self.reason(input.payload) ?? "\(gate) failed"
        if self.countFailure(at: gate, message: "\(gate) failed: \(reason)") { return nil }
        if gate.number == 4 {
            // QA failure: back to develop with the feedback; gate-4's count survives the loop.
            self.story.currentGate = try! GateID(1)
            self.story.devProgress = [:]
            self.story.devEarlyFailures = [:]
            self.transition(to: .inProgress)
            self.dispatchCurrentGate(notBefore: self.story.nextAttemptAt, feedback: reason)
        } else {
            self.dispatchCurrentGate(notBefore: self.story.nextAttemptAt)
        }
        return nil
    }

    mutating func devResult(_ input: GateResultInput) throws(EngineRejection) -> IgnoredReason? {
        let gate = input.gate
        if self.story.devRoles.isEmpty { self.story.devRoles = self.story.defaultDevRoles }
        guard let role = self.devRole(of: input) else { return .notOwner }
        // Every role has passed the gates before the current one (an adopted or recovered story
        // may have no recorded progress).
        let floor = self.isDevGate(self.story.currentGate) ? self.story.currentGate.number - 1 : 0
        let progress = max(self.story.devProgress[role] ?? 0, floor)
        if gate.number <= progress { return .staleGate }  // this role already passed it
        guard gate.number == progress + 1 else {
            throw EngineRejection(code: "premature_gate", detail: "\(role) reported \(gate) of \(self.story.storyID) before \(GateID.all[progress + 1])")
        }
        if gate > self.story.currentGate, !self.isDevGate(self.story.currentGate) {
            throw EngineRejection(code: "premature_gate", detail: "\(self.story.storyID) is at \(self.story.currentGate), not \(gate)")
        }
        let evaluation = self.evaluate(gate: gate, payload: input.payload)
        self.recordAcceptanceCriteria(input.payload, fallback: evaluation.criteria)
        var state: [String: JSONValue] = [
            "gate": .string(gate.description), "status": .string(evaluation.passed ? "passed" : "failed"), "role": .string(role),
            "evidence": .string(evaluation.evidence), "ac_passed": .number(Double(self.story.acceptanceCriteriaPassed)),
            "ac_total": .number(Double(self.story.acceptanceCriteriaTotal)),
        ]
        if let reason = evaluation.reason { state["error_message"] = .string(reason) }
        if gate > self.story.currentGate { state["early"] = true }
        self.checkpoint(.gate, "\(gate): \(evaluation.passed ? "passed" : "failed") (\(role))", gate: gate, state, agent: input.agentID)
        if evaluation.passed {
            self.story.devProgress[role] = gate.number
        } else if gate > self.story.currentGate {
            self.story.devEarlyFailures[role] = gate.number
        } else {
            if self.failDevRole(role, at: gate, reason: evaluation.reason ?? "\(gate) failed") { return nil }
        }
        self.advanceDevGates()
        return nil
    }

    /// A dev role failed the current gate: count it; unless that fails the story, re-dispatch the
    /// role's develop task after the backoff. Returns whether the story failed.
    mutating func failDevRole(_ role: String, at gate: GateID, reason: String) -> Bool {
        self.story.devEarlyFailures[role] = nil
        if self.countFailure(at: gate, message: "\(gate) failed (\(role)): \(reason)") { return true }
        self.story.devProgress[role] = gate.number - 1
        self.effects.dispatches.append(TaskDraft(role: role, action: "develop", gate: gate, notBefore: self.story.nextAttemptAt, feedback: reason))
        return false
    }

    /// Passes dev gates every assigned role has passed; applies early failures that the story
    /// has now reached.
    mutating func advanceDevGates() {
        while self.isDevGate(self.story.currentGate), self.story.status == .inProgress {
            let gate = self.story.currentGate
            if let role = self.story.devEarlyFailures.first(where: { $0.value == gate.number })?.key {
                if self.failDevRole(role, at: gate, reason: "\(gate) failed (reported early)") { return }
                continue
            }
            guard self.story.devRoles.allSatisfy({ (self.story.devProgress[$0] ?? 0) >= gate.number }) else { return }
            self.passCurrentGate()
        }
    }

    /// The current gate passed: reset its count, move on, dispatch the next task.
    mutating func passCurrentGate() {
        let gate = self.story.currentGate
        self.story.gateFailures[gate.number] = 0
        self.story.nextAttemptAt = nil
        guard let next = gate.next else {
            self.transition(to: .complete)
            self.story.completedAt = self.now
            self.checkpoint(
                .storyComplete, "Story complete: \(self.story.storyID)", gate: gate,
                [
                    "completed_at": .string(self.now.description), "total_retries": .number(Double(self.story.totalRetries)),
                ])
            return
        }
        self.story.currentGate = next
        if gate == .first {
            if self.story.devRoles.isEmpty { self.story.devRoles = self.story.defaultDevRoles }
            self.story.devProgress = [:]
            self.story.devEarlyFailures = [:]
        }
        if next.number == 4 {
            self.transition(to: .review)
            self.checkpoint(.agentHandoff, "Handed to QA: \(self.story.storyID)", gate: next, ["kind": "handoff", "to": "qa"])
        }
        self.dispatchCurrentGate()
    }

    // MARK: Errors and failures

    mutating func agentError(message: String, retryable: Bool, role: String?, kind: String = "agent_error") -> IgnoredReason? {
        switch self.story.status {
        case .complete, .cancelled, .failed: return .storyFinished
        case .pending: return .storyNotStarted
        case .blocked: return .storyBlocked
        case .inProgress, .review: break
        }
        let gate = self.story.currentGate
        self.checkpoint(
            .manual, "\(kind == "timeout" ? "Timed out" : "Agent error"): \(self.story.storyID)", gate: gate,
            [
                "kind": .string(kind), "message": .string(message), "retryable": .bool(retryable), "role": role.map { .string($0) } ?? .null,
            ])
        if !retryable {
            self.story.errorMessage = message
            self.transition(to: .blocked)
            self.story.blockedReason = "non-retryable error: \(message)"
            self.escalate("non_retryable", "\(self.story.storyID) at \(gate): \(message)")
            return nil
        }
        if let role, self.isDevGate(gate), self.story.devRoles.contains(role) {
            _ = self.failDevRole(role, at: gate, reason: message)
            return nil
        }
        if self.countFailure(at: gate, message: "\(gate): \(message)") { return nil }
        self.dispatchCurrentGate(notBefore: self.story.nextAttemptAt)
        return nil
    }

    /// Counts one failure at `gate`. Past the gate's retry limit the story fails (error
    /// checkpoint, escalation) and this returns `true`; otherwise the next attempt is scheduled.
    mutating func countFailure(at gate: GateID, message: String) -> Bool {
        self.story.gateFailures[gate.number] += 1
        self.story.totalRetries += 1
        self.story.errorMessage = message
        let failures = self.story.gateFailures[gate.number]
        let limit = self.configuration[gate].maxRetries
        if failures > limit {
            self.transition(to: .failed)
            self.story.failedAt = self.now
            self.story.nextAttemptAt = nil
            self.checkpoint(
                .error, "Failed: \(self.story.storyID)", gate: gate,
                [
                    "error_message": .string(message), "retry_count": .number(Double(failures)), "failed_at": .string(self.now.description),
                ])
            self.escalate("retries_exhausted", "\(self.story.storyID) failed \(gate) \(failures) times (limit \(limit)): \(message)")
            return true
        }
        let delay = self.configuration.backoff(failures: failures, unit: self.jitter)
        self.story.nextAttemptAt = self.now.adding(delay)
        return false
    }

    // MARK: Helpers

    func isDevGate(_ gate: GateID) -> Bool { self.configuration[gate].automatic }

    func devRole(of input: GateResultInput) -> String? {
        if let role = input.senderRole, self.story.devRoles.contains(role) { return role }
        if input.senderRole == nil || input.senderRole == "agent", self.story.devRoles.count == 1 { return self.story.devRoles[0] }
        return nil
    }

    /// The validators of gates 1–3: evidence decides when present; `result` otherwise.
    func evaluate(gate: GateID, payload: [String: JSONValue]) -> (passed: Bool, evidence: String, reason: String?, criteria: (Int, Int)?) {
        let policy = self.configuration[gate]
        let byResult = GateOutcome(payload: payload) == .passed
        let fallbackReason = byResult ? nil : (Self.reason(payload) ?? "\(gate) failed")
        switch gate.number {
        case 1:
            guard case .array(let items)? = payload["checklist"] else { return (byResult, "absent", fallbackReason, nil) }
            let present = Set(items.compactMap(\.stringValue))
            let missing = policy.requiredChecklist.filter { !present.contains($0) }
            let passedCount = policy.requiredChecklist.count - missing.count
            return (
                missing.isEmpty, "checklist", missing.isEmpty ? nil : "Missing items: \(missing.joined(separator: ", "))",
                (passedCount, policy.requiredChecklist.count)
            )
        case 2:
            guard let success = payload["build_success"]?.boolValue else { return (byResult, "absent", fallbackReason, nil) }
            return (success, "build", success ? nil : "Build failed", (success ? 1 : 0, 1))
        case 3:
            let tests = payload["tests_passing"]?.boolValue
            let coverage = payload["coverage"]?.numberValue
            guard tests != nil || coverage != nil else { return (byResult, "absent", fallbackReason, nil) }
            var errors: [String] = []
            if tests != true { errors.append("Tests failing") }
            let covered = coverage ?? 0
            if covered < policy.requiredCoverage { errors.append("Coverage \(covered)% < \(policy.requiredCoverage)%") }
            return (errors.isEmpty, "tests", errors.isEmpty ? nil : errors.joined(separator: "; "), (2 - errors.count, 2))
        default:
            return (byResult, "absent", fallbackReason, nil)
        }
    }

    mutating func recordAcceptanceCriteria(_ payload: [String: JSONValue], fallback: (Int, Int)? = nil) {
        var passed = payload["ac_passed"]?.numberValue.map { Int($0) }
        var total = payload["ac_total"]?.numberValue.map { Int($0) }
        if passed == nil, total == nil, let fallback { (passed, total) = (fallback.0, fallback.1) }
        guard let passed, let total, passed >= 0, total >= 0 else { return }
        self.story.acceptanceCriteriaTotal = total
        self.story.acceptanceCriteriaPassed = min(passed, total)
    }

    mutating func transition(to next: StoryStatus) {
        let from = self.story.status
        guard from != next else { return }
        guard from.canTransition(to: next) else {
            if self.illegal == nil { self.illegal = (from, next) }
            return
        }
        self.story.status = next
        self.effects.transitions.append((from, next))
    }

    mutating func checkpoint(_ type: CheckpointDraft.Kind, _ name: String, gate: GateID?, _ state: [String: JSONValue], agent: String? = nil) {
        var state = state
        state["timestamp"] = .string(self.now.description)
        self.effects.checkpoints.append(CheckpointDraft(type: type, name: name, gate: gate, state: state, agentID: agent))
    }

    mutating func escalate(_ kind: String, _ reason: String) {
        self.effects.escalations.append(EscalationDraft(kind: kind, reason: reason))
    }

    /// Dispatches the task(s) of the current gate (gate-0: the PM's plan until it is in, then
    /// the CTO's authorization; gates 1–3: each dev role that has not passed it).
    mutating func dispatchCurrentGate(notBefore: WaveTimestamp? = nil, feedback: String? = nil) {
        let gate = self.story.currentGate
        let policy = self.configuration[gate]
        if gate == .first, !self.story.planned, policy.owner != "pm" {
            self.effects.dispatches.append(TaskDraft(role: "pm", action: "plan", gate: gate, notBefore: notBefore, feedback: feedback))
            return
        }
        if policy.automatic {
            for role in self.story.devRoles where (self.story.devProgress[role] ?? 0) < gate.number {
                self.effects.dispatches.append(TaskDraft(role: role, action: policy.action, gate: gate, notBefore: notBefore, feedback: feedback))
            }
            return
        }
        self.effects.dispatches.append(TaskDraft(role: policy.owner, action: policy.action, gate: gate, notBefore: notBefore, feedback: feedback))
    }

    static func reason(_ payload: [String: JSONValue]) -> String? {
        for key in ["feedback", "reason", "error_message", "error", "message"] {
            if let text = payload[key]?.stringValue, !text.isEmpty { return text }
        }
        return nil
    }

    static func devRoles(from payload: [String: JSONValue]) -> [String] {
        for key in ["dev_roles", "roles"] {
            if case .array(let items)? = payload[key] {
                let roles = items.compactMap { $0.stringValue?.lowercased() }.filter { $0 == "fe" || $0 == "be" }
                if !roles.isEmpty { return Array(Set(roles)).sorted() }
            }
        }
        switch payload["assignment"]?.stringValue?.lowercased() ?? payload["dev_roles"]?.stringValue?.lowercased() {
        case "fe"?: return ["fe"]
        case "be"?: return ["be"]
        case "both"?, "fullstack"?: return ["be", "fe"]
        default: return []
        }
    }
}
