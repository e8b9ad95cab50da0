import Synchronization
import WaveProtocol

/// Waits for the results of tasks: each wait is a continuation resumed by the result signal for
/// that task (its `correlation_id` is the task's `message_id`; failing that, the same story and
/// gate), or by its deadline (no polling).
///
/// Register a task before it is dispatched, so that no result can arrive unseen; feed it every
/// result signal (``deliver(_:)``, from the dispatcher's `settled` hook). At the deadline a wait
/// returns ``Outcome/timedOut``, the task is remembered as timed out, and a result that comes
/// later is recorded as late and ignored.
public final class ResultWaiter: Sendable {
    /// How a wait ended.
    public enum Outcome: Sendable, Hashable {
        /// The result signal (`gate.passed`, `gate.failed` or `agent.error`).
        case result(Envelope)
        /// The deadline passed first.
        case timedOut
    }

    struct Slot {
        var task: TaskEntry
        var result: Envelope?
        var continuation: CheckedContinuation<Outcome, Never>?
    }

    struct State {
        var slots: [String: Slot] = [:]
        var timedOut: Set<String> = []
        var late = 0
    }

    let state = Mutex(State())

    /// Creates a waiter.
    public init() {}

    /// Registers a task before it is dispatched.
    public func register(_ task: TaskEntry) {
        self.state.withLock { $0.slots[task.messageID] = $0.slots[task.messageID] ?? Slot(task: task) }
    }

    /// Results that arrived after their task's deadline (recorded, ignored).
    public var lateResults: Int { self.state.withLock { $0.late } }

    /// Hands a signal to the waits: a result for a registered task resumes its wait (or is kept
    /// for it); returns whether the signal answered a task. A result for a task that timed out is
    /// counted as late and answers nothing.
    @discardableResult
    public func deliver(_ envelope: Envelope) -> Bool {
        guard [.gatePassed, .gateFailed, .agentError].contains(envelope.eventType) else { return false }
        let resumed = self.state.withLock { state -> (CheckedContinuation<Outcome, Never>, Envelope)?? in
            if let correlation = envelope.correlationID, state.timedOut.contains(correlation) {
                state.late += 1
                return .none
            }
            guard let id = Self.match(envelope, in: state) else { return .none }
            if let continuation = state.slots[id]?.continuation {
                state.slots[id] = nil
                return .some((continuation, envelope))
            }
            if state.slots[id]?.result == nil { state.slots[id]?.result = envelope }
            return .some(nil)
        }
        switch resumed {
        case .none: return false
        case .some(nil): return true
        case .some(.some(let (continuation, envelope))):
            continuation.resume(returning: .result(envelope))
            return true
        }
    }

    /// The registered task a result answers: by `correlation_id`, else the oldest unanswered task
    /// of the same story and gate (and role, when the sender's role is known).
    static func match(_ envelope: Envelope, in state: State) -> String? {
        if let correlation = envelope.correlationID, state.slots[correlation] != nil { return correlation }
        guard let story = envelope.storyIDForRouting else { return nil }
        let gate = envelope.payload["gate_id"]?.stringValue
        let role = envelope.senderRole()
        return state.slots.values
            .filter { slot in
                slot.result == nil && slot.task.storyID == story && (gate == nil || slot.task.gate.description == gate)
                    && (role == nil || slot.task.role == role)
            }
            .min { $0.task.timestamp.microsecondsSinceEpoch < $1.task.timestamp.microsecondsSinceEpoch }?.task.messageID
    }

    /// Waits for a registered task's result until `deadline`.
    public func wait(for task: TaskEntry, until deadline: ContinuousClock.Instant) async -> Outcome {
        self.register(task)
        let id = task.messageID
        return await withTaskGroup(of: Outcome?.self) { group in
            group.addTask {
                await withCheckedContinuation { continuation in
                    let ready = self.state.withLock { state -> Outcome? in
                        guard var slot = state.slots[id] else { return .timedOut }
                        if let result = slot.result {
                            state.slots[id] = nil
                            return .result(result)
                        }
                        slot.continuation = continuation
                        state.slots[id] = slot
                        return nil
                    }
                    if let ready { continuation.resume(returning: ready) }
                }
            }
            group.addTask {
                // sleep: deadline
                do { try await Task.sleep(until: deadline, clock: .continuous) } catch { return nil }
                let waiting = self.state.withLock { state -> CheckedContinuation<Outcome, Never>? in
                    guard let slot = state.slots.removeValue(forKey: id) else { return nil }
                    state.timedOut.insert(id)
                    return slot.continuation
                }
                waiting?.resume(returning: .timedOut)
                return .timedOut
            }
            // The first finished child decides; the other is cancelled (the deadline) or ended by it.
            var outcome: Outcome = .timedOut
            for await value in group {
                if let value {
                    outcome = value
                    break
                }
            }
            group.cancelAll()
            return outcome
        }
    }

    /// Waits for several tasks at once, with one shared deadline; returns each task's outcome by
    /// its `message_id`.
    public func waitAll(_ tasks: [TaskEntry], until deadline: ContinuousClock.Instant) async -> [String: Outcome] {
        for task in tasks { self.register(task) }
        return await withTaskGroup(of: (String, Outcome).self) { group in
            for task in tasks {
                group.addTask { (task.messageID, await self.wait(for: task, until: deadline)) }
            }
            var outcomes: [String: Outcome] = [:]
            for await (id, outcome) in group { outcomes[id] = outcome }
            return outcomes
        }
    }
}
