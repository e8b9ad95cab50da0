import HeapModule
import Logging
import Synchronization
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

/// Puts the engine's task drafts on the agents' task streams (`wave:tasks:{p}:{role}`, WIRE.md,
/// Tasks), honouring emergency stops and session pauses, and remembers which tasks are out.
///
/// Nothing is held in memory that the store cannot give back: a task not dispatched because of a
/// stop or a pause is dispatched again from the store's in-flight scan when the stop is cleared or
/// the session resumed. A retry's backoff is a timer to its `notBefore` time (a deadline), never a
/// loop that looks again.
public final class TaskDispatcher: Sendable {
    /// Identifies a task: one role's work on one story at one gate.
    public struct Key: Hashable, Sendable, CustomStringConvertible {
        /// The session.
        public var sessionID: String
        /// The story.
        public var storyID: String
        /// The gate.
        public var gate: GateID
        /// The role.
        public var role: String

        public var description: String { "\(self.storyID)/\(self.gate)/\(self.role)" }
    }

    /// When a task's time is up.
    struct Deadline: Comparable {
        var at: Int64
        var key: Key
        var messageID: String

        static func < (a: Deadline, b: Deadline) -> Bool { a.at < b.at }
        static func == (a: Deadline, b: Deadline) -> Bool { a.at == b.at && a.messageID == b.messageID }
    }

    /// A story: the outstanding tasks are indexed by it, so that a result touches only its own.
    struct StoryKey: Hashable {
        var sessionID: String
        var storyID: String
    }

    struct State {
        var outstanding: [StoryKey: [Key: TaskEntry]] = [:]
        var timers: [Key: Task<Void, Never>] = [:]
        /// The deadlines of the tasks out, earliest first (an entry whose task was answered is
        /// dropped when it comes up), and the one timer that waits for the earliest.
        var deadlines = Heap<Deadline>()
        var deadlineTimer: Task<Void, Never>?
        var timerAt: Int64?
        /// The heap size at which answered deadlines are dropped next.
        var compactAt = 4_096
        /// Tasks that ran out of time (message ids, the newest 10 000): their late results are ignored.
        var timedOut: Set<String> = []
        var timedOutOrder: [String] = []
        var timeouts = 0
        /// Scopes under an emergency stop: `global` or project keys.
        var halted: Set<StopScope> = []
        /// The project key of every session that had work dispatched or scheduled, so that a
        /// halt finds its scope's tasks without asking the store (nothing may delay a halt).
        var projects: [String: String] = [:]
        var published = 0
        var held = 0
    }

    let bus: any EventBus
    let store: any StateStore
    let logger: Logger
    /// Publishes tasks, keeping them in the store's outbox while Redis is away.
    public let publisher: DurablePublisher
    /// The projects this instance serves: a task of another project is never claimed here.
    public let ownership: Ownership
    let state = Mutex(State())
    let timeoutHandler = Mutex<(@Sendable (TaskEntry) async -> Void)?>(nil)
    let publishedHandler = Mutex<(@Sendable ([TaskEntry]) async -> Void)?>(nil)

    /// Creates a dispatcher over a bus and a store.
    public init(bus: any EventBus, store: any StateStore, logger: Logger, ownership: Ownership = Ownership()) {
        self.bus = bus
        self.store = store
        self.logger = logger
        self.ownership = ownership
        self.publisher = DurablePublisher(bus: bus, store: store, logger: logger)
    }

    // MARK: Stops

