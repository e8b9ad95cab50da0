/// The declared event types: the reference's 17, `session.paused` (together the 18 core types),
/// and Wave's extension types, which go only on `wave:system:*` and `wave:agent:*` because the
/// reference's decoder leaves an unknown type pending forever.
public enum EventType: String, Sendable, Hashable, CaseIterable, Codable {
    // gate
    case gateStarted = "gate.started"
    case gatePassed = "gate.passed"
    case gateFailed = "gate.failed"
    // story
    case storyStarted = "story.started"
    case storyCompleted = "story.completed"
    case storyFailed = "story.failed"
    case storyBlocked = "story.blocked"
    // agent
    case agentReady = "agent.ready"
    case agentBusy = "agent.busy"
    case agentError = "agent.error"
    case agentHandoff = "agent.handoff"
    // session
    case sessionStarted = "session.started"
    case sessionCompleted = "session.completed"
    case sessionFailed = "session.failed"
    case sessionPaused = "session.paused"
    // system
    case systemHealth = "system.health"
    case systemEmergencyStop = "system.emergency_stop"
    case systemCheckpoint = "system.checkpoint"
    // extensions (Wave's own)
    case sessionCreated = "session.created"
    case sessionResumed = "session.resumed"
    case sessionCancelled = "session.cancelled"
    case storyRecovered = "story.recovered"
    case sessionBudgetWarning = "session.budget_warning"
    case storyUnblocked = "story.unblocked"
    case systemEmergencyCleared = "system.emergency_cleared"
    case escalationRaised = "escalation.raised"
    case taskCancelled = "task.cancelled"
    case gateApproved = "gate.approved"

    /// The 18 core types (the reference's 17 plus `session.paused`).
    public static let core: [EventType] = Self.allCases.filter(\.isCore)

    /// Every type by its wire name: one hash instead of a comparison per case.
    static let byRawValue: [String: EventType] = Dictionary(uniqueKeysWithValues: Self.allCases.map { ($0.rawValue, $0) })
    /// Wave's extension types.
    public static let extensions: [EventType] = Self.allCases.filter { !$0.isCore }

    /// Whether this is one of the 18 core types that reference code may read.
    public var isCore: Bool {
        switch self {
        case .sessionCreated, .sessionResumed, .sessionCancelled, .storyRecovered, .sessionBudgetWarning,
            .storyUnblocked, .systemEmergencyCleared, .escalationRaised, .taskCancelled, .gateApproved:
            false
        default:
            true
        }
    }

    /// The category before the dot (`gate`, `story`, `agent`, `session`, `system`, …).
    public var category: String { String(self.rawValue.prefix(while: { $0 != "." })) }

    /// Whether the type may be published on a signals or gate stream, where reference code reads.
    public var allowedOnSignalStreams: Bool { self.isCore }
}

/// How urgent a message is. Orders Wave's own dispatch (`critical` and `high` first).
public enum Priority: String, Sendable, Hashable, CaseIterable, Codable, Comparable {
    case low, normal, high, critical

    var rank: Int {
        switch self {
        case .low: 0
        case .normal: 1
        case .high: 2
        case .critical: 3
        }
    }

    public static func < (a: Priority, b: Priority) -> Bool { a.rank < b.rank }
}
