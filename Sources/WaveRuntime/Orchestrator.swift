import Logging
import ServiceLifecycle
import Synchronization
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveStore

/// How an orchestrator instance runs.
public struct OrchestratorConfiguration: Sendable {
    /// The projects it serves (its streams: `wave:signals:{p}`, `wave:system:{p}`).
    public var projects: [ProjectName]
    /// Its consumer name: stable across restarts, so that its own pending entries are re-read.
    public var consumer: String
    /// `redis` or `embedded` (for `wave status`).
    public var busKind = "embedded"
    /// Agent id → role, where the id's prefix does not say (`WIRE.md`).
    public var roleMap: [String: String] = [:]
    /// Most entries per read. Default 128.
    public var batchSize = 128
    /// How long one blocking read waits before it is issued again. Default 2 s.
    public var blockTime: Duration = .seconds(2)
    /// Entries idle this long are claimed again (a failed handler is retried). Default 30 s.
    public var reclaimAfter: Duration = .seconds(30)
    /// Deliveries a handler gets before the entry is dead-lettered. Default 5.
    public var maxDeliveries = 5
    /// How often the instance records its counters for `wave status` (maintenance). Default 5 s.
    public var statusInterval: Duration = .seconds(5)
    /// How often the instance trims acknowledged stream history and deletes ledger entries past
    /// their retention (maintenance). Default 60 s.
    public var maintenanceInterval: Duration = .seconds(60)
    /// Acknowledged entries kept per stream when trimming, for inspection (`wave tail`). Default 10 000.
    public var keepAcknowledged = 10_000
    /// Delete the instance's own system-stream groups on a clean exit. Default true.
    public var deleteOwnGroupsOnExit = true
    /// Also write every task for the reference's Python workers and take their results
    /// (``LegacyTaskBridge``) through this client: the Redis the workers use (normally the bus's
    /// own client). `nil` (the default): off.
    public var legacyBridge: RedisClient?
    /// Where handlers run: give the event loop of the bus's Redis client (one thread), so that
    /// replies and handlers share a thread; `nil`: Swift's default executor.
    public var executor: (any TaskExecutor)?
    /// How the long-running loops (consumers, listeners, the legacy bridge, maintenance) are
    /// restarted after an error: 100 ms doubling to 1 s, jittered.
    public var supervision = SupervisionPolicy()
    /// Serve projects by lease (SCALE.md, "Several orchestrators"): the instance reads, applies
    /// and dispatches only for the projects whose leases it holds, takes over the projects of
    /// instances that die, and spreads the projects with the others. `nil` (the default): it
    /// serves every configured project alone, without leases.
    public var leases: LeaseKeeper.Settings?

    /// Creates a configuration.
    public init(projects: [ProjectName], consumer: String) {
        self.projects = projects
        self.consumer = consumer
    }
}

/// The orchestrator: reads signals and system events, changes durable state through the engine,
/// and dispatches the tasks that follow (AC-01, AC-02, AC-04, AC-05).
///
/// On start it joins the shared group `orchestrator` on each project's signal stream and its own
/// group `orchestrator:{consumer}` on each project's system stream and on `wave:system:global`,
/// loads the active emergency stops, starts the oldest pending session of each project, and
/// dispatches again every task that a working story needs (the recovery scan). Then it consumes
/// until graceful shutdown.
public final class Orchestrator: Service, Sendable {
    /// The bus.
    public let bus: any EventBus
    /// The store.
    public let store: any StateStore
    /// The configuration.
    public let configuration: OrchestratorConfiguration
    /// Task dispatch.
    public let tasks: TaskDispatcher
    /// The agents heard from.
    public let roster: AgentRoster
    /// Waits on task results: every result signal the dispatcher settles is handed to it, so a
    /// supervisor that registers a task before dispatching it can `wait` for its result.
    public let results = ResultWaiter()
    /// The bridge to the reference's Python workers, when ``OrchestratorConfiguration/legacyBridge``
    /// is on over Redis.
    public let legacy: LegacyTaskBridge?
    /// The dispatcher (built at init with the standard handlers and any extra ones).
    public let dispatcher: EventDispatcher
    let logger: Logger
    let core: OrchestratorCore
    let startedAt = WaveTimestamp.now()
    /// The leases, when ``OrchestratorConfiguration/leases`` is set.
    public let keeper: LeaseKeeper?
    /// The signal consumers of the projects served by lease, by project key.
    let projectConsumers = Mutex<[String: EventDispatcher.DynamicConsumer]>([:])
    /// One take-over or give-up at a time: the keeper's hand-over and the changes it reports
    /// never interleave for a project.
    let servingLock = AsyncLock()