    /// Halts dispatch for a scope: no new task goes out, every
    /// scheduled retry is cancelled, and the tasks out in the scope are withdrawn (returned, so
    /// that their agents can be told): a withdrawn task is not a failure, its late result is
    /// ignored, and it is dispatched again when the stop is cleared.
    @discardableResult
    public func halt(scope: StopScope) -> [TaskEntry] {
        let (timerKeys, outKeys) = self.state.withLock { state -> ([Key], [StoryKey]) in
            state.halted.insert(scope)
            return (Array(state.timers.keys), Array(state.outstanding.keys))
        }
        let projects = self.state.withLock { $0.projects }
        func inScope(_ sessionID: String) -> Bool {
            guard case .project = scope else { return true }
            guard let key = projects[sessionID] else { return false }
            return scope.covers(project: key)
        }
        let affectedTimers = timerKeys.filter { inScope($0.sessionID) }
        let affectedStories = outKeys.filter { inScope($0.sessionID) }
        let (timers, withdrawn) = self.state.withLock { state -> ([Task<Void, Never>], [TaskEntry]) in
            var withdrawn: [TaskEntry] = []
            for story in affectedStories {
                guard let tasks = state.outstanding.removeValue(forKey: story) else { continue }
                for entry in tasks.values {
                    withdrawn.append(entry)
                    self.remember(entry.messageID, in: &state)
                }
            }
            return (affectedTimers.compactMap { state.timers.removeValue(forKey: $0) }, withdrawn)
        }
        for timer in timers { timer.cancel() }
        return withdrawn
    }

    /// Remembers a task taken back (timed out or withdrawn): its late result is ignored.
    func remember(_ messageID: String, in state: inout State) {
        state.timedOut.insert(messageID)
        state.timedOutOrder.append(messageID)
        if state.timedOutOrder.count > 10_000 { state.timedOut.remove(state.timedOutOrder.removeFirst()) }
    }

    /// Lifts the halt of a scope; the caller dispatches again what the store holds.
    public func release(scope: StopScope) {
        _ = self.state.withLock { $0.halted.remove(scope) }
    }

    /// Whether dispatch for `project` is halted (by its own stop or a global one).
    public func isHalted(project: String) -> Bool {
        self.state.withLock { $0.halted.contains { $0.covers(project: project) } }
    }

    /// The scopes halted now.
    public var haltedScopes: Set<StopScope> { self.state.withLock { $0.halted } }

    // MARK: Tasks

    /// The tasks out now (dispatched, no result yet), by key.
    public var outstanding: [Key: TaskEntry] {
        self.state.withLock { state in state.outstanding.values.reduce(into: [:]) { $0.merge($1) { _, new in new } } }
    }

    /// How many tasks are out.
    public var outstandingCount: Int { self.state.withLock { $0.outstanding.values.reduce(0) { $0 + $1.count } } }

    /// Tasks published so far, and tasks held back by a stop or a pause.
    public var totals: (published: Int, held: Int) { self.state.withLock { ($0.published, $0.held) } }

    /// Tasks taken as out (claimed) and not yet on their streams: what ``prepare(_:sessions:now:)``
    /// returns and ``send(_:)`` publishes.
    public struct Claimed: Sendable {
        var due: [(key: Key, entry: TaskEntry, stream: String)] = []

        /// How many tasks it holds.
        public var count: Int { self.due.count }
    }

    /// Dispatches drafts for stories: critical and high priority first, each now or at its
    /// `notBefore` time, every task due now in one pipelined write. A task already out for the
    /// same key and attempt is not sent again.
    public func dispatch(_ work: [(story: StoryRecord, drafts: [TaskDraft])], now given: WaveTimestamp? = nil) async {
        await self.send(self.prepare(work, sessions: await self.sessions(of: work), now: given))
    }

    /// The sessions of the stories that have drafts, as the store has them now (what
    /// ``prepare(_:sessions:now:)`` checks: paused, in progress, the project).
    public func sessions(of work: [(story: StoryRecord, drafts: [TaskDraft])]) async -> [String: SessionRecord] {
        var sessions: [String: SessionRecord] = [:]
        for (story, drafts) in work where !drafts.isEmpty && sessions[story.state.sessionID] == nil {
            if let session = try? await self.store.session(id: story.state.sessionID) { sessions[story.state.sessionID] = session }
        }
        return sessions
    }

