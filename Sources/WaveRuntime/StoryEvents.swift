import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

// Story events: a signal's story event applied through the store in one transaction per run of
// them, and the reactions to what changed (tasks, escalations, the session's next step).

extension OrchestratorCore {
    /// Applies a story event from a signal through the store (one transaction) and reacts.
    func applyStoryEvent(_ signal: Signal, _ event: StoryEvent) async throws -> HandlerOutcome {
        let handled = await self.applyStoryEvents([(signal, event)])
        await handled.followUp?()
        return try handled.results[0].get()
    }

    /// The store's message for a signal's story event, or the outcome when it names no story.
    func incoming(_ signal: Signal, _ event: StoryEvent) -> Result<IncomingEvent, Refusal> {
        let envelope = signal.envelope
        guard let storyID = envelope.storyIDForRouting else {
            return .failure(Refusal(outcome: .deadLetter(.missingStoryID(envelope.eventType))))
        }
        return .success(
            IncomingEvent(
                messageID: envelope.messageID, eventType: envelope.eventType.rawValue, source: envelope.agentID, seq: envelope.seq,
                sessionID: envelope.sessionID ?? envelope.payload["session_id"]?.stringValue, storyID: storyID, event: event,
                costUSD: envelope.payload["cost_usd"]?.numberValue, tokens: envelope.payload["tokens"]?.numberValue.map { Int(clamping: Int64($0)) },
                project: signal.project?.key, correlationID: envelope.correlationID
            ))
    }

    /// Applies the story events of several signals in one store transaction, in order, then
    /// reacts to each and takes the tasks that follow as out. Each result is what applying that
    /// signal alone gives. The follow-up writes the tasks in one pipelined write.
    func applyStoryEvents(_ items: [(Signal, StoryEvent)]) async -> HandledBatch {
        // On the store's executor: the transaction and the reactions' store calls cost no thread
        // hop, and a transaction that waits for another process's lock never holds the event loop
        // (where the reads arrive, and where an emergency stop halts dispatch meanwhile).
        let (results, work, sessions) = await withTaskExecutorPreference(self.store.executor) {
            let (results, work) = await self.applyOnStoreExecutor(items)
            return (results, work, await self.tasks.sessions(of: work))
        }
        // Back on the event loop: the tasks are claimed here (before the next read is handled)
        // and go out after the commit, while the next read's transaction runs.
        let claimed = self.tasks.prepare(work, sessions: sessions)
        guard claimed.count > 0 else { return HandledBatch(results: results) }
        return HandledBatch(results: results, followUp: { [tasks = self.tasks] in await tasks.send(claimed) })
    }

    func applyOnStoreExecutor(
        _ items: [(Signal, StoryEvent)]
    ) async -> (results: [Result<HandlerOutcome, any Error>], work: [(story: StoryRecord, drafts: [TaskDraft])]) {
        var results = [Result<HandlerOutcome, any Error>?](repeating: nil, count: items.count)
        var positions: [Int] = []
        var batch: [IncomingEvent] = []
        for (position, (signal, event)) in items.enumerated() {
            switch self.incoming(signal, event) {
            case .success(let incoming):
                positions.append(position)
                batch.append(incoming)
            case .failure(let refusal):
                results[position] = .success(refusal.outcome)
            }
        }
        var work: [(story: StoryRecord, drafts: [TaskDraft])] = []
        var offset = 0
        while offset < batch.count {
            // One transaction up to a message that changes what its session does next (a story
            // finished and others may start, or the session ended); the reactions to it run
            // before the rest is applied, as they would between signals applied one by one.
            let applied: [Result<ApplyResult, any Error>]
            do {
                applied = try await self.store.apply(batch: Array(batch[offset...]), stopAtSessionChange: true)
            } catch {
                // The transaction rolled back (SQLite's error): nothing of it applied; those entries are retried.
                for position in positions[offset...] { results[position] = .failure(error) }
                break
            }
            for (position, (incoming, result)) in zip(positions[offset...], zip(batch[offset...], applied)) {
                switch result {
                case .success(let applied):
                    do {
                        results[position] = .success(try await self.react(to: applied, incoming: incoming, signal: items[position].0, dispatch: &work))
                    } catch {
                        results[position] = .failure(error)
                    }
                case .failure(let error as StoreError) where error.code == .notFound:
                    results[position] = .success(.deadLetter(.unknownStory(error.message)))
                case .failure(let error as StoreError) where error.code == .ambiguous:
                    results[position] = .success(.deadLetter(.ambiguousStory(error.message)))
                case .failure(let error as StoreError) where error.code == .withdrawn:
                    // Taken back by a stop or its deadline while the result waited: late, as below.
                    try? await self.store.bump("late_results")
                    results[position] = .success(.ignored(.lateResult))
                case .failure(let error):
                    results[position] = .failure(error)
                }
            }
            offset += max(applied.count, 1)
        }
        return (results.map { $0! }, work)
    }

