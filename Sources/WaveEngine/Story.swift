import WaveProtocol

/// A story execution as the engine sees it: everything its rules read and write.
public struct StoryState: Sendable, Hashable {
    /// The business id (`S-1`), unique per session.
    public var storyID: String
    /// The session it belongs to.
    public var sessionID: String
    /// The status.
    public var status: StoryStatus
    /// The gate the story is at (the next to pass).
    public var currentGate: GateID = .first
    /// Optimistic-concurrency version; the store bumps it on every write.
    public var version = 0
    /// Failures per gate (`metadata.gate_failures`); a gate's count resets when it passes.
    public var gateFailures: [Int] = Array(repeating: 0, count: 8)
    /// Every failure ever counted (`metadata.total_retries`).
    public var totalRetries = 0
    /// The dev roles working gates 1–3 (`fe`, `be`).
    public var devRoles: [String] = []
    /// Whether the PM's plan was received at gate-0.
    public var planned = false
    /// Per dev role, the last gate it passed in the current develop attempt (gates 1–3).
    public var devProgress: [String: Int] = [:]
    /// Per dev role, a failure reported for a gate the story has not reached yet.
    public var devEarlyFailures: [String: Int] = [:]
    /// Acceptance criteria passed and total, from the latest result that carried them.
    public var acceptanceCriteriaPassed = 0
    /// See ``acceptanceCriteriaPassed``.
    public var acceptanceCriteriaTotal = 0
    /// Why it is blocked.
    public var blockedReason: String?
    /// When the scheduled retry may be dispatched (stored, never slept).
    public var nextAttemptAt: WaveTimestamp?
    /// Cost so far, USD.
    public var costUSD: Double = 0
    /// Tokens so far.
    public var tokens = 0
    /// Lifecycle stamps.
    public var startedAt: WaveTimestamp?
    /// See ``startedAt``.
    public var completedAt: WaveTimestamp?
    /// See ``startedAt``.
    public var failedAt: WaveTimestamp?
    /// The last failure.
    public var errorMessage: String?
    /// Story ids that must complete first.
    public var dependencies: [String] = []
    /// The assigned agent (`agent_assignment`) and the domain, for choosing dev roles.
    public var agent = ""
    /// See ``agent``.
    public var domain = ""

    /// Creates a pending story.
    public init(storyID: String, sessionID: String, status: StoryStatus = .pending) {
        self.storyID = storyID
        self.sessionID = sessionID
        self.status = status
    }

    /// The current gate's failure count: the `retry_count` column.
    public var retryCount: Int { self.gateFailures[self.currentGate.number] }

    /// The dev roles to use when no plan named them: from the assignment, else the domain.
    public var defaultDevRoles: [String] {
        let assignment = self.agent.lowercased()
        let domain = self.domain.lowercased()
        func roles(_ text: String) -> [String]? {
            if text.contains("fullstack") || text.contains("both") { return ["be", "fe"] }
            if text.hasPrefix("fe") || text.contains("frontend") { return ["fe"] }
            if text.hasPrefix("be") || text.contains("backend") { return ["be"] }
            return nil
        }
        return roles(assignment) ?? roles(domain) ?? ["be"]
    }
}

/// What happened to a story, as the engine applies it.
public enum StoryEvent: Sendable, Hashable {
    /// Start working (pending → in_progress at gate-0).
    case start
    /// A gate result (a `gate.passed` / `gate.failed` signal, or `wave approve`).
    case gateResult(GateResultInput)
    /// The agent reported an error.
    case agentError(message: String, retryable: Bool, role: String?)
    /// The task at the current gate ran out of time.
    case timeout(role: String?)
    /// Block the story.
    case blocked(reason: String)
    /// Unblock it.
    case unblocked(reason: String?)
    /// Cancel it (an operator, or a dependency that failed).
    case cancel(reason: String)
    /// A signal that changes no state but may carry cost and tokens (`system.health`,
    /// `agent.busy`, …): ignored as `no_change`; the store still adds what it reports.
    case report
}

/// A gate result as the engine needs it.
public struct GateResultInput: Sendable, Hashable {
    /// The gate it is for.
    public var gate: GateID
    /// The signal's payload (`result`, `approved`, evidence, `ac_passed`, …).
    public var payload: [String: JSONValue]
    /// The sender's role (`fe`, `be`, `qa`, `pm`, `cto`), if known.
    public var senderRole: String?
    /// The sender's agent id.
    public var agentID: String?
    /// An operator who approved with `wave approve` (passes a manual gate whoever owns it).
    public var approvedBy: String?