    /// The first half of ``dispatch(_:now:)``: schedules the drafts due later and takes the ones
    /// due now as out (a result, a stop or a pause that comes next sees them), without writing
    /// them; ``send(_:)`` writes them. The sessions come read already (``sessions(of:)``, on the
    /// store's executor with the transaction), so this makes no store call and runs wherever the
    /// caller is: the orchestrator claims a read's tasks on the event loop and sends them while
    /// the next read's transaction runs.
    public func prepare(
        _ work: [(story: StoryRecord, drafts: [TaskDraft])], sessions read: [String: SessionRecord], now given: WaveTimestamp? = nil
    )
        -> Claimed
    {
        let now = given ?? self.store.now()
        let ordered = work.filter { !$0.drafts.isEmpty }.sorted { Self.priority(of: $0.story) > Self.priority(of: $1.story) }
        var claimed = Claimed()
        guard !ordered.isEmpty else { return claimed }
        var sessions: [String: (SessionRecord, ProjectName)?] = [:]
        for (story, drafts) in ordered {
            let sessionID = story.state.sessionID
            if sessions[sessionID] == nil {
                sessions[sessionID] = .some(read[sessionID].flatMap { session in (try? ProjectName(session.project)).map { (session, $0) } })
                if let (_, project) = sessions[sessionID] ?? nil {
                    self.state.withLock { $0.projects[sessionID] = project.key }
                }
            }
            guard let (session, project) = sessions[sessionID] ?? nil else {
                self.logger.error("cannot dispatch: the story's session is gone", metadata: ["wave.story": "\(story.state.storyID)"])
                continue
            }
            for draft in drafts {
                let key = Key(sessionID: sessionID, storyID: story.state.storyID, gate: draft.gate, role: draft.role)
                if let notBefore = draft.notBefore, notBefore > now {
                    self.schedule(key, at: notBefore, now: now)
                } else if let entry = self.claim(key, draft: draft, story: story, session: session, project: project, now: now) {
                    claimed.due.append((key, entry, Channels.tasks(project, draft.role)))
                }
            }
        }
        return claimed
    }

    /// The second half of ``dispatch(_:now:)``: writes the claimed tasks that are still out (a
    /// stop, a pause or a result since the claim took some back) in one pipelined write, and
    /// arms their deadlines.
    public func send(_ claimed: Claimed) async {
        let due = self.state.withLock { state in
            claimed.due.filter { state.outstanding[StoryKey(sessionID: $0.key.sessionID, storyID: $0.key.storyID)]?[$0.key]?.messageID == $0.entry.messageID }
        }
        guard !due.isEmpty else { return }
        do {
            // On their streams now, or kept in the outbox until Redis is back: out either way
            // (their deadlines run from now).
            let sent = try await self.publisher.publish(entries: due.map { ($0.stream, $0.entry.fields) })
            self.state.withLock { $0.published += due.count }
            for (key, entry, _) in due { self.arm(key, entry) }
            if sent, let mirror = self.publishedHandler.withLock({ $0 }) { await mirror(due.map(\.entry)) }
            for (key, entry, _) in due {
                self.logger.info(
                    sent ? "task dispatched" : "task kept in the outbox",
                    metadata: [
                        "wave.story": "\(key.storyID)", "wave.gate": "\(key.gate)", "wave.role": "\(key.role)", "wave.action": "\(entry.action)",
                        "wave.attempt": "\(entry.attempt)", "wave.task_id": "\(entry.taskID)",
                    ])
            }
        } catch {
            // Neither on the bus nor in the outbox (the store failed): not out; the next in-flight
            // scan (restart, clear, resume) dispatches them again.
            self.state.withLock { state in
                for (key, _, _) in due { _ = state.outstanding[StoryKey(sessionID: key.sessionID, storyID: key.storyID)]?.removeValue(forKey: key) }
            }
            self.logger.error("tasks not dispatched", metadata: ["wave.count": "\(due.count)", "wave.error": "\(error)"])
        }
    }

    /// Forgets the tasks of a story (it finished or was cancelled) and cancels its timers.
    public func forget(storyID: String, sessionID: String) {
        let timers = self.state.withLock { state -> [Task<Void, Never>] in
            state.outstanding[StoryKey(sessionID: sessionID, storyID: storyID)] = nil
            guard !state.timers.isEmpty else { return [] }
            let mine = state.timers.filter { $0.key.storyID == storyID && $0.key.sessionID == sessionID }
            for key in mine.keys { state.timers[key] = nil }
            return Array(mine.values)
        }
        for timer in timers { timer.cancel() }
    }