    /// Creates an orchestrator.
    /// - Parameters:
    ///   - register: adds handlers after the standard ones (extensions, tests).
    ///   - hooks: the dispatcher's hooks (metrics, benchmarks, tests).
    public init(
        bus: any EventBus, store: any StateStore, configuration: OrchestratorConfiguration, logger: Logger,
        register: (inout HandlerRegistry) -> Void = { _ in }, hooks: EventDispatcher.Hooks = EventDispatcher.Hooks()
    ) {
        self.bus = bus
        self.store = store
        self.configuration = configuration
        self.logger = logger
        self.tasks = TaskDispatcher(bus: bus, store: store, logger: logger, ownership: Ownership(leased: configuration.leases != nil))
        self.keeper = configuration.leases.map {
            LeaseKeeper(store: store, owner: configuration.consumer, projects: configuration.projects, settings: $0, logger: logger)
        }
        self.roster = AgentRoster()
        if let client = configuration.legacyBridge {
            let bridge = LegacyTaskBridge(client: client, bus: bus, tasks: self.tasks, roleMap: configuration.roleMap, logger: logger)
            self.tasks.onPublished { entries in await bridge.publish(entries) }
            self.legacy = bridge
        } else {
            self.legacy = nil
        }
        let core = OrchestratorCore(
            store: store, bus: bus, tasks: self.tasks, roster: self.roster, roleMap: configuration.roleMap,
            legacy: self.legacy, logger: logger)
        self.core = core
        self.tasks.onTimeout { task in await core.applyTimeout(task) }
        var registry = HandlerRegistry()
        core.registerStandardHandlers(in: &registry)
        register(&registry)
        var hooks = hooks
        let settled = hooks.settled
        let results = self.results
        hooks.settled = { signal, result in
            results.deliver(signal.envelope)
            settled?(signal, result)
        }
        let unhandled = hooks.unhandled
        hooks.unhandled = { [store] signal in
            // Counted durably, so that `wave status` (another process) sees it.
            try? await store.bump("unhandled.\(signal.envelope.eventType.rawValue)")
            await unhandled?(signal)
        }
        self.dispatcher = EventDispatcher(
            bus: bus, registry: registry, consumers: Self.consumers(configuration), logger: logger, hooks: hooks,
            executor: configuration.executor, supervision: configuration.supervision)
    }

    static func consumers(_ configuration: OrchestratorConfiguration) -> [ConsumerOptions] {
        func options(_ streams: [String], group: String) -> ConsumerOptions {
            var options = ConsumerOptions(streams: streams, group: group, consumer: configuration.consumer)
            options.batchSize = configuration.batchSize
            options.blockTime = configuration.blockTime
            options.reclaimAfter = configuration.reclaimAfter
            options.maxDeliveries = configuration.maxDeliveries
            return options
        }
        // Broadcasts reach every instance: its own group on every system stream. Signals go to
        // the shared group; by lease, each project's consumer starts when its lease is taken.
        let system = options(
            configuration.projects.map(Channels.system) + [Channels.systemGlobal], group: Channels.orchestratorGroup(consumer: configuration.consumer))
        guard configuration.leases == nil else { return [system] }
        return [options(configuration.projects.map(Channels.signals), group: Channels.orchestratorGroup), system]
    }

    /// The consumer of one project's signals (serving it by lease). Its reclaimer looks on the
    /// lease renewal interval: what an instance that lost the project left behind
    /// (``giveUp(_:)``) is taken within a round.
    func signalsConsumer(_ project: ProjectName) -> ConsumerOptions {
        var options = ConsumerOptions(streams: [Channels.signals(project)], group: Channels.orchestratorGroup, consumer: self.configuration.consumer)
        options.batchSize = self.configuration.batchSize
        options.blockTime = self.configuration.blockTime
        options.reclaimAfter = self.configuration.reclaimAfter
        options.reclaimInterval = self.configuration.leases.map { min($0.renewInterval, options.effectiveReclaimInterval) }
        options.maxDeliveries = self.configuration.maxDeliveries
        return options
    }

    /// The streams and groups this instance reads (by lease: may read).
    public var groups: [(stream: String, group: String)] {
        var configuration = self.configuration
        configuration.leases = nil
        return Self.consumers(configuration).flatMap { options in options.streams.map { ($0, options.group) } }
    }