    /// Carries out what an applied change implies: log lines, tasks, escalation notices, the next
    /// stories of the session and the next session of the project.
    /// - Parameter dispatch: where the tasks to dispatch are collected (the caller sends them all at once).
    func react(
        to result: ApplyResult, incoming: IncomingEvent, signal: Signal?, dispatch: inout [(story: StoryRecord, drafts: [TaskDraft])]
    ) async throws -> HandlerOutcome {
        switch result {
        case .applied(let record, let effects, let sessionEffects):
            let state = record.state
            self.logTransition(record, effects, incoming)
            switch incoming.event {
            case .gateResult(let input):
                let advanced = state.currentGate != input.gate || state.status.isFinished
                self.tasks.answered(storyID: state.storyID, sessionID: state.sessionID, gate: input.gate, role: advanced ? nil : input.senderRole)
            case .agentError(_, _, let role), .timeout(let role):
                // The task that reported is over; its retry (if any) is a new attempt.
                self.tasks.answered(storyID: state.storyID, sessionID: state.sessionID, gate: state.currentGate, role: role)
            default:
                break
            }
            for dependent in sessionEffects.cancelledDependents {
                self.tasks.forget(storyID: dependent, sessionID: state.sessionID)
                self.logger.warning(
                    "story cancelled: a story it depends on failed", metadata: ["wave.story": "\(dependent)", "wave.failed": "\(state.storyID)"])
            }
            if !effects.escalations.isEmpty || sessionEffects.otherEffects.values.contains(where: { !$0.escalations.isEmpty }) {
                try await self.announceEscalations(of: incoming.messageID, project: signal?.project)
            }
            if sessionEffects.budgetWarning || sessionEffects.pausedForBudget {
                try await self.announceBudget(sessionID: state.sessionID, paused: sessionEffects.pausedForBudget)
            }
            if state.status.isFinished {
                self.tasks.forget(storyID: state.storyID, sessionID: state.sessionID)
                // A session that goes on with nothing waiting to start has no step to take.
                let nextStep = sessionEffects.statusChange != nil || !sessionEffects.cancelledDependents.isEmpty
                if try await (nextStep ? true : self.store.sessionHasNextStep(state.sessionID)) {
                    try await self.advanceSession(state.sessionID)
                }
            } else if !effects.dispatches.isEmpty {
                dispatch.append((record, effects.dispatches))
            }
            return .applied("\(state.storyID) \(state.status.rawValue) at \(state.currentGate)")
        case .ignored(let reason, let record, let effects):
            if !effects.escalations.isEmpty { try await self.announceEscalations(of: incoming.messageID, project: signal?.project) }
            self.logger.info(
                "signal had no effect",
                metadata: [
                    "wave.story": "\(record.state.storyID)", "wave.event": "\(incoming.eventType)", "wave.reason": "\(reason.rawValue)",
                ])
            return .ignored(.engine(reason))
        case .duplicate:
            return .duplicate
        case .staleSequence(let last):
            self.logger.info("stale signal", metadata: ["wave.story": "\(incoming.storyID)", "wave.seq": "\(incoming.seq ?? 0)", "wave.last_seq": "\(last)"])
            return .ignored(.staleSequence)
        }
    }

