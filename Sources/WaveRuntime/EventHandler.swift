import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

/// The kind of stream a signal arrived on; it decides what a signal may do (`WIRE.md`:
/// `system.emergency_cleared` is honoured only from the system streams).
public enum StreamKind: String, Sendable, Hashable {
    /// `wave:signals:{p}`: agents and the CLI's `signal`.
    case signals
    /// `wave:system:{p}`: the orchestrator, the CLI's announcements, operators.
    case system
    /// `wave:system:global`: operators.
    case systemGlobal = "system_global"

    /// The kind of a stream by its name; `nil` for a stream the orchestrator does not read.
    public init?(stream: String) {
        if stream == Channels.systemGlobal {
            self = .systemGlobal
        } else if stream.hasPrefix("wave:signals:") {
            self = .signals
        } else if stream.hasPrefix("wave:system:") {
            self = .system
        } else {
            return nil
        }
    }
}

/// One delivered entry as a handler sees it.
public struct Signal: Sendable {
    /// The delivery (stream, entry id, delivery count, raw fields).
    public var delivery: Delivery
    /// The kind of stream it arrived on.
    public var kind: StreamKind
    /// The project of the stream it arrived on (`nil` on `wave:system:global`).
    public var project: ProjectName?
    /// The decoded envelope.
    public var envelope: Envelope

    /// Creates a signal from a delivery and its envelope.
    public init(delivery: Delivery, envelope: Envelope, kind: StreamKind, project: ProjectName?) {
        self.delivery = delivery
        self.envelope = envelope
        self.kind = kind
        self.project = project
    }
}

/// What a handler did with a signal.
public enum HandlerOutcome: Sendable, Hashable, CustomStringConvertible {
    /// Durable state changed; the text says how (for logs).
    case applied(String)
    /// Nothing changed, for a reason.
    case ignored(NoEffect)
    /// The message was applied before (the ledger).
    case duplicate
    /// The signal can never be applied: dead-letter it with this reason.
    case deadLetter(Unusable)

    public var description: String {
        switch self {
        case .applied(let detail): "applied (\(detail))"
        case .ignored(let reason): "ignored (\(reason))"
        case .duplicate: "duplicate"
        case .deadLetter(let reason): "dead-lettered (\(reason))"
        }
    }
}

/// Why a signal changed nothing (``HandlerOutcome/ignored(_:)``); ``code`` is its text in logs
/// and counters.
public enum NoEffect: Sendable, Hashable, CustomStringConvertible {
    /// The engine's reason: a stale gate, a blocked story, a role that does not own the gate, …
    case engine(IgnoredReason)
    /// A sender's `seq` at or below the last one applied for the story.
    case staleSequence
    /// A result whose task was taken back (its deadline passed, or a stop withdrew it).
    case lateResult
    /// An operator's change that only a system stream may carry, sent on a signal stream.
    case notOnSystemStream(EventType)
    /// The session it names is finished.
    case sessionFinished(SessionStatus)
    /// The store does not allow the change now.
    case notAllowed(String)
    /// A presence signal without an agent id.
    case noAgentID
    /// Wave's own notice read back: nothing to do.
    case notice
    /// An event type the session handler does not take.
    case notASessionEvent
    /// An operator's announcement for a project another instance serves (its lease): the owner
    /// acts on it; a new owner reads the committed change from the store when it takes over.
    case notServed(String)
    /// A reason of a handler outside the standard ones.
    case other(String)

    /// The reason as text: `stale_gate`, `stale_seq`, `late_result`, `unblock_not_on_system_stream`, …
    public var code: String {
        switch self {
        case .engine(let reason): reason.rawValue
        case .staleSequence: "stale_seq"
        case .lateResult: "late_result"
        case .notOnSystemStream(let type):
            switch type {
            case .storyUnblocked: "unblock_not_on_system_stream"
            case .storyRecovered, .gateApproved: "announcement_not_on_system_stream"
            case .systemEmergencyCleared: "clear_not_on_system_stream"
            case .sessionResumed: "resume_not_on_system_stream"
            case .sessionCancelled: "cancel_not_on_system_stream"
            default: "\(type.rawValue)_not_on_system_stream"
            }
        case .sessionFinished(let status): "session_\(status.rawValue)"
        case .notAllowed: "not_allowed"
        case .noAgentID: "no_agent_id"
        case .notice: "notice"
        case .notASessionEvent: "not_a_session_event"
        case .notServed: "not_served"
        case .other(let code): code
        }
    }

    public var description: String {
        if case .notAllowed(let detail) = self { return "not_allowed: \(detail)" }
        return self.code
    }
}

/// Why a signal can never be applied (``HandlerOutcome/deadLetter(_:)``); its ``description``
/// (`code: detail`) is the dead letter's reason.
public enum Unusable: Sendable, Hashable, CustomStringConvertible {
    /// No story has the id it names (in its session, or its project).
    case unknownStory(String)
    /// Several stories of its project have the id, and it names no session.
    case ambiguousStory(String)
    /// It names no story (envelope or payload `story_id`).
    case missingStoryID(EventType)
    /// A session event that names no session.
    case missingSessionID(EventType)
    /// No session has the id it names.
    case unknownSession(String)
    /// Its payload lacks a field or has a bad value.
    case invalidPayload(String)