    /// Creates an input.
    public init(gate: GateID, payload: [String: JSONValue], senderRole: String?, agentID: String? = nil, approvedBy: String? = nil) {
        self.gate = gate
        self.payload = payload
        self.senderRole = senderRole
        self.agentID = agentID
        self.approvedBy = approvedBy
    }
}

/// A checkpoint to append (types are the reference's; new kinds are `manual` with `state.kind`).
public struct CheckpointDraft: Sendable, Hashable {
    /// The reference's checkpoint types.
    public enum Kind: String, Sendable, Hashable, CaseIterable {
        case gate, storyStart = "story_start", storyComplete = "story_complete", agentHandoff = "agent_handoff", error, manual
    }
    /// Its type.
    public var type: Kind
    /// A label such as `gate-1: passed`.
    public var name: String
    /// The gate it refers to.
    public var gate: GateID?
    /// The snapshot.
    public var state: [String: JSONValue]
    /// The agent that caused it.
    public var agentID: String?

    /// Creates a draft.
    public init(type: Kind, name: String, gate: GateID?, state: [String: JSONValue], agentID: String?) {
        self.type = type
        self.name = name
        self.gate = gate
        self.state = state
        self.agentID = agentID
    }
}

/// An escalation to raise (a record and `escalation.raised`).
public struct EscalationDraft: Sendable, Hashable {
    /// `retries_exhausted`, `non_retryable_error`, `story_blocked`, `unauthorized_approval`, ….
    public var kind: String
    /// For people.
    public var reason: String

    /// Creates a draft.
    public init(kind: String, reason: String) {
        self.kind = kind
        self.reason = reason
    }
}

/// A task to dispatch (issue 6 carries it to the agents).
public struct TaskDraft: Sendable, Hashable {
    /// The role that does it.
    public var role: String
    /// `plan`, `authorize`, `develop`, `validate`, `review` or `merge`.
    public var action: String
    /// The gate it serves.
    public var gate: GateID
    /// Not before this time (a retry's backoff); `nil`: now.
    public var notBefore: WaveTimestamp?
    /// Feedback for the agent (QA's, on a loop back to gate-1).
    public var feedback: String?

    /// Creates a draft.
    public init(role: String, action: String, gate: GateID, notBefore: WaveTimestamp? = nil, feedback: String? = nil) {
        self.role = role
        self.action = action
        self.gate = gate
        self.notBefore = notBefore
        self.feedback = feedback
    }
}

/// Everything an applied event causes besides the new state.
public struct StoryEffects: Sendable, Hashable {
    /// Checkpoints to append, in order.
    public var checkpoints: [CheckpointDraft] = []
    /// Escalations to raise.
    public var escalations: [EscalationDraft] = []
    /// Tasks to dispatch.
    public var dispatches: [TaskDraft] = []
    /// Transitions made, for the log (`in_progress → review`).
    public var transitions: [(from: StoryStatus, to: StoryStatus)] = []

    /// Creates empty effects.
    public init() {}

    public static func == (a: StoryEffects, b: StoryEffects) -> Bool {
        a.checkpoints == b.checkpoints && a.escalations == b.escalations && a.dispatches == b.dispatches
            && a.transitions.elementsEqual(b.transitions, by: { $0.from == $1.from && $0.to == $1.to })
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.checkpoints)
        hasher.combine(self.escalations)
        hasher.combine(self.dispatches)
    }
}

/// Why an event had no effect on the story. The message is acknowledged.
public enum IgnoredReason: String, Sendable, Hashable {
    /// A result for a gate the story already passed.
    case staleGate = "stale_gate"
    /// A pass for a manual gate from a role that does not own it (escalated).
    case unauthorizedApproval = "unauthorized_approval"
    /// A result for a manual gate from a role that does not own it.
    case notOwner = "not_owner"
    /// The story is complete, cancelled or failed.
    case storyFinished = "story_finished"
    /// The story is not started yet.
    case storyNotStarted = "story_not_started"
    /// The story is blocked; the result waits for the unblock.
    case storyBlocked = "story_blocked"
    /// Nothing to do (already in that state).
    case noChange = "no_change"
}

/// Why an event was refused; the message is not acknowledged (redelivered, then dead-lettered).
public struct EngineRejection: Error, Sendable, Hashable, CustomStringConvertible {
    /// `premature_gate`, `illegal_transition`.
    public var code: String
    /// For people.
    public var detail: String

    public var description: String { "\(self.code): \(self.detail)" }
}

/// The engine's verdict on one event.
public enum EngineDecision: Sendable, Hashable {
    /// The story changed (`state`) with these effects.
    case applied(StoryState, StoryEffects)
    /// No change to the story; `effects` may still hold an escalation or a checkpoint.
    case ignored(IgnoredReason, StoryEffects)
}