    func logTransition(_ record: StoryRecord, _ effects: StoryEffects, _ incoming: IncomingEvent) {
        let state = record.state
        let moves = effects.transitions.map { "\($0.from.rawValue)→\($0.to.rawValue)" }.joined(separator: ", ")
        let what = effects.checkpoints.map(\.name).joined(separator: "; ")
        self.logger.info(
            "story \(state.storyID): \(what.isEmpty ? incoming.eventType : what) → \(state.status.rawValue) at \(state.currentGate)\(moves.isEmpty ? "" : " (\(moves))")",
            metadata: [
                "wave.session": "\(StoreIDs.display(state.sessionID))", "wave.from": "\(incoming.source ?? "")", "wave.retries": "\(state.retryCount)",
            ])
    }

    /// A task ran out of time: the story gets a timeout (a failure counted at its gate, a retry or
    /// an escalation), and the agent that held the task, if known, is told it is cancelled.
    func applyTimeout(_ task: TaskEntry) async {
        let incoming = IncomingEvent(
            messageID: "timeout-\(task.messageID)", eventType: "task.timeout", source: "orchestrator",
            sessionID: task.sessionID, storyID: task.storyID, event: .timeout(role: task.role), project: task.project)
        do {
            var work: [(story: StoryRecord, drafts: [TaskDraft])] = []
            _ = try await self.react(to: try await self.store.apply(incoming), incoming: incoming, signal: nil, dispatch: &work)
            await self.tasks.dispatch(work)
        } catch {
            self.logger.error("timeout not applied", metadata: ["wave.story": "\(task.storyID)", "wave.error": "\(error)"])
        }
        await self.tellAgents([task], reason: "timeout")
    }
}

extension OrchestratorCore {
    /// The session of the story a signal names (`nil` if unknown).
    func storySession(_ signal: Signal) async throws -> String? {
        guard let storyID = signal.envelope.storyIDForRouting else { return nil }
        do {
            return try await self.store.story(storyID, session: self.sessionID(of: signal)).state.sessionID
        } catch let error as StoreError where error.code == .notFound || error.code == .ambiguous {
            return nil
        }
    }
}

/// `gate.passed` and `gate.failed` (the pass rule decides: a reference agent's `gate.passed` with
/// `result: fail` is a failure; a `gate.failed` is a failure whatever it says) and `agent.error`
/// (a retry with backoff, a scheduled dispatch, up to the gate's limit, then an escalation; a
/// non-retryable error escalates at once). A run of them in one read is applied in one
/// transaction.
struct StoryEventHandler: BatchEventHandler {
    let core: OrchestratorCore
    var name: String { "story-event" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let handled = await self.handle(batch: [signal])
        await handled.followUp?()
        return try handled.results[0].get()
    }

    func handle(batch: [Signal]) async -> HandledBatch {
        var results = [Result<HandlerOutcome, any Error>?](repeating: nil, count: batch.count)
        var events: [(Signal, StoryEvent)] = []
        var positions: [Int] = []
        for (position, signal) in batch.enumerated() {
            switch await self.event(of: signal) {
            case .success(let event):
                events.append((signal, event))
                positions.append(position)
            case .failure(let refusal):
                results[position] = .success(refusal.outcome)
            }
        }
        let applied = await self.core.applyStoryEvents(events)
        for (position, result) in zip(positions, applied.results) { results[position] = result }
        return HandledBatch(results: results.map { $0! }, followUp: applied.followUp)
    }