    /// Creates the groups, loads the stops, starts sessions and dispatches what working stories
    /// need. ``run()`` calls it; tests may call it to act before consuming. By lease, sessions and
    /// tasks wait for each project's lease (``takeOver(_:)``).
    public func prepare() async throws {
        try await self.prepareShared()
        if self.keeper == nil { try await self.prepareProjects(self.configuration.projects) }
        try await self.recordState()
    }

    /// The groups of every configured project and the emergency stops in force.
    func prepareShared() async throws {
        for project in self.configuration.projects {
            // WIRE.md: a new signals group starts at the oldest live session's creation, so that
            // no signal for a live session is missed and no history is replayed.
            let start: GroupStart
            if let created = try await self.store.oldestLiveSessionCreatedAt(project: project.key) {
                let millis = min(created.millisecondsSinceEpoch, WaveTimestamp.now().millisecondsSinceEpoch)
                start = .after("\(millis)-0")
            } else {
                start = .newEntries
            }
            try await self.bus.createGroup(Channels.orchestratorGroup, on: Channels.signals(project), start: start)
            try await self.bus.createGroup(Channels.orchestratorGroup(consumer: self.configuration.consumer), on: Channels.system(project), start: .newEntries)
            // Agents' groups exist before the first task, so that none is missed.
            for role in Self.roles(self.store.engine.configuration) {
                try await self.bus.createGroup(Channels.agentsGroup(role: role), on: Channels.tasks(project, role), start: .beginning)
            }
        }
        try await self.bus.createGroup(Channels.orchestratorGroup(consumer: self.configuration.consumer), on: Channels.systemGlobal, start: .newEntries)
        try await EmergencyKeys.reconcile(store: self.store, bus: self.bus, projects: self.configuration.projects, logger: self.logger)
        for stop in try await self.store.activeStops() {
            self.tasks.halt(scope: stop.scope)
            self.logger.warning("emergency stop in force", metadata: ["wave.scope": "\(stop.scope)", "wave.by": "\(stop.by)", "wave.reason": "\(stop.reason)"])
        }
    }

    /// Starts the projects' next sessions and dispatches again every task their working stories
    /// need that is neither still out in the agents' streams nor answered in the signals stream
    /// (the recovery scan): at start, and when a project is taken over.
    func prepareProjects(_ projects: [ProjectName]) async throws {
        for project in projects {
            try await self.core.advanceProject(project.key)
        }
        var sessions: Set<String> = []
        for project in projects {
            for session in try await self.store.sessions(project: project.key) where !session.status.isTerminal { sessions.insert(session.id) }
        }
        let inFlight = try await self.store.inFlightStories().filter { sessions.contains($0.story.state.sessionID) }
        // Nothing to look for when every task the working stories need is out already (a first
        // start: this instance has just dispatched them).
        var missing = self.tasks.notOut(inFlight)
        if !missing.isEmpty {
            let scan = try await self.scanStreams(projects)
            // Tasks still in the agents' streams (held by an agent, or not read yet) are out
            // already: a restart must not hand out second copies.
            let adopted = self.tasks.adopt(scan.waiting, needed: missing)
            missing = self.tasks.notOut(missing)
            // Results already waiting in the signals stream (answered by their agents, not yet
            // applied, pending or unread in the shared group) settle their tasks when they apply:
            // those tasks are not sent a second time.
            let answered =
                scan.answers.isEmpty || missing.isEmpty
                ? 0 : await self.tasks.adoptAnswered(scan.answers, needed: missing, roleMap: self.configuration.roleMap)
            self.logger.info(
                "recovery: dispatching again the tasks of working stories that are neither still waiting in the agents' streams nor answered in the signals stream",
                metadata: [
                    "wave.projects": "\(projects.map(\.key).joined(separator: ","))", "wave.stories": "\(inFlight.count)",
                    "wave.tasks_still_out": "\(adopted)", "wave.tasks_answered": "\(answered)",
                ])
        }
        try await self.tasks.redispatch()
    }

    /// Starts serving a project whose lease this instance took (SCALE.md, "Taking over"): takes
    /// the old consumer's pending entries, re-arms what the project's working stories need from
    /// the store and the streams (``prepareProjects(_:)``), loads its stops, then reads its signals.
    /// A step that fails (Redis away) is tried again after a backoff until it succeeds or the
    /// instance stops.
    public func takeOver(_ lease: ProjectLease) async {
        await self.servingLock.withLock { await self.startServing(lease) }
    }

