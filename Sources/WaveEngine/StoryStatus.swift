import WaveProtocol

/// A story's status, spelled as the reference's CHECK constraint allows.
public enum StoryStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending
    case inProgress = "in_progress"
    case blocked
    case review
    case complete
    case failed
    case cancelled

    /// `complete` and `cancelled`: nothing leaves them.
    public var isTerminal: Bool { self == .complete || self == .cancelled }

    /// Whether the story is done one way or the other (terminal, or failed).
    public var isFinished: Bool { self.isTerminal || self == .failed }

    /// Whether `self → to` is allowed on an ordinary path (DOMAIN.md, story state machine).
    /// Leaving `failed` is allowed only through recovery (``canRecover(to:)``).
    public func canTransition(to next: StoryStatus) -> Bool {
        switch (self, next) {
        case (.pending, .inProgress), (.pending, .cancelled): true
        case (.inProgress, .blocked), (.inProgress, .review), (.inProgress, .complete), (.inProgress, .failed), (.inProgress, .cancelled): true
        case (.blocked, .inProgress), (.blocked, .review), (.blocked, .failed), (.blocked, .cancelled): true
        case (.review, .inProgress), (.review, .blocked), (.review, .complete), (.review, .failed), (.review, .cancelled): true
        default: false
        }
    }

    /// Whether recovery may move the story to `next`: everything an ordinary path allows, plus
    /// `failed → in_progress | review | cancelled` (resume, skip) and a restart's `→ pending`
    /// from any non-terminal status.
    public func canRecover(to next: StoryStatus) -> Bool {
        if self.canTransition(to: next) { return true }
        switch (self, next) {
        case (.failed, .inProgress), (.failed, .review), (.failed, .cancelled): return true
        case (_, .pending): return !self.isTerminal
        default: return false
        }
    }

    /// The status a working story has at `gate`: `in_progress` through gate-3, `review` from gate-4.
    public static func working(at gate: GateID) -> StoryStatus {
        gate.number <= 3 ? .inProgress : .review
    }
}

/// A session's status (sessions end `completed`; stories end `complete`).
public enum SessionStatus: String, Sendable, Hashable, Codable, CaseIterable {
    case pending
    case inProgress = "in_progress"
    case completed
    case failed
    case cancelled

    /// Whether nothing more happens in the session.
    public var isTerminal: Bool { self == .completed || self == .failed || self == .cancelled }
}