    func event(of signal: Signal) async -> Result<StoryEvent, Refusal> {
        if self.core.tasks.timedOut(correlationID: signal.envelope.correlationID) {
            // The task ran out of time and was taken back: its late result is recorded, not applied.
            try? await self.core.store.bump("late_results")
            self.core.logger.info(
                "late result ignored: its task had timed out",
                metadata: [
                    "wave.story": "\(signal.envelope.storyIDForRouting ?? "")", "wave.correlation_id": "\(signal.envelope.correlationID ?? "")",
                ])
            return .failure(Refusal(outcome: .ignored(.lateResult)))
        }
        var payload = signal.envelope.payload
        if signal.envelope.eventType == .agentError {
            let message = payload["error"]?.stringValue ?? payload["message"]?.stringValue ?? "agent error"
            return .success(.agentError(message: message, retryable: payload["retryable"]?.boolValue ?? true, role: self.core.role(of: signal)))
        }
        guard let text = payload["gate_id"]?.stringValue ?? payload["gate"]?.stringValue else {
            return .failure(Refusal(outcome: .deadLetter(.invalidPayload("\(signal.envelope.eventType.rawValue) has no gate_id"))))
        }
        let gate: GateID
        do { gate = try GateID(parsing: text) } catch {
            return .failure(Refusal(outcome: .deadLetter(.invalidPayload("gate_id \(text) is not gate-0 … gate-7"))))
        }
        if signal.envelope.eventType == .gateFailed, GateOutcome(payload: payload) == .passed {
            payload["result"] = .string("fail")
        }
        return .success(.gateResult(GateResultInput(gate: gate, payload: payload, senderRole: self.core.role(of: signal), agentID: signal.envelope.agentID)))
    }
}

/// An outcome that stops a signal before the store (a dead letter with its reason).
struct Refusal: Error {
    let outcome: HandlerOutcome
}

/// `story.blocked` blocks the story (no more work, an escalation); `story.unblocked` (a system
/// event, usually announcing `wave story unblock`, already applied) resumes it and dispatches its
/// work again.
struct StoryBlockHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "story-block" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let payload = signal.envelope.payload
        if signal.envelope.eventType == .storyBlocked {
            var reason = payload["reason"]?.stringValue ?? "blocked"
            if let by = payload["blocked_by"]?.stringValue, !by.isEmpty { reason += " (blocked by \(by))" }
            let outcome = try await self.core.applyStoryEvent(signal, .blocked(reason: reason))
            if case .applied = outcome, let story = signal.envelope.storyIDForRouting,
                let record = try? await self.core.store.story(story, session: self.core.sessionID(of: signal))
            {
                self.core.tasks.forget(storyID: story, sessionID: record.state.sessionID)
            }
            return outcome
        }
        guard signal.kind != .signals else { return .ignored(.notOnSystemStream(signal.envelope.eventType)) }
        if let notServed = self.core.notServed(signal) { return notServed }
        let outcome = try await self.core.applyStoryEvent(signal, .unblocked(reason: payload["reason"]?.stringValue))
        try await self.core.tasks.redispatch(sessionID: self.core.storySession(signal))
        return outcome
    }
}

/// `story.recovered` and `gate.approved` announce changes an operator already committed: the
/// orchestrator re-reads the story and dispatches what it needs now.
struct StoryAnnouncementHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "story-announcement" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        guard signal.kind != .signals else { return .ignored(.notOnSystemStream(signal.envelope.eventType)) }
        if let notServed = self.core.notServed(signal) { return notServed }
        guard let sessionID = try await self.core.storySession(signal), let storyID = signal.envelope.storyIDForRouting else {
            return .deadLetter(.unknownStory("\(signal.envelope.eventType.rawValue) for \(signal.envelope.storyIDForRouting ?? "no story")"))
        }
        // What was out for the story before the operator's change is superseded.
        self.core.tasks.forget(storyID: storyID, sessionID: sessionID)
        try await self.core.tasks.redispatch(sessionID: sessionID)
        return .applied("re-read \(storyID)")
    }
}

extension EngineRejection: WaitsForEarlierSignal {
    /// A premature gate result waits for the result of the gate before it.
    public var waitsForEarlierSignal: Bool { self.code == "premature_gate" }
}