    /// Forgets every task out and every timer of a project's sessions: the instance no longer
    /// serves the project, and its new owner re-arms them from the store and the agents' streams.
    /// - Returns: how many tasks were forgotten.
    @discardableResult
    public func forget(project: String) -> Int {
        let (timers, count) = self.state.withLock { state -> ([Task<Void, Never>], Int) in
            let sessions = Set(state.projects.filter { $0.value == project }.map(\.key))
            guard !sessions.isEmpty else { return ([], 0) }
            var count = 0
            for story in Array(state.outstanding.keys) where sessions.contains(story.sessionID) {
                count += state.outstanding.removeValue(forKey: story)?.count ?? 0
            }
            let mine = state.timers.filter { sessions.contains($0.key.sessionID) }
            for key in mine.keys { state.timers[key] = nil }
            return (Array(mine.values), count)
        }
        for timer in timers { timer.cancel() }
        return count
    }

    /// Whether this task (this attempt) is still out: dispatched, not answered, not taken back.
    public func isOut(_ entry: TaskEntry) -> Bool {
        let key = Key(sessionID: entry.sessionID, storyID: entry.storyID, gate: entry.gate, role: entry.role)
        return self.state.withLock { $0.outstanding[StoryKey(sessionID: entry.sessionID, storyID: entry.storyID)]?[key]?.messageID == entry.messageID }
    }

    /// What else to do with tasks once they are on their streams (the legacy bridge also writes
    /// them for the reference's workers).
    public func onPublished(_ handler: @escaping @Sendable ([TaskEntry]) async -> Void) {
        self.publishedHandler.withLock { $0 = handler }
    }

    /// Marks the tasks of a story at a gate as answered (a result for that gate was applied).
    public func answered(storyID: String, sessionID: String, gate: GateID, role: String?) {
        let story = StoryKey(sessionID: sessionID, storyID: storyID)
        self.state.withLock { state in
            // In place: a copy of the story's tasks taken out and put back costs a copy of them
            // per result.
            guard let answered = state.outstanding[story]?.keys.filter({ $0.gate == gate && (role == nil || $0.role == role) }), !answered.isEmpty
            else { return }
            for key in answered { state.outstanding[story]?[key] = nil }
            if state.outstanding[story]?.isEmpty == true { state.outstanding[story] = nil }
        }
    }

    // MARK: Deadlines

    /// What to do when a task runs out of time (the orchestrator applies a timeout to the story).
    public func onTimeout(_ handler: @escaping @Sendable (TaskEntry) async -> Void) {
        self.timeoutHandler.withLock { $0 = handler }
    }

    /// Whether the task a result answers (its `correlation_id`) ran out of time or was withdrawn
    /// by a stop: such a late result is recorded and ignored.
    public func timedOut(correlationID: String?) -> Bool {
        guard let correlationID else { return false }
        return self.state.withLock { $0.timedOut.contains(correlationID) }
    }

    /// Tasks that ran out of time so far.
    public var timeouts: Int { self.state.withLock { $0.timeouts } }

    /// Arms a task's deadline: if it is still out then, it is taken back and the timeout applied.
    /// One timer waits for the earliest deadline of all (tasks of a gate share a timeout, so a
    /// new deadline is almost always the latest and re-arms nothing).
    func arm(_ key: Key, _ entry: TaskEntry) {
        self.state.withLock { state in
            state.deadlines.insert(Deadline(at: entry.deadline.microsecondsSinceEpoch, key: key, messageID: entry.messageID))
            // Answered tasks leave their deadline behind; keep only the live ones now and then.
            if state.deadlines.count > state.compactAt {
                state.deadlines = Heap(
                    state.outstanding.values.flatMap { tasks in
                        tasks.map { Deadline(at: $0.value.deadline.microsecondsSinceEpoch, key: $0.key, messageID: $0.value.messageID) }
                    })
                state.compactAt = max(4_096, 4 * state.deadlines.count)
            }
            self.rearm(&state)
        }
    }

