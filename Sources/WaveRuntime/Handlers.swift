import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

/// What the standard handlers share: the store, the bus, task dispatch and the roster, and the
/// reactions to an applied change (tasks, escalations, the next stories and sessions).
struct OrchestratorCore: Sendable {
    let store: any StateStore
    let bus: any EventBus
    let tasks: TaskDispatcher
    let roster: AgentRoster
    let roleMap: [String: String]
    /// The legacy task bridge, when on: tasks taken back are withdrawn from the workers' lists too.
    let legacy: LegacyTaskBridge?
    let logger: Logger

    func registerStandardHandlers(in registry: inout HandlerRegistry) {
        registry.register(StoryEventHandler(core: self), for: .gatePassed, .gateFailed, .agentError)
        registry.register(StoryBlockHandler(core: self), for: .storyBlocked, .storyUnblocked)
        registry.register(StoryAnnouncementHandler(core: self), for: .storyRecovered, .gateApproved)
        registry.register(SessionHandler(core: self), for: .sessionPaused, .sessionResumed, .sessionCreated, .sessionCancelled)
        registry.register(EmergencyHandler(core: self), for: .systemEmergencyStop, .systemEmergencyCleared)
        registry.register(AgentPresenceHandler(core: self), for: .agentReady, .agentBusy, .systemHealth)
        // Wave's own notices come back on the system streams that every instance reads.
        registry.register(NoticeHandler(), for: .escalationRaised, .sessionBudgetWarning)
    }

    // MARK: Applying a story event

    /// Applies a story event from a signal through the store (one transaction) and reacts.
    func applyStoryEvent(_ signal: Signal, _ event: StoryEvent) async throws -> HandlerOutcome {
        try await self.applyStoryEvents([(signal, event)])[0].get()
    }