    /// The reason's code: `unknown_story`, `ambiguous_story`, `missing_story_id`, …
    public var code: String {
        switch self {
        case .unknownStory: "unknown_story"
        case .ambiguousStory: "ambiguous_story"
        case .missingStoryID: "missing_story_id"
        case .missingSessionID: "missing_session_id"
        case .unknownSession: "unknown_session"
        case .invalidPayload: "invalid_payload"
        }
    }

    public var description: String {
        switch self {
        case .unknownStory(let detail), .ambiguousStory(let detail), .unknownSession(let detail), .invalidPayload(let detail):
            "\(self.code): \(detail)"
        case .missingStoryID(let type): "\(self.code): \(type.rawValue) names no story (envelope or payload story_id)"
        case .missingSessionID(let type): "\(self.code): \(type.rawValue) names no session"
        }
    }
}

/// Reacts to signals of the types it is registered for (the command pattern: one handler per
/// concern; several may handle one type, in the order they were registered).
///
/// A handler must be idempotent: a signal whose handler threw is delivered again (up to
/// `max_deliveries`), and every handler of its type runs again.
public protocol EventHandler: Sendable {
    /// A short name for logs and dispatch results.
    var name: String { get }
    /// Handles one signal. Throwing leaves the entry unacknowledged, so it is delivered again
    /// and, after `max_deliveries`, dead-lettered.
    func handle(_ signal: Signal) async throws -> HandlerOutcome
}

/// A handler that can handle a run of signals at once (one store transaction, one pipelined
/// write of the tasks that follow). The dispatcher hands it every maximal run of consecutive
/// entries in a read whose only handler it is; results come back in order, one per signal.
public protocol BatchEventHandler: EventHandler {
    /// Handles signals in order; each result is what ``EventHandler/handle(_:)`` would have
    /// returned or thrown for that signal. The work that follows from them (the tasks they
    /// dispatch) may be left to ``HandledBatch/followUp``.
    func handle(batch: [Signal]) async -> HandledBatch
}

/// What a ``BatchEventHandler`` did with a run of signals.
public struct HandledBatch: Sendable {
    /// One result per signal, in order.
    public var results: [Result<HandlerOutcome, any Error>]
    /// Work that follows from the results and that the next read need not wait for (writing the
    /// tasks they dispatch). The dispatcher runs it in read order, after the run's results are
    /// settled and before their entries are acknowledged (and before the `settled` hooks), while
    /// the next read is handled.
    public var followUp: (@Sendable () async -> Void)?

    /// Creates a result.
    public init(results: [Result<HandlerOutcome, any Error>], followUp: (@Sendable () async -> Void)? = nil) {
        self.results = results
        self.followUp = followUp
    }
}

/// Handlers by event type, plus global handlers that see every signal after the typed ones.
public struct HandlerRegistry: Sendable {
    var byType: [EventType: [any EventHandler]] = [:]
    var global: [any EventHandler] = []

    /// An empty registry.
    public init() {}

    /// Registers `handler` for `types`, after the handlers already registered for them.
    public mutating func register(_ handler: any EventHandler, for types: EventType...) {
        for type in types { self.byType[type, default: []].append(handler) }
    }

    /// Registers `handler` for every signal (after the typed handlers).
    public mutating func registerGlobal(_ handler: any EventHandler) {
        self.global.append(handler)
    }

    /// The handlers a signal of `type` goes through, in order; empty when the type has none.
    public func handlers(for type: EventType) -> [any EventHandler] {
        (self.byType[type] ?? []) + self.global
    }

    /// The batch handler of `type`, when it is the type's only handler and there are no global ones.
    func batchHandler(for type: EventType) -> (any BatchEventHandler)? {
        guard self.global.isEmpty, let handlers = self.byType[type], handlers.count == 1 else { return nil }
        return handlers[0] as? any BatchEventHandler
    }

    /// Whether `type` has a handler of its own (global handlers do not count).
    public func handles(_ type: EventType) -> Bool {
        !(self.byType[type] ?? []).isEmpty
    }
}

/// What dispatching one signal did: every handler's outcome, or the error that stopped it.
public struct DispatchResult: Sendable {
    /// The event type.
    public var eventType: EventType
    /// Each handler's outcome, in order.
    public var outcomes: [(handler: String, outcome: HandlerOutcome)] = []
    /// The error of the handler that failed (later handlers did not run).
    public var error: (any Error)?
    /// The type has no handler of its own: acknowledged as a no-op and counted.
    public var unhandled = false

    /// What to do with the entry.
    public enum Disposition: Sendable, Hashable {
        /// Acknowledge it.
        case acknowledge
        /// Dead-letter it with this reason (then it is acknowledged).
        case deadLetter(String)
        /// Leave it pending: it is delivered again.
        case retry
    }

    /// What to do with the entry: retry after an error, dead-letter when a handler said so,
    /// acknowledge otherwise.
    public var disposition: Disposition {
        if self.error != nil { return .retry }
        for (_, outcome) in self.outcomes {
            if case .deadLetter(let reason) = outcome { return .deadLetter(reason.description) }
        }
        return .acknowledge
    }
}

/// An error that says the signal came before one it depends on (a gate result before the
/// result of the gate before it): the dispatcher leaves it pending and handles it again as soon
/// as a signal of the same story applies, instead of waiting for the reclaim.
public protocol WaitsForEarlierSignal: Error {
    /// Whether this error is such a wait (an error type may carry other refusals too).
    var waitsForEarlierSignal: Bool { get }
}