    /// Points the timer at the earliest deadline, if it is not already.
    func rearm(_ state: inout State) {
        guard let earliest = state.deadlines.min?.at else {
            state.deadlineTimer?.cancel()
            (state.deadlineTimer, state.timerAt) = (nil, nil)
            return
        }
        if let armed = state.timerAt, armed <= earliest, state.deadlineTimer != nil { return }
        state.deadlineTimer?.cancel()
        state.timerAt = earliest
        let delay = Duration.microseconds(max(0, earliest - WaveTimestamp.now().microsecondsSinceEpoch))
        state.deadlineTimer = Task { [weak self] in
            // sleep: deadline
            do { try await Task.sleep(for: delay) } catch { return }
            await self?.expire()
        }
    }

    /// Takes back every task whose deadline has passed and applies its timeout.
    func expire() async {
        let now = WaveTimestamp.now().microsecondsSinceEpoch
        let expired = self.state.withLock { state -> [(Key, TaskEntry)] in
            (state.deadlineTimer, state.timerAt) = (nil, nil)
            var expired: [(Key, TaskEntry)] = []
            while let first = state.deadlines.min, first.at <= now {
                _ = state.deadlines.removeMin()
                let story = StoryKey(sessionID: first.key.sessionID, storyID: first.key.storyID)
                guard let entry = state.outstanding[story]?[first.key], entry.messageID == first.messageID else { continue }
                state.outstanding[story]?[first.key] = nil
                self.remember(entry.messageID, in: &state)
                state.timeouts += 1
                expired.append((first.key, entry))
            }
            self.rearm(&state)
            return expired
        }
        let handler = self.timeoutHandler.withLock { $0 }
        for (key, entry) in expired {
            self.logger.warning("task timed out", metadata: ["wave.task": "\(key)", "wave.task_id": "\(entry.taskID)", "wave.deadline": "\(entry.deadline)"])
            await handler?(entry)
        }
    }

    /// Takes as out the tasks still waiting in the agents' streams (pending with an agent, or not
    /// yet read) that working stories need now (same story, gate, role and attempt): at start, so
    /// that a restart does not hand an agent a second copy of a task it holds or will read. A
    /// task whose agent died is reclaimed by another agent of the role after the lease; its
    /// deadline runs from when it was first dispatched.
    /// - Returns: how many tasks were adopted.
    @discardableResult
    public func adopt(_ entries: [TaskEntry], needed: [InFlightStory]) -> Int {
        var wanted: [Key: Int] = [:]
        for item in needed {
            for draft in item.tasks {
                let key = Key(sessionID: item.story.state.sessionID, storyID: item.story.state.storyID, gate: draft.gate, role: draft.role)
                wanted[key] = item.story.state.gateFailures[draft.gate.number] + 1
            }
        }
        var adopted: [(Key, TaskEntry)] = []
        self.state.withLock { state in
            for entry in entries {
                let key = Key(sessionID: entry.sessionID, storyID: entry.storyID, gate: entry.gate, role: entry.role)
                guard wanted[key] == entry.attempt else { continue }
                let story = StoryKey(sessionID: key.sessionID, storyID: key.storyID)
                if let existing = state.outstanding[story]?[key], existing.attempt >= entry.attempt { continue }
                state.outstanding[story, default: [:]][key] = entry
                if let project = try? ProjectName(entry.project) { state.projects[key.sessionID] = project.key }
                adopted.append((key, entry))
            }
        }
        for (key, entry) in adopted { self.arm(key, entry) }
        return adopted.count
    }