    /// The store's message for a signal's story event, or the outcome when it names no story.
    func incoming(_ signal: Signal, _ event: StoryEvent) -> Result<IncomingEvent, Refusal> {
        let envelope = signal.envelope
        guard let storyID = envelope.storyIDForRouting else {
            return .failure(Refusal(outcome: .deadLetter("missing_story_id: \(envelope.eventType.rawValue) names no story (envelope or payload story_id)")))
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
    /// reacts to each and dispatches every task that follows in one pipelined write. Each result
    /// is what applying that signal alone gives.
    func applyStoryEvents(_ items: [(Signal, StoryEvent)]) async -> [Result<HandlerOutcome, any Error>] {
        // On the store's executor: the transaction and the reactions' store calls cost no thread
        // hop, and a transaction that waits for another process's lock never holds the event loop
        // (where the reads arrive, and where an emergency stop halts dispatch meanwhile).
        // The tasks that follow go out from the event loop, after the commit.
        let (results, work) = await withTaskExecutorPreference(self.store.executor) { await self.applyOnStoreExecutor(items) }
        await self.tasks.dispatch(work)
        return results
    }

    func applyOnStoreExecutor(
        _ items: [(Signal, StoryEvent)]
    ) async -> (results: [Result<HandlerOutcome, any Error>], work: [(story: StoryRecord, drafts: [TaskDraft])]) {
        var results = [Result<HandlerOutcome, any Error>?](repeating: nil, count: items.count)
        var positions: [Int] = []
        var batch: [IncomingEvent] = []
        for (position, (signal, event)) in items.enumerated() {
            switch self.incoming(signal, event) {
            case .success(let incoming) where self.tasks.timedOut(correlationID: incoming.correlationID):
                // Taken back (its deadline, a stop) in this process a moment ago, perhaps before
                // the store's mark is written: late, as the store would say.
                try? await self.store.bump("late_results")
                results[position] = .success(.ignored("late_result"))
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
                    results[position] = .success(.deadLetter("unknown_story: \(error.message)"))
                case .failure(let error as StoreError) where error.code == .ambiguous:
                    results[position] = .success(.deadLetter("ambiguous_story: \(error.message)"))
                case .failure(let error as StoreError) where error.code == .withdrawn:
                    // Taken back by a stop or its deadline while the result waited: late, as below.
                    try? await self.store.bump("late_results")
                    results[position] = .success(.ignored("late_result"))
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
            return .ignored(reason.rawValue)
        case .duplicate:
            return .duplicate
        case .staleSequence(let last):
            self.logger.info("stale signal", metadata: ["wave.story": "\(incoming.storyID)", "wave.seq": "\(incoming.seq ?? 0)", "wave.last_seq": "\(last)"])
            return .ignored("stale_seq")
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

    /// Starts the stories of a session that became ready and, when the session is over, the next
    /// session of its project.
    func advanceSession(_ sessionID: String) async throws {
        let started = try await self.store.startReadyStories(session: sessionID)
        for (record, _) in started {
            self.logger.info("story \(record.state.storyID): started", metadata: ["wave.session": "\(StoreIDs.display(sessionID))"])
        }
        await self.tasks.dispatch(started.map { ($0.0, $0.1.dispatches) })
        let session = try await self.store.session(id: sessionID)
        guard session.status.isTerminal else { return }
        self.logger.info(
            "session \(session.displayID): \(session.status.rawValue) (\(session.storiesCompleted) of \(session.storyCount) stories complete, \(session.storiesFailed) failed)"
        )
        try await self.advanceProject(session.project)
    }

    /// Starts the project's oldest pending session if none is in progress, and the ready stories
    /// of every session in progress.
    func advanceProject(_ project: String) async throws {
        if let next = try await self.store.startNextSession(project: project) {
            for session in try await self.store.sessionsInProgress(project: project) where session.id == next.id {
                let started = try await self.store.startReadyStories(session: session.id)
                if !started.isEmpty {
                    self.logger.info("session \(session.displayID) in progress: \(started.count) stories started", metadata: ["wave.project": "\(project)"])
                }
                await self.tasks.dispatch(started.map { ($0.0, $0.1.dispatches) })
            }
        }
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

    /// Tells the agents that hold tasks (as their `agent.busy` said) that the tasks are cancelled
    /// (`task.cancelled` on `wave:agent:{p}:{agent}`, WIRE.md), and withdraws them from the
    /// reference workers' lists when the legacy bridge is on.
    func tellAgents(_ tasks: [TaskEntry], reason: String) async {
        guard !tasks.isEmpty else { return }
        await self.legacy?.withdraw(tasks, reason: reason)
        let agents = self.roster.all
        for task in tasks {
            guard let project = try? ProjectName(task.project),
                let agent = agents.first(where: { $0.currentTask == task.taskID || $0.currentTask == task.messageID })
            else { continue }
            try? await self.publishNotice(
                Envelope(
                    eventType: .taskCancelled, payload: ["task_id": .string(task.taskID), "reason": .string(reason)], source: "orchestrator",
                    project: task.project, priority: .high, sessionID: task.sessionID, storyID: task.storyID, correlationID: task.messageID
                ), to: Channels.agent(project, agent.id))
        }
    }

    // MARK: The reference's emergency channel

    /// Listens on the reference's `wave:emergency` channel: `HALT` sets a global stop from a
    /// legacy trigger, `RESUME` clears only a stop that came from one. After every (re)subscribe
    /// the keys are reconciled, so a stop published while disconnected is not missed. Throws when
    /// the subscription or a reconcile fails (Redis away, its breaker open): the orchestrator
    /// runs it under supervision (``supervised(_:logger:policy:restarts:_:)``), which subscribes
    /// again after a backoff, so the channel is never left unheard.
    func listenForLegacyEmergency(projects: [ProjectName]) async throws {
        try await self.bus.withSubscription(channels: [Channels.Legacy.emergencyChannel]) { events in
            for await event in events {
                switch event {
                case .subscribed:
                    for stop in try await EmergencyKeys.reconcile(store: self.store, bus: self.bus, projects: projects, logger: self.logger) {
                        self.tasks.halt(scope: stop.scope)
                    }
                case .message(_, let payload):
                    await self.legacyEmergency(payload)
                }
            }
        }
    }

    /// One message of the reference's channel: `{"action":"HALT"|"RESUME","reason":…,"timestamp":…}`.
    func legacyEmergency(_ payload: String) async {
        let object = JSONValue(jsonText: payload)?.objectValue ?? [:]
        let reason = object["reason"]?.stringValue ?? "legacy \(object["action"]?.stringValue ?? "message")"
        let emergency = EmergencyResponse(core: self)
        do {
            switch object["action"]?.stringValue?.uppercased() {
            case "HALT":
                try await emergency.stop(.global, reason: reason, by: "legacy", source: "legacy")
            case "RESUME":
                guard try await emergency.clear(.global, by: "legacy", reason: reason, onlySource: "legacy") else {
                    self.logger.warning("legacy RESUME ignored: the global stop, if any, was not set by a legacy trigger")
                    return
                }
            default:
                self.logger.warning("unknown message on the legacy emergency channel", metadata: ["wave.payload": "\(payload.prefix(200))"])
            }
        } catch {
            self.logger.error("legacy emergency message not applied", metadata: ["wave.error": "\(error)"])
        }
    }

    // MARK: Notices

    func announceEscalations(of messageID: String, project: ProjectName?) async throws {
        for escalation in try await self.store.escalations(messageID: messageID) {
            self.logger.warning(
                "escalation \(escalation.kind): \(escalation.reason)",
                metadata: [
                    "wave.story": "\(escalation.storyID ?? "")", "wave.escalation": "\(escalation.id)",
                ])
            guard let project = try await self.project(of: escalation.sessionID) ?? project else { continue }
            try await self.publishNotice(
                Envelope(
                    eventType: .escalationRaised,
                    payload: [
                        "escalation_id": .string(StoreIDs.display(escalation.id)), "kind": .string(escalation.kind), "detail": .string(escalation.reason),
                    ],
                    source: "orchestrator", project: project.key, priority: .high,
                    sessionID: escalation.sessionID.map(StoreIDs.display), storyID: escalation.storyID
                ), project: project)
        }
    }

    func announceBudget(sessionID: String, paused: Bool) async throws {
        let session = try await self.store.session(id: sessionID)
        guard let project = try? ProjectName(session.project) else { return }
        let ratio = session.budgetUSD > 0 ? session.actualCostUSD / session.budgetUSD : 0
        self.logger.warning(
            "session \(session.displayID): \(paused ? "over budget, paused" : "budget warning") (\(session.actualCostUSD) of \(session.budgetUSD) USD)")
        try await self.publishNotice(
            Envelope(
                eventType: .sessionBudgetWarning,
                payload: [
                    "budget_usd": .number(session.budgetUSD), "actual_cost_usd": .number(session.actualCostUSD), "ratio": .number(ratio),
                    "paused": .bool(paused),
                ],
                source: "orchestrator", project: session.project, priority: .high, sessionID: session.displayID
            ), project: project)
    }

    /// Publishes a notice (on the project's system stream unless `stream` says otherwise); a
    /// failure is logged, not thrown (the change it announces is committed).
    func publishNotice(_ envelope: Envelope, project: ProjectName? = nil, to stream: String? = nil) async throws {
        guard let stream = stream ?? project.map(Channels.system) else { return }
        do {
            try await self.tasks.publisher.publish(entries: [(stream, envelope.fields)])
        } catch {
            self.logger.error("notice not published", metadata: ["wave.event": "\(envelope.eventType.rawValue)", "wave.error": "\(error)"])
        }
    }

    func project(of sessionID: String?) async throws -> ProjectName? {
        guard let sessionID else { return nil }
        return try? ProjectName(try await self.store.session(id: sessionID).project)
    }

    /// The session a session event names: the envelope's `session_id`, else the payload's.
    func sessionID(of signal: Signal) -> String? {
        let id = signal.envelope.sessionID ?? signal.envelope.payload["session_id"]?.stringValue
        return id.flatMap { $0.isEmpty ? nil : $0 }
    }

    func role(of signal: Signal) -> String? {
        signal.envelope.senderRole(roleMap: self.roleMap)
    }
}

// MARK: - The standard handlers

/// `gate.passed` and `gate.failed` (the pass rule decides: a reference agent's `gate.passed` with
/// `result: fail` is a failure; a `gate.failed` is a failure whatever it says) and `agent.error`
/// (a retry with backoff, a scheduled dispatch, up to the gate's limit, then an escalation; a
/// non-retryable error escalates at once). A run of them in one read is applied in one
/// transaction.
struct StoryEventHandler: BatchEventHandler {
    let core: OrchestratorCore
    var name: String { "story-event" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        try await self.handle(batch: [signal])[0].get()
    }

    func handle(batch: [Signal]) async -> [Result<HandlerOutcome, any Error>] {
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
        for (position, result) in zip(positions, await self.core.applyStoryEvents(events)) { results[position] = result }
        return results.map { $0! }
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
            return .failure(Refusal(outcome: .ignored("late_result")))
        }
        var payload = signal.envelope.payload
        if signal.envelope.eventType == .agentError {
            let message = payload["error"]?.stringValue ?? payload["message"]?.stringValue ?? "agent error"
            return .success(.agentError(message: message, retryable: payload["retryable"]?.boolValue ?? true, role: self.core.role(of: signal)))
        }
        guard let text = payload["gate_id"]?.stringValue ?? payload["gate"]?.stringValue else {
            return .failure(Refusal(outcome: .deadLetter("invalid_payload: \(signal.envelope.eventType.rawValue) has no gate_id")))
        }
        let gate: GateID
        do { gate = try GateID(parsing: text) } catch {
            return .failure(Refusal(outcome: .deadLetter("invalid_payload: gate_id \(text) is not gate-0 … gate-7")))
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
        guard signal.kind != .signals else { return .ignored("unblock_not_on_system_stream") }
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
        guard signal.kind != .signals else { return .ignored("announcement_not_on_system_stream") }
        guard let sessionID = try await self.core.storySession(signal), let storyID = signal.envelope.storyIDForRouting else {
            return .deadLetter("unknown_story: \(signal.envelope.eventType.rawValue) for \(signal.envelope.storyIDForRouting ?? "no story")")
        }
        // What was out for the story before the operator's change is superseded.
        self.core.tasks.forget(storyID: storyID, sessionID: sessionID)
        try await self.core.tasks.redispatch(sessionID: sessionID)
        return .applied("re-read \(storyID)")
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

/// `session.paused` (no new dispatch; in-flight work finishes and its results apply),
/// `session.resumed`, `session.created` and `session.cancelled`.
struct SessionHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "session" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        if envelope.eventType == .sessionCreated, let project = signal.project {
            try await self.core.advanceProject(project.key)
            return .applied("sessions of \(project.key) advanced")
        }
        guard let id = self.core.sessionID(of: signal) else {
            return .deadLetter("missing_session_id: \(envelope.eventType.rawValue) names no session")
        }
        let session: SessionRecord
        do {
            session = try await self.core.store.session(id: id)
        } catch let error as StoreError where error.code == .notFound {
            return .deadLetter("unknown_session: \(error.message)")
        }
        let reason = envelope.payload["reason"]?.stringValue
        do {
            switch envelope.eventType {
            case .sessionPaused:
                guard !session.status.isTerminal else { return .ignored("session_\(session.status.rawValue)") }
                try await self.core.store.pauseSession(session.id, messageID: envelope.messageID)
                self.core.logger.info(
                    "session \(session.displayID): paused; in-flight work finishes, nothing new is dispatched", metadata: ["wave.reason": "\(reason ?? "")"])
                return .applied("paused")
            case .sessionResumed:
                guard signal.kind != .signals else { return .ignored("resume_not_on_system_stream") }
                guard !session.status.isTerminal else { return .ignored("session_\(session.status.rawValue)") }
                try await self.core.store.resumeSession(session.id, messageID: envelope.messageID)
                self.core.logger.info("session \(session.displayID): resumed")
                try await self.core.tasks.redispatch(sessionID: session.id)
                try await self.core.advanceSession(session.id)
                return .applied("resumed")
            case .sessionCancelled:
                guard signal.kind != .signals else { return .ignored("cancel_not_on_system_stream") }
                if !session.status.isTerminal {
                    try await self.core.store.cancelSession(session.id, reason: reason ?? "cancelled", messageID: envelope.messageID)
                }
                for story in try await self.core.store.stories(session: session.id) {
                    self.core.tasks.forget(storyID: story.state.storyID, sessionID: session.id)
                }
                self.core.logger.info("session \(session.displayID): cancelled")
                try await self.core.advanceProject(session.project)
                return .applied("cancelled")
            default:
                return .ignored("not_a_session_event")
            }
        } catch let error as StoreError where error.code == .notAllowed {
            return .ignored("not_allowed: \(error.message)")
        }
    }
}

/// `system.emergency_stop` (from any stream) records the stop and halts dispatch for its scope;
/// `system.emergency_cleared` (only from the system streams) lifts it and dispatches again.
struct EmergencyHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "emergency" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        let scope: StopScope = signal.kind == .systemGlobal ? .global : (signal.project.map(StopScope.project) ?? .global)
        let by = envelope.payload["by"]?.stringValue ?? envelope.source
        let reason = envelope.payload["reason"]?.stringValue ?? "emergency stop"
        let emergency = EmergencyResponse(core: self.core)
        if envelope.eventType == .systemEmergencyStop {
            try await emergency.stop(scope, reason: reason, by: by, messageID: envelope.messageID)
            return .applied("stopped \(scope)")
        }
        guard signal.kind != .signals else { return .ignored("clear_not_on_system_stream") }
        try await emergency.clear(scope, by: by, reason: reason, messageID: envelope.messageID)
        return .applied("cleared \(scope)")
    }
}

/// `agent.ready`, `agent.busy` and `system.health`: the roster (availability, the task's lease);
/// cost and tokens they carry for a story add up into it.
struct AgentPresenceHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "agent-presence" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        guard let agentID = envelope.agentID else { return .ignored("no_agent_id") }
        let status = envelope.eventType == .agentReady ? "ready" : "busy"
        self.core.roster.heard(
            from: agentID, role: self.core.role(of: signal), project: signal.project?.key, status: status,
            task: envelope.payload["task_id"]?.stringValue ?? envelope.correlationID)
        let reportsCost = (envelope.payload["cost_usd"]?.numberValue ?? 0) > 0 || (envelope.payload["tokens"]?.numberValue ?? 0) > 0
        if reportsCost, envelope.storyIDForRouting != nil {
            return try await self.core.applyStoryEvent(signal, .report)
        }
        return .applied("\(agentID) \(status)")
    }
}

/// Wave's own notices (`escalation.raised`, `session.budget_warning`) read back from the system
/// streams: for operators and dashboards; nothing to do.
struct NoticeHandler: EventHandler {
    var name: String { "notice" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome { .ignored("notice") }
}