    /// Whether the keeper still holds the project's lease (always, without leases).
    func holds(_ project: String) -> Bool { self.keeper?.projectsHeld.contains(project) ?? true }

    func startServing(_ lease: ProjectLease) async {
        // Given up or lost since it was taken (the change came late): nothing to start.
        guard let project = self.configuration.projects.first(where: { $0.key == lease.project }), self.holds(project.key) else { return }
        self.tasks.ownership.gain(project.key)
        let backoff = Backoff(base: .milliseconds(100), cap: .seconds(2))
        var attempt = 0
        while !Task.isCancelled, !Task.isShuttingDownGracefully, self.holds(project.key) {
            do {
                let moved = try await self.bus.transferPending(
                    stream: Channels.signals(project), group: Channels.orchestratorGroup, from: nil, to: self.configuration.consumer)
                for stop in try await self.store.activeStops() where stop.scope.covers(project: project.key) { self.tasks.halt(scope: stop.scope) }
                try await self.prepareProjects([project])
                self.logger.info(
                    "project taken over", metadata: ["wave.project": "\(project.key)", "wave.epoch": "\(lease.epoch)", "wave.pending_taken": "\(moved)"])
                break
            } catch let error as StoreError where error.code == .leaseLost {
                // Lost meanwhile: the keeper reports it, and the project is given up.
                self.logger.warning("taking over the project stopped: the lease is lost", metadata: ["wave.project": "\(project.key)"])
                break
            } catch {
                self.logger.warning("taking over the project failed; trying again", metadata: ["wave.project": "\(project.key)", "wave.error": "\(error)"])
                attempt += 1
                // sleep: backoff
                try? await Task.sleep(for: backoff.delay(attempt: attempt))
            }
        }
        guard self.tasks.ownership.serves(project.key), self.holds(project.key) else {
            self.tasks.ownership.lose(project.key)
            self.tasks.forget(project: project.key)
            return
        }
        let consumer = self.dispatcher.start(self.signalsConsumer(project))
        self.projectConsumers.withLock { $0[project.key] = consumer }
    }

    /// Stops serving a project: its signals consumer finishes the read in hand and stops, its
    /// tasks and timers are forgotten (the next owner re-arms them), and the entries it still
    /// holds are left to the next owner's reclaim.
    public func giveUp(_ project: String) async {
        await self.servingLock.withLock { await self.stopServing(project) }
    }

    func stopServing(_ project: String) async {
        let consumer = self.projectConsumers.withLock { $0.removeValue(forKey: project) }
        await consumer?.stop()
        self.tasks.ownership.lose(project)
        let forgotten = self.tasks.forget(project: project)
        guard let name = self.configuration.projects.first(where: { $0.key == project }) else { return }
        // Entries read but not applied (refused by the fence once the lease had lapsed) go to
        // the new owner's next reclaim; those read before are taken at its take-over.
        let handed =
            (try? await self.bus.releasePending(
                stream: Channels.signals(name), group: Channels.orchestratorGroup, consumer: self.configuration.consumer,
                idle: self.configuration.reclaimAfter)) ?? 0
        if consumer != nil {
            self.logger.info(
                "project no longer served here",
                metadata: ["wave.project": "\(project)", "wave.tasks_forgotten": "\(forgotten)", "wave.pending_handed_over": "\(handed)"])
        }
    }

    /// What the recovery scan reads, all streams at once (each read is a round trip and a
    /// server-side selection; together they bound how soon a restarted instance consumes): the
    /// tasks unacknowledged in the agents' streams, and the results unacknowledged in the signals
    /// streams. Only the fields that say which task a result answers are read (one short row
    /// per entry, built on the server), so that a backlog of thousands costs little at start.
    func scanStreams(_ projects: [ProjectName]) async throws -> (waiting: [TaskEntry], answers: [Envelope]) {
        let names = ["event_type", "payload", "source", "project", "message_id", "session_id", "story_id", "correlation_id"]
        let roles = Self.roles(self.store.engine.configuration)
        let bus = self.bus
        enum Part: Sendable {
            case tasks([TaskEntry])
            case answers([Envelope])
        }
        return try await withThrowingTaskGroup(of: Part.self) { group in
            for project in projects {
                for role in roles {
                    group.addTask {
                        let entries = try await bus.unacknowledged(
                            stream: Channels.tasks(project, role), group: Channels.agentsGroup(role: role), count: 100_000)
                        return .tasks(entries.compactMap { try? TaskEntry(decoding: $0.fields) })
                    }
                }
                group.addTask {
                    let rows = try await bus.unacknowledged(
                        stream: Channels.signals(project), group: Channels.orchestratorGroup, count: 100_000, fields: names)
                    return .answers(
                        rows.compactMap { row in
                            let fields = zip(names, row).compactMap { name, value in value.map { StreamField(name, $0) } }
                            return try? Envelope(decoding: fields)
                        })
                }
            }
            var scan: (waiting: [TaskEntry], answers: [Envelope]) = ([], [])
            for try await part in group {
                switch part {
                case .tasks(let entries): scan.waiting.append(contentsOf: entries)
                case .answers(let envelopes): scan.answers.append(contentsOf: envelopes)
                }
            }
            return scan
        }
    }