    /// The working stories' tasks that are not out now for their current attempt (what a
    /// recovery scan would dispatch again), each story with only those drafts.
    public func notOut(_ needed: [InFlightStory]) -> [InFlightStory] {
        self.state.withLock { state in
            needed.compactMap { item in
                let story = StoryKey(sessionID: item.story.state.sessionID, storyID: item.story.state.storyID)
                let drafts = item.tasks.filter { draft in
                    let key = Key(sessionID: story.sessionID, storyID: story.storyID, gate: draft.gate, role: draft.role)
                    return state.outstanding[story]?[key]?.attempt != item.story.state.gateFailures[draft.gate.number] + 1
                }
                return drafts.isEmpty ? nil : InFlightStory(story: item.story, tasks: drafts)
            }
        }
    }

    /// Takes as out the tasks whose results already wait in the signals stream (answered by
    /// their agents, not yet applied: the previous instance died between the agent's answer and
    /// its own commit), so that a restart or a take-over does not send them a second time. Each
    /// stands for the task until its result is applied (``answered(storyID:sessionID:gate:role:)``);
    /// a result that turns out not to settle it (refused, late) leaves its deadline to run, which
    /// counts a failure and retries, as for any task that was never answered.
    /// - Parameters:
    ///   - results: the result signals waiting (`gate.passed`, `gate.failed`, `agent.error`).
    ///   - needed: the working stories and the tasks their current gates need.
    ///   - roleMap: agent id → role, where the id's prefix does not say.
    /// - Returns: how many tasks were taken as answered.
    @discardableResult
    public func adoptAnswered(_ results: [Envelope], needed: [InFlightStory], roleMap: [String: String] = [:]) async -> Int {
        let now = self.store.now()
        var waiting: [String: [(role: String?, gate: GateID?, session: String?, correlation: String?)]] = [:]
        for envelope in results where [.gatePassed, .gateFailed, .agentError].contains(envelope.eventType) {
            guard let story = envelope.storyIDForRouting else { continue }
            let gateText = envelope.payload["gate_id"]?.stringValue ?? envelope.payload["gate"]?.stringValue
            let session = envelope.sessionID ?? envelope.payload["session_id"]?.stringValue
            waiting[story, default: []].append(
                (
                    envelope.senderRole(roleMap: roleMap), gateText.flatMap { try? GateID(parsing: $0) },
                    session.map(StoreIDs.normalize), envelope.correlationID
                ))
        }
        guard !waiting.isEmpty else { return 0 }
        var entries: [TaskEntry] = []
        var projects: [String: String] = [:]  // session → project key, read once per session
        for item in needed {
            let state = item.story.state
            guard let answers = waiting[state.storyID] else { continue }
            for draft in item.tasks {
                // A result of this story, from the draft's role, for its gate (or naming none, as
                // an agent error may), and not for another session of the same story id.
                guard
                    let answer = answers.first(where: { answer in
                        answer.role == draft.role && (answer.gate == nil || answer.gate == draft.gate)
                            && (answer.session == nil || answer.session == StoreIDs.normalize(state.sessionID))
                    })
                else { continue }
                let timeout = self.store.engine.configuration.gates[draft.gate.number].timeout
                if projects[state.sessionID] == nil { projects[state.sessionID] = await self.projectKey(ofSession: state.sessionID) ?? "" }
                let id = answer.correlation ?? MessageID.makeTimeOrdered()
                entries.append(
                    TaskEntry(
                        taskID: id, storyID: state.storyID, sessionID: state.sessionID, role: draft.role, action: draft.action, gate: draft.gate,
                        attempt: state.gateFailures[draft.gate.number] + 1, deadline: now.adding(timeout), messageID: id, timestamp: now,
                        project: projects[state.sessionID] ?? ""
                    ))
            }
        }
        return self.adopt(entries, needed: needed)
    }

    /// Dispatches again, from the store, every task that working stories need and that is not
    /// out: at start (recovery), when a stop is cleared and when a session resumes.
    /// - Parameter sessionID: only this session's stories; `nil`: all.
    public func redispatch(sessionID: String? = nil) async throws {
        // A task out for the same attempt is not sent again (``send``); a scheduled retry is
        // scheduled again for the same time.
        let inFlight = try await self.store.inFlightStories().filter { sessionID == nil || $0.story.state.sessionID == sessionID }
        await self.dispatch(inFlight.map { (story: $0.story, drafts: $0.tasks) })
    }