    /// Runs until graceful shutdown: prepares, consumes, records its state on its interval, and on
    /// a clean exit deletes its own system-stream groups.
    public func run() async throws {
        self.logger.info(
            "orchestrator starting",
            metadata: [
                "wave.consumer": "\(self.configuration.consumer)", "wave.projects": "\(self.configuration.projects.map(\.key).joined(separator: ","))",
                "wave.bus": "\(self.configuration.busKind)",
            ])
        try await withTaskExecutorPreference(self.configuration.executor) {
            try await self.prepare()
        }
        // Every long-running loop is supervised: an error restarts it after a backoff, only
        // cancellation (graceful shutdown) ends it.
        let logger = self.logger
        let policy = self.configuration.supervision
        try await withThrowingDiscardingTaskGroup { group in
            group.addTask {
                // Each consumer is supervised inside the dispatcher.
                try await self.dispatcher.run()
            }
            if let keeper = self.keeper {
                // Projects served by lease: each project's signals are read from when its lease is
                // taken until it is lost or given up (a clean hand-over: the read in hand finishes
                // before the lease is released). At graceful shutdown every lease is given up.
                keeper.onHandOver { project in await self.giveUp(project) }
                let changes = keeper.changes
                group.addTask {
                    await withTaskExecutorPreference(self.configuration.executor) {
                        for await change in changes {
                            switch change {
                            case .gained(let lease): await self.takeOver(lease)
                            case .lost(let project): await self.giveUp(project)
                            }
                            // `wave status` shows who serves what as soon as it changes.
                            try? await self.recordState()
                        }
                    }
                }
                group.addTask { try await keeper.run() }
            }
            group.addTask {
                // The reference's HALT/RESUME channel (WIRE.md): a legacy trigger of a global stop.
                await cancelWhenGracefulShutdown {
                    await supervised("the legacy emergency channel", logger: logger, policy: policy) {
                        try await self.core.listenForLegacyEmergency(projects: self.configuration.projects)
                    }
                }
            }
            if let legacy = self.legacy {
                group.addTask {
                    // The reference workers' results (`wave:results`), re-read after every subscription.
                    await cancelWhenGracefulShutdown {
                        await supervised("the legacy results channel", logger: logger, policy: policy) { try await legacy.run() }
                    }
                }
            }
            group.addTask {
                // The outbox: flushed in order whenever Redis answers again.
                await cancelWhenGracefulShutdown {
                    var once = policy
                    once.restartOnReturn = false  // over the embedded bus it flushes once and returns
                    await supervised("the outbox", logger: logger, policy: once) { await self.tasks.publisher.run() }
                }
            }
            group.addTask {
                // Maintenance on a named interval: acknowledged history and old ledger entries.
                await cancelWhenGracefulShutdown {
                    await supervised("maintenance", logger: logger, policy: policy) {
                        while !Task.isCancelled {
                            // sleep: interval maintenanceInterval
                            try await Task.sleep(for: self.configuration.maintenanceInterval)
                            await self.maintain()
                        }
                    }
                }
            }
            group.addTask {
                // Maintenance on a named interval: counters and last-seen for `wave status`.
                await cancelWhenGracefulShutdown {
                    await supervised("the status record", logger: logger, policy: policy) {
                        while !Task.isCancelled {
                            // sleep: interval statusInterval
                            try await Task.sleep(for: self.configuration.statusInterval)
                            try await self.recordState()
                        }
                    }
                }
            }
        }
        self.tasks.cancelTimers()
        // A graceful stop sends what waits in the outbox, if Redis answers.
        await self.tasks.publisher.flush()
        if self.configuration.deleteOwnGroupsOnExit {
            let own = Channels.orchestratorGroup(consumer: self.configuration.consumer)
            for (stream, group) in self.groups where group == own {
                _ = try? await self.bus.deleteGroup(group, on: stream)
            }
        }
        try await self.recordState(stopped: true)
        self.logger.info("orchestrator stopped", metadata: ["wave.consumer": "\(self.configuration.consumer)"])
    }

    /// Trims the acknowledged history of this instance's streams (never an entry some group has
    /// not read or acknowledged; the newest ``OrchestratorConfiguration/keepAcknowledged`` are
    /// kept) and deletes ledger entries older than the store's retention. Runs on
    /// ``OrchestratorConfiguration/maintenanceInterval``; a failure is logged and tried again
    /// on the next round.
    /// - Returns: entries trimmed and ledger entries deleted.
    @discardableResult
    public func maintain(now given: WaveTimestamp? = nil) async -> (trimmed: Int, pruned: Int) {
        let now = given ?? self.store.now()
        var trimmed = 0
        for stream in self.maintainedStreams {
            do {
                trimmed += try await self.bus.trimAcknowledged(stream: stream, keep: self.configuration.keepAcknowledged)
            } catch {
                self.logger.debug("trimming skipped this round", metadata: ["wave.stream": "\(stream)", "wave.error": "\(error)"])
            }
        }
        var pruned = 0
        do {
            pruned = try await self.store.pruneLedger(now: now)
        } catch {
            self.logger.warning("ledger pruning failed; tried again at the next maintenance", metadata: ["wave.error": "\(error)"])
        }
        if trimmed > 0 || pruned > 0 {
            self.logger.info("maintenance: \(trimmed) acknowledged entries trimmed, \(pruned) ledger entries past retention deleted")
        }
        return (trimmed, pruned)
    }

    /// The streams this instance reads or writes: each project's signals, system and task
    /// streams, and the global system stream.
    var maintainedStreams: [String] {
        var streams = [Channels.systemGlobal]
        for project in self.configuration.projects {
            streams.append(Channels.signals(project))
            streams.append(Channels.system(project))
            for role in Self.roles(self.store.engine.configuration) { streams.append(Channels.tasks(project, role)) }
        }
        return streams
    }

    /// Writes this instance's state to the store (for `wave status`).
    public func recordState(stopped: Bool = false) async throws {
        let counters = self.dispatcher.snapshot
        let totals = self.tasks.totals
        let health = self.bus.health
        let now = self.store.now()
        let outbox = (try? await self.store.outboxCount()) ?? 0
        try await self.store.recordOrchestrator(
            OrchestratorRecord(
                consumer: self.configuration.consumer,
                projects: self.tasks.ownership.projects.map { $0.sorted() } ?? self.configuration.projects.map(\.key), bus: self.configuration.busKind,
                circuit: health.circuit,
                state: [
                    "handled": .number(Double(counters.handled)), "unhandled": .number(Double(counters.unhandledTotal)),
                    "failures": .number(Double(counters.failures)), "dead_lettered": .number(Double(counters.deadLettered)),
                    "tasks_published": .number(Double(totals.published)), "tasks_held": .number(Double(totals.held)),
                    "tasks_outstanding": .number(Double(self.tasks.outstandingCount)),
                    "tasks_timed_out": .number(Double(self.tasks.timeouts)),
                    "outbox": .number(Double(outbox)),
                    "halted": .array(self.tasks.haltedScopes.sorted().map { .string($0.key) }),
                    "trimmed_unread": .number(Double(health.trimmedUnread)),
                    "vanished_with_redis": .number(Double(health.vanished)),
                    "legacy_bridge": self.legacy.map { legacy in
                        let totals = legacy.totals
                        return .object([
                            "written": .number(Double(totals.written)), "settled": .number(Double(totals.settled)),
                            "ignored": .number(Double(totals.ignored)), "outstanding": .number(Double(legacy.outstandingCount)),
                        ])
                    } ?? .null,
                ],
                startedAt: self.startedAt, lastSeen: now, stoppedAt: stopped ? now : nil
            ))
    }

    /// The roles tasks go to: every gate owner and the dev roles.
    static func roles(_ configuration: EngineConfiguration) -> [String] {
        var roles = Set(configuration.gates.map(\.owner))
        roles.remove("agent")
        roles.formUnion(["fe", "be"])
        return roles.sorted()
    }
}