    /// The task entry for a draft, recorded as out; `nil` when it must not go out now (a stop, a
    /// pause, a session not in progress) or is out already for the same attempt.
    func claim(_ key: Key, draft: TaskDraft, story: StoryRecord, session: SessionRecord, project: ProjectName, now: WaveTimestamp) -> TaskEntry? {
        // Another instance serves the project (its lease): it sends the project's tasks.
        guard self.ownership.serves(project.key) else { return nil }
        guard !self.isHalted(project: project.key), !session.isPaused, session.status == .inProgress else {
            self.state.withLock { $0.held += 1 }
            self.logger.debug(
                "task held back", metadata: ["wave.task": "\(key)", "wave.why": "\(session.isPaused ? "session paused" : "stopped or not in progress")"])
            return nil
        }
        let attempt = story.state.gateFailures[draft.gate.number] + 1
        let storyKey = StoryKey(sessionID: key.sessionID, storyID: key.storyID)
        let timeout = self.store.engine.configuration.gates[draft.gate.number].timeout
        var payload: [String: JSONValue] = [
            "title": .string(story.title), "domain": .string(story.state.domain), "agent": .string(story.state.agent),
        ]
        if let feedback = draft.feedback { payload["feedback"] = .string(feedback) }
        let entry = TaskEntry(
            taskID: MessageID.makeTimeOrdered(), storyID: story.state.storyID, sessionID: story.state.sessionID, role: draft.role, action: draft.action,
            gate: draft.gate, payload: payload, priority: Self.priority(of: story), attempt: attempt, deadline: now.adding(timeout),
            messageID: MessageID.makeTimeOrdered(), timestamp: now, project: session.project
        )
        return self.state.withLock { state -> TaskEntry? in
            // Checked again where the entry goes in: a stop that came since the first look took its
            // snapshot of the tasks out without this one, so this one must not go out.
            if state.halted.contains(where: { $0.covers(project: project.key) }) {
                state.held += 1
                return nil
            }
            if let existing = state.outstanding[storyKey]?[key], existing.attempt == attempt { return nil }
            state.outstanding[storyKey, default: [:]][key] = entry
            return entry
        }
    }

    func schedule(_ key: Key, at notBefore: WaveTimestamp, now: WaveTimestamp) {
        let delay = notBefore.duration(since: now)
        let sessionID = key.sessionID
        let timer = Task { [weak self] in
            // A deadline: the retry's backoff ends, then the task goes out (if nothing cancelled it).
            // sleep: deadline
            do { try await Task.sleep(for: delay) } catch { return }
            guard let self else { return }
            self.state.withLock { _ = $0.timers.removeValue(forKey: key) }
            try? await self.redispatch(sessionID: sessionID)
        }
        let previous = self.state.withLock { state -> Task<Void, Never>? in
            defer { state.timers[key] = timer }
            return state.timers[key]
        }
        previous?.cancel()
        self.logger.info("retry scheduled", metadata: ["wave.task": "\(key)", "wave.at": "\(notBefore)"])
    }

    /// Cancels every timer (shutdown).
    public func cancelTimers() {
        let timers = self.state.withLock { state -> [Task<Void, Never>] in
            defer {
                state.timers.removeAll()
                state.deadlines = Heap()
                (state.deadlineTimer, state.timerAt) = (nil, nil)
            }
            return Array(state.timers.values) + (state.deadlineTimer.map { [$0] } ?? [])
        }
        for timer in timers { timer.cancel() }
    }

    func projectKey(ofSession id: String) async -> String? {
        guard let session = try? await self.store.session(id: id) else { return nil }
        return try? ProjectName(session.project).key
    }

    /// `P0` → critical, `P1` → high, `P3`… → low, else normal.
    static func priority(of story: StoryRecord) -> Priority {
        switch story.priority?.uppercased() {
        case "P0", "CRITICAL": .critical
        case "P1", "HIGH": .high
        case "P3", "P4", "LOW": .low
        default: .normal
        }
    }
}
