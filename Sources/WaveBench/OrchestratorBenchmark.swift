import Foundation
import GRDB
import Logging
import NIOPosix
import Synchronization
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore

/// Opens the store a benchmark measures, at a path, with an engine: the CLI (the composition
/// root) says which implementation; the benchmarks see only ``StateStore``.
public typealias BenchStoreOpener = @Sendable (_ path: String, _ engine: StoryEngine) throws -> any StateStore

/// A fresh store with live stories that take gate signals in order (gate g of every story, then
/// g + 1), for the orchestrator benchmarks.
struct BenchWorld {
    let store: any StateStore
    let directory: URL
    let project: ProjectName
    let stories: Int

    static let senders = ["CTO-1", "BE-1", "BE-1", "BE-1", "QA-1", "PM-1", "CTO-1", "CTO-1"]

    /// Creates `stories` backend stories in one session, started.
    static func make(stories: Int, open: BenchStoreOpener) async throws -> BenchWorld {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-bench-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var configuration = EngineConfiguration.standard
        configuration.parallelLimit = stories
        let store = try open(directory.appendingPathComponent("wave.sqlite").path, StoryEngine(configuration: configuration))
        let project = try ProjectName("bench-\(UUID().uuidString.prefix(8).lowercased())")
        let session = try await store.createSession(
            project: project.key, wave: 1,
            stories: (0..<stories).map {
                NewStory(id: "S-\($0)", title: "S-\($0)", domain: "backend", agent: "BE-1")
            }, budgetUSD: 1_000_000)
        _ = try await store.startNextSession(project: project.key)
        _ = try await store.startReadyStories(session: session.id)
        return BenchWorld(store: store, directory: directory, project: project, stories: stories)
    }

    /// The `index`-th gate signal: gate `index / stories` of story `index % stories`, passing.
    func signal(_ index: Int) -> Envelope {
        let gate = index / self.stories
        var payload: [String: JSONValue] = ["gate_id": .string("gate-\(gate)"), "result": "pass"]
        if gate == 2 { payload["build_success"] = true }
        if gate == 3 {
            payload["tests_passing"] = true
            payload["coverage"] = 90
        }
        return Envelope(eventType: .gatePassed, payload: payload, source: Self.senders[gate], project: self.project.key, storyID: "S-\(index % self.stories)")
    }

    /// Every key the run wrote.
    var keys: [String] {
        [Channels.signals(self.project), Channels.system(self.project), Channels.deadLetters(self.project)]
            + ["cto", "fe", "be", "pm", "qa"].map { Channels.tasks(self.project, $0) }
    }

    func remove(client: RedisClient) async {
        _ = try? await client.send(DelCommand(keys: self.keys))
        try? FileManager.default.removeItem(at: self.directory)
    }
}

extension BenchWorld {
    /// Runs `body` with an orchestrator over this world, consuming in the background. The
    /// orchestrator's client, its handlers and `body` share one event-loop thread (ARCHITECTURE.md:
    /// the runtime's threading decision), and Redis keeps the other core. The world's keys and
    /// the client are removed and shut down afterwards, whatever happens.
    func withOrchestrator<T: Sendable>(
        _ redis: RedisConfiguration, consumer: String, logger: Logger, hooks: EventDispatcher.Hooks,
        _ body: @Sendable (Orchestrator, RedisEventBus) async throws -> T
    ) async throws -> T {
        let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let client = try RedisClient(configuration: redis, eventLoopGroup: loopGroup, logger: logger)
        let bus = RedisEventBus(client: client, logger: logger)
        var quiet = logger
        quiet.logLevel = .error
        var configuration = OrchestratorConfiguration(projects: [self.project], consumer: consumer)
        configuration.executor = EventLoopTaskExecutor(loopGroup.next())
        let orchestrator = Orchestrator(bus: bus, store: self.store, configuration: configuration, logger: quiet, hooks: hooks)
        let result: Result<T, any Error>
        do {
            result = .success(
                try await withTaskExecutorPreference(EventLoopTaskExecutor(loopGroup.next())) {
                    try await orchestrator.prepare()
                    return try await withThrowingTaskGroup(of: Void.self) { group in
                        group.addTask { try await orchestrator.dispatcher.run() }
                        defer { group.cancelAll() }
                        return try await body(orchestrator, bus)
                    }
                })
        } catch {
            result = .failure(error)
        }
        _ = try? await client.send(DelCommand(keys: [EmergencyKeys.key(scope: .project(self.project))]))
        await self.remove(client: client)
        await client.shutdown()
        try? await loopGroup.shutdownGracefully()
        return try result.get()
    }
}

/// Resumes one waiter when the dispatcher reaches a point for a given message (the benchmark's
/// own rendezvous: a continuation, never a loop that looks again).
final class Rendezvous: Sendable {
    struct State {
        var expected: String?
        var reachedAt: ContinuousClock.Instant?
        var continuation: CheckedContinuation<ContinuousClock.Instant, Never>?
    }
    let state = Mutex(State())

    func expect(_ id: String) {
        self.state.withLock { $0 = State(expected: id) }
    }

    func reach(_ id: String) {
        let now = ContinuousClock.now
        let waiter = self.state.withLock { state -> CheckedContinuation<ContinuousClock.Instant, Never>? in
            guard state.expected == id, state.reachedAt == nil else { return nil }
            state.reachedAt = now
            defer { state.continuation = nil }
            return state.continuation
        }
        waiter?.resume(returning: now)
    }

    func wait() async -> ContinuousClock.Instant {
        await withCheckedContinuation { continuation in
            let reached = self.state.withLock { state -> ContinuousClock.Instant? in
                if let at = state.reachedAt { return at }
                state.continuation = continuation
                return nil
            }
            if let reached { continuation.resume(returning: reached) }
        }
    }
}

/// `wave bench latency`: gate signals published one at a time to live stories through the real
/// orchestrator; publish → handler entered and publish → state committed, beside redis-benchmark's
/// PING p50 and a raw SQLite commit loop in the same run.
public struct LatencyBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Publish → handler entered, p50.
        public var handler_p50_ms: Double
        /// Publish → handler entered, p99.
        public var handler_p99_ms: Double
        /// Publish → handler entered, worst.
        public var handler_max_ms: Double
        /// Publish → the handler returned (its transaction committed, the next task published).
        public var committed_p50_ms: Double
        /// Publish → committed, p99.
        public var committed_p99_ms: Double
        /// Publish → committed, worst.
        public var committed_max_ms: Double
        /// redis-benchmark's PING p50, same server, same run.
        public var ping_p50_ms: Double
        /// The raw SQLite commit loop, p50.
        public var raw_commit_p50_ms: Double
        /// The raw SQLite commit loop, p99.
        public var raw_commit_p99_ms: Double
        /// `handler_p50_ms / ping_p50_ms` (bar ≤ 2.5).
        public var handler_p50_ratio: Double
        /// `handler_p99_ms / ping_p50_ms` (bar ≤ 5).
        public var handler_p99_ratio: Double
        /// `2 + raw_commit_p99_ms`: the bar for `committed_p99_ms`.
        public var committed_p99_bar_ms: Double
        /// Signals timed.
        public var signals: Int
    }

    /// Signals timed. Default 10 000.
    public var signals = 10_000
    /// Signals sent first and not timed. Default 200.
    public var warmUp = 200
    /// Opens the store measured.
    public var open: BenchStoreOpener

    /// Creates the benchmark with its defaults, over the stores `open` makes.
    public init(open: @escaping BenchStoreOpener) { self.open = open }

    /// Runs it in its own project and a fresh store, both removed at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let tool = try RedisBenchmarkTool(configuration: client.configuration)
        logger.info("redis-benchmark: PING, 1 client")
        let ping = try tool.pingP50Milliseconds()
        let total = self.signals + self.warmUp
        let world = try await BenchWorld.make(stories: (total + 7) / 8, open: self.open)
        defer { try? FileManager.default.removeItem(at: world.directory) }
        logger.info("wave: \(self.signals) gate signals, one at a time, to \(world.stories) live stories")
        let entered = Rendezvous()
        let committed = Rendezvous()
        let (handler, commit) = try await world.withOrchestrator(
            client.configuration, consumer: "bench", logger: logger,
            hooks: EventDispatcher.Hooks(
                entered: { entered.reach($0.envelope.messageID) },
                settled: { signal, _ in committed.reach(signal.envelope.messageID) }
            )
        ) { _, bus in
            var handler = LatencySamples(capacity: self.signals)
            var commit = LatencySamples(capacity: self.signals)
            for index in 0..<total {
                let envelope = world.signal(index)
                entered.expect(envelope.messageID)
                committed.expect(envelope.messageID)
                let start = ContinuousClock.now
                _ = try await bus.publish(envelope, to: Channels.signals(world.project))
                let enteredAt = await entered.wait()
                let committedAt = await committed.wait()
                if index >= self.warmUp {
                    handler.record(enteredAt - start)
                    commit.record(committedAt - start)
                }
            }
            let completed = try await world.store.stories(session: try await world.store.sessions(project: world.project.key)[0].id)
                .filter { $0.state.status == .complete }.count
            guard completed == world.stories else {
                throw BenchmarkError("only \(completed) of \(world.stories) stories completed: signals were lost or refused")
            }
            return (handler, commit)
        }

        logger.info("raw SQLite: \(self.signals) commits of one small insert, timed one by one")
        let raw = try RawSQLite.commitLatencies(count: self.signals, directory: FileManager.default.temporaryDirectory)
        let handlerP50 = handler.percentileMilliseconds(50), handlerP99 = handler.percentileMilliseconds(99)
        return Result(
            handler_p50_ms: rounded(handlerP50, places: 4), handler_p99_ms: rounded(handlerP99, places: 4), handler_max_ms: rounded(handler.maxMilliseconds),
            committed_p50_ms: rounded(commit.percentileMilliseconds(50), places: 4), committed_p99_ms: rounded(commit.percentileMilliseconds(99), places: 4),
            committed_max_ms: rounded(commit.maxMilliseconds),
            ping_p50_ms: ping, raw_commit_p50_ms: rounded(raw.percentileMilliseconds(50), places: 4),
            raw_commit_p99_ms: rounded(raw.percentileMilliseconds(99), places: 4),
            handler_p50_ratio: rounded(ping > 0 ? handlerP50 / ping : 0), handler_p99_ratio: rounded(ping > 0 ? handlerP99 / ping : 0),
            committed_p99_bar_ms: rounded(2 + raw.percentileMilliseconds(99), places: 4), signals: self.signals
        )
    }
}

/// The raw SQLite limits with the store's settings (WAL, synchronous=NORMAL).
enum RawSQLite {
    static func open(_ path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        configuration.prepareDatabase { db in try db.execute(sql: "PRAGMA synchronous = NORMAL; PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -65536")
        }
        let pool = try DatabasePool(path: path, configuration: configuration)
        try pool.write { db in try db.execute(sql: "CREATE TABLE raw (id INTEGER PRIMARY KEY AUTOINCREMENT, message TEXT NOT NULL, at TEXT NOT NULL)") }
        return pool
    }

    /// `count` commits of one small insert each, each timed.
    static func commitLatencies(count: Int, directory: URL) throws -> LatencySamples {
        let path = directory.appendingPathComponent("wave-raw-\(UUID().uuidString.prefix(8)).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let pool = try Self.open(path)
        var samples = LatencySamples(capacity: count)
        for i in 0..<count {
            let start = ContinuousClock.now
            try pool.write { db in
                try db.cachedStatement(sql: "INSERT INTO raw (message, at) VALUES (?, ?)").execute(arguments: ["message-\(i)", "2026-11-25 00:00:00.000000"])
            }
            samples.record(ContinuousClock.now - start)
        }
        return samples
    }

    /// Commits per second of `batch` small inserts per transaction, `count` inserts in all.
    static func batchedCommitsPerSecond(count: Int, batch: Int, directory: URL) throws -> Double {
        let path = directory.appendingPathComponent("wave-raw-\(UUID().uuidString.prefix(8)).sqlite").path
        defer { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } }
        let pool = try Self.open(path)
        let start = ContinuousClock.now
        var done = 0
        while done < count {
            let n = min(batch, count - done)
            try pool.write { db in
                let statement = try db.cachedStatement(sql: "INSERT INTO raw (message, at) VALUES (?, ?)")
                for i in done..<(done + n) { try statement.execute(arguments: ["message-\(i)", "2026-11-25 00:00:00.000000"]) }
            }
            done += n
        }
        return Double(count) / seconds(ContinuousClock.now - start)
    }
}

/// Counts up and resumes one waiter when a target is reached (no polling).
final class CountDown: Sendable {
    struct State {
        var count = 0
        var target = Int.max
        var reachedAt: ContinuousClock.Instant?
        var continuation: CheckedContinuation<ContinuousClock.Instant, Never>?
        /// A bounded wait's deadline passed.
        var expired = false
    }
    let state = Mutex(State())

    init(target: Int) { self.state.withLock { $0.target = target } }

    var count: Int { self.state.withLock { $0.count } }

    func add(_ n: Int) {
        let now = ContinuousClock.now
        let waiter = self.state.withLock { state -> CheckedContinuation<ContinuousClock.Instant, Never>? in
            state.count += n
            guard state.count >= state.target, state.reachedAt == nil else { return nil }
            state.reachedAt = now
            defer { state.continuation = nil }
            return state.continuation
        }
        waiter?.resume(returning: now)
    }

    /// Lowers the target (entries that will never come, such as trimmed ones).
    func retarget(_ target: Int) {
        self.add(0)
        self.state.withLock { $0.target = target }
        self.add(0)
    }

    func wait() async -> ContinuousClock.Instant {
        await withCheckedContinuation { continuation in
            let reached = self.state.withLock { state -> ContinuousClock.Instant? in
                if let at = state.reachedAt { return at }
                if state.expired { return .now }
                state.continuation = continuation
                return nil
            }
            if let reached { continuation.resume(returning: reached) }
        }
    }

    /// Waits until the target is reached or `limit` has passed (a deadline that resumes the
    /// wait; the waiter itself ignores cancellation). Returns whether the target was reached.
    func wait(atMost limit: Duration) async -> Bool {
        let timer = Task {
            // sleep: deadline
            guard (try? await Task.sleep(for: limit)) != nil else { return }
            let waiter = self.state.withLock { state -> CheckedContinuation<ContinuousClock.Instant, Never>? in
                state.expired = true
                defer { state.continuation = nil }
                return state.continuation
            }
            waiter?.resume(returning: .now)
        }
        _ = await self.wait()
        timer.cancel()
        return self.state.withLock { $0.count >= $0.target }
    }

}

/// A handler that does nothing (phase A's dispatch-and-ack measure).
struct NoOpHandler: EventHandler {
    var name: String { "no-op" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome { .ignored(.other("no-op")) }
}

/// `wave bench throughput`: phase A, signals published unpaced in pipelined batches without
/// MAXLEN, through dispatch and acknowledgement with no-op handlers, then through the real
/// handlers with durable state; phase B, the same paced by a publisher that trims with
/// `MAXLEN ~ 10000` (the reference's pattern): what was lost and what was trimmed unread.
public struct ThroughputBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Phase A, no-op handlers: signals / (first publish → last acknowledgement).
        public var dispatched_per_s: Double
        /// Phase A, real handlers: signals / (first publish → last commit).
        public var committed_per_s: Double
        /// Phase A, real handlers: signals per read (per transaction run), on average.
        public var committed_signals_per_read: Double
        /// Phase B: the publisher's achieved rate.
        public var publisher_per_s: Double
        /// Phase B: published − handled − counted as trimmed unread (what vanished uncounted).
        public var lost: Int
        /// Phase B: entries trimmed by the publisher's MAXLEN before the group read them.
        public var trimmed_unread: Int
        /// Phase B: entries handled.
        public var handled: Int
        /// redis-benchmark's XADD rate with `-P 32`, same server, same run.
        public var xadd_pipelined_per_s_redis_benchmark: Double
        /// A raw SQLite loop committing the same batch size, one small insert per signal.
        public var raw_batched_commits_per_s: Double
        /// `dispatched_per_s / xadd_pipelined_per_s_redis_benchmark` (bar ≥ 0.30).
        public var dispatched_ratio: Double
        /// `committed_per_s / raw_batched_commits_per_s` (bar ≥ 0.05, QUALITY.md re-based).
        public var committed_ratio: Double
        /// The raw loop on Wave's own tables, batched (``StoreBenchmark``'s schema floor), same run:
        /// what SQLite alone costs for the rows a transition writes.
        public var schema_floor_batched_per_s: Double
        /// `committed_per_s / schema_floor_batched_per_s` (bar ≥ 0.50).
        public var committed_floor_ratio: Double
        /// The store alone through ``StateStore``, batched, same run: the most the orchestrator
        /// could commit if reading, dispatching and acknowledging cost nothing (a measured ceiling).
        public var store_batched_per_s: Double
        /// `committed_per_s / store_batched_per_s`.
        public var committed_store_ratio: Double
        /// Signals timed.
        public var signals: Int
        /// Publish batch size.
        public var batch: Int
        /// Phase B's pace.
        public var paced_per_s: Double
    }

    /// Signals per phase. Default 100 000.
    public var signals = 100_000
    /// Publish batch size. Default 100.
    public var batch = 100
    /// Phase B's pace. Default 28 000/s.
    public var pace = 28_000.0
    /// Phase B's MAXLEN. Default 10 000.
    public var maxLength = 10_000

    /// Opens the store measured.
    public var open: BenchStoreOpener

    /// Creates the benchmark with its defaults, over the stores `open` makes.
    public init(open: @escaping BenchStoreOpener) { self.open = open }

    /// Runs both phases in projects of their own and a fresh store, all removed at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let tool = try RedisBenchmarkTool(configuration: client.configuration)
        let rawKey = "wave:bench:raw:\(UUID().uuidString.prefix(8).lowercased())"
        logger.info("redis-benchmark: XADD -P 32")
        let rawXAdd = try tool.pipelinedXAddPerSecond(key: rawKey, requests: 200_000, pipeline: 32)
        _ = try await client.send(DelCommand(keys: [rawKey]))
        logger.info("raw SQLite: \(self.signals) small inserts in batches of \(self.batch)")
        let rawBatched = try RawSQLite.batchedCommitsPerSecond(count: self.signals, batch: self.batch, directory: FileManager.default.temporaryDirectory)
        logger.info("raw loop on Wave's tables (the schema floor): batches of \(self.batch)")
        let floorDirectory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-floor-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: floorDirectory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: floorDirectory) }
        var storeBench = StoreBenchmark(open: self.open)
        storeBench.batch = self.batch
        storeBench.transitions = min(self.signals, 20_000)
        let floor = try await storeBench.schemaFloor(path: floorDirectory.appendingPathComponent("floor.sqlite").path, batch: self.batch)
        logger.info("the store alone, through StateStore: batches of \(self.batch) (the ceiling of what the orchestrator can commit)")
        let storeAlone = try await storeBench.wave(path: floorDirectory.appendingPathComponent("store.sqlite").path, batch: self.batch)

        let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let benchClient = try RedisClient(configuration: client.configuration, eventLoopGroup: loopGroup, logger: logger)
        defer {
            Task {
                await benchClient.shutdown()
                try? await loopGroup.shutdownGracefully()
            }
        }
        let bus = RedisEventBus(client: benchClient, logger: logger)
        var quiet = logger
        quiet.logLevel = .warning
        let executor = EventLoopTaskExecutor(loopGroup.next())
        let (dispatched, committed, paced) = try await withTaskExecutorPreference(executor) {
            logger.info("phase A: \(self.signals) signals, no-op handlers")
            let dispatched = try await self.noOp(bus: bus, executor: executor, logger: quiet)
            logger.info("phase A: \(self.signals) signals, real handlers and durable state")
            let committed = try await self.real(bus: bus, executor: executor, logger: quiet)
            logger.info("phase B: \(self.signals) signals paced at \(Int(self.pace))/s with MAXLEN ~ \(self.maxLength)")
            let paced = try await self.paced(bus: bus, client: benchClient, executor: executor, logger: quiet)
            return (dispatched, committed, paced)
        }
        return Result(
            dispatched_per_s: dispatched.rounded(), committed_per_s: committed.rate.rounded(),
            committed_signals_per_read: rounded(committed.perRead, places: 1), publisher_per_s: paced.rate.rounded(),
            lost: paced.lost, trimmed_unread: paced.trimmed, handled: paced.handled,
            xadd_pipelined_per_s_redis_benchmark: rawXAdd.rounded(), raw_batched_commits_per_s: rawBatched.rounded(),
            dispatched_ratio: rounded(rawXAdd > 0 ? dispatched / rawXAdd : 0), committed_ratio: rounded(rawBatched > 0 ? committed.rate / rawBatched : 0),
            schema_floor_batched_per_s: floor.rounded(), committed_floor_ratio: rounded(floor > 0 ? committed.rate / floor : 0),
            store_batched_per_s: storeAlone.rounded(), committed_store_ratio: rounded(storeAlone > 0 ? committed.rate / storeAlone : 0),
            signals: self.signals, batch: self.batch, paced_per_s: self.pace
        )
    }

    /// Publishes `envelopes(i)` for i in 0..<signals in pipelined batches, `publishers` batches in
    /// flight (1 keeps the order, which gate signals need: a story's gate-3 result before its gate-4).
    func publishAll(bus: RedisEventBus, stream: String, publishers: Int, _ envelope: @escaping @Sendable (Int) -> Envelope) async throws {
        let total = self.signals, batch = self.batch
        try await withThrowingTaskGroup(of: Void.self) { group in
            for publisher in 0..<publishers {
                group.addTask {
                    var next = publisher * batch
                    while next < total {
                        let n = min(batch, total - next)
                        _ = try await bus.publish(batch: (next..<(next + n)).map { (stream: stream, envelope: envelope($0)) })
                        next += publishers * batch
                    }
                }
            }
            try await group.waitForAll()
        }
    }

    func noOp(bus: RedisEventBus, executor: any TaskExecutor, logger: Logger) async throws -> Double {
        let project = try ProjectName("bench-\(UUID().uuidString.prefix(8).lowercased())")
        let stream = Channels.signals(project)
        defer { Task { _ = try? await bus.client.send(DelCommand(keys: [stream, Channels.deadLetters(project)])) } }
        try await bus.createGroup(Channels.orchestratorGroup, on: stream, start: .newEntries)
        let done = CountDown(target: self.signals)
        var registry = HandlerRegistry()
        registry.register(NoOpHandler(), for: .gatePassed)
        let dispatcher = EventDispatcher(
            bus: bus, registry: registry, consumers: [ConsumerOptions(streams: [stream], group: Channels.orchestratorGroup, consumer: "bench")],
            logger: logger, hooks: EventDispatcher.Hooks(acknowledged: { done.add($0.count) }), executor: executor)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await dispatcher.run() }
            defer { group.cancelAll() }
            let start = ContinuousClock.now
            try await self.publishAll(bus: bus, stream: stream, publishers: 2) { i in
                Envelope(eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: project.key, storyID: "S-\(i)")
            }
            let end = await done.wait()
            return Double(self.signals) / seconds(end - start)
        }
    }

    /// Phase A with real handlers: committed signals per second, and signals per read.
    func real(bus: RedisEventBus, executor: any TaskExecutor, logger: Logger) async throws -> (rate: Double, perRead: Double) {
        let world = try await BenchWorld.make(stories: (self.signals + 7) / 8, open: self.open)
        defer { Task { await world.remove(client: bus.client) } }
        let done = CountDown(target: self.signals)
        let refused = Mutex(0)
        let reads = Mutex(0)
        var configuration = OrchestratorConfiguration(projects: [world.project], consumer: "bench")
        configuration.executor = executor
        let orchestrator = Orchestrator(
            bus: bus, store: world.store, configuration: configuration,
            logger: logger,
            hooks: EventDispatcher.Hooks(
                settled: { _, result in
                    if case .applied? = result.outcomes.first?.outcome {} else { refused.withLock { $0 += 1 } }
                    done.add(1)
                }, acknowledged: { _ in reads.withLock { $0 += 1 } }))
        try await orchestrator.prepare()
        let rate = try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await orchestrator.dispatcher.run() }
            defer { group.cancelAll() }
            let start = ContinuousClock.now
            try await self.publishAll(bus: bus, stream: Channels.signals(world.project), publishers: 1) { world.signal($0) }
            let end = await done.wait()
            return Double(self.signals) / seconds(end - start)
        }
        let readCount = reads.withLock { $0 }
        let notApplied = refused.withLock { $0 }
        guard notApplied == 0 else { throw BenchmarkError("\(notApplied) of \(self.signals) signals were not applied") }
        return (rate, Double(self.signals) / Double(max(readCount, 1)))
    }

    func paced(
        bus: RedisEventBus, client: RedisClient, executor: any TaskExecutor, logger: Logger
    ) async throws -> (rate: Double, lost: Int, trimmed: Int, handled: Int) {
        let project = try ProjectName("bench-\(UUID().uuidString.prefix(8).lowercased())")
        let stream = Channels.signals(project)
        defer { Task { _ = try? await client.send(DelCommand(keys: [stream, Channels.deadLetters(project)])) } }
        try await bus.createGroup(Channels.orchestratorGroup, on: stream, start: .newEntries)
        _ = try await bus.accountTrimming(stream: stream, group: Channels.orchestratorGroup)
        let done = CountDown(target: self.signals)
        var registry = HandlerRegistry()
        registry.register(NoOpHandler(), for: .gatePassed)
        let dispatcher = EventDispatcher(
            bus: bus, registry: registry, consumers: [ConsumerOptions(streams: [stream], group: Channels.orchestratorGroup, consumer: "bench")],
            logger: logger, hooks: EventDispatcher.Hooks(acknowledged: { done.add($0.count) }), executor: executor)
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await dispatcher.run() }
            defer { group.cancelAll() }
            let interval = Duration.seconds(Double(self.batch) / self.pace)
            let start = ContinuousClock.now
            var next = 0
            var slot = start
            while next < self.signals {
                let n = min(self.batch, self.signals - next)
                let commands = (next..<(next + n)).map { i in
                    XAddCommand(
                        stream,
                        fields: Envelope(
                            eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1",
                            project: project.key, storyID: "S-\(i)"
                        ).fields.map { ($0.name, $0.value) },
                        trim: .maxLength(self.maxLength, approximate: true))
                }
                for result in try await client.pipeline(batch: commands) { _ = try result.get() }
                next += n
                // The pace: the next batch's slot (a deadline, not a check).
                slot = slot.advanced(by: interval)
                // sleep: deadline
                if slot > ContinuousClock.now { try await Task.sleep(until: slot, clock: .continuous) }
            }
            let publishRate = Double(self.signals) / seconds(ContinuousClock.now - start)
            // Publishing is over, so no more trimming: what the group will not read is known now.
            let trimmed = try await bus.accountTrimming(stream: stream, group: Channels.orchestratorGroup)
            done.retarget(self.signals - trimmed)
            _ = await done.wait(atMost: .seconds(60))
            let handled = done.count
            return (publishRate, max(0, self.signals - handled - trimmed), trimmed, handled)
        }
    }
}

/// Runs `body` with a deadline; throws when it passes first.
func within<T: Sendable>(_ deadline: Duration, _ body: @escaping @Sendable () async throws -> T) async throws -> T {
    try await withThrowingTaskGroup(of: T?.self) { group in
        group.addTask { try await body() }
        group.addTask {
            // sleep: deadline
            try await Task.sleep(for: deadline)
            return nil
        }
        defer { group.cancelAll() }
        guard let first = try await group.next(), let value = first else { throw BenchmarkError("timed out after \(deadline)") }
        return value
    }
}

/// `wave bench stop`: an emergency stop published on the system stream → the orchestrator has
/// halted dispatch, withdrawn every task out, recorded the stop and written its key, with live
/// stories working; then a clear (not timed) sends the tasks out again, and the next stop follows.
public struct StopBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Publish → stop settled, p50.
        public var halt_p50_ms: Double
        /// Publish → stop settled, p99 (bar ≤ 10 ms).
        public var halt_p99_ms: Double
        /// Publish → stop settled, worst.
        public var halt_max_ms: Double
        /// Tasks withdrawn per stop, on average.
        public var tasks_withdrawn_per_stop: Double
        /// redis-benchmark's PING p50, same server, same run.
        public var ping_p50_ms: Double
        /// Live stories.
        public var stories: Int
        /// Stops timed.
        public var stops: Int
    }

    /// Live stories. Default 50.
    public var stories = 50
    /// Stops timed. Default 200.
    public var stops = 200

    /// Opens the store measured.
    public var open: BenchStoreOpener

    /// Creates the benchmark with its defaults, over the stores `open` makes.
    public init(open: @escaping BenchStoreOpener) { self.open = open }

    /// Runs it in its own project and a fresh store, both removed at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let tool = try RedisBenchmarkTool(configuration: client.configuration)
        logger.info("redis-benchmark: PING, 1 client")
        let ping = try tool.pingP50Milliseconds()
        let world = try await BenchWorld.make(stories: self.stories, open: self.open)
        let settled = Rendezvous()
        logger.info("wave: \(self.stops) emergency stops with \(self.stories) live stories")
        let (samples, withdrawn) = try await world.withOrchestrator(
            client.configuration, consumer: "bench-stop", logger: logger,
            hooks: EventDispatcher.Hooks(
                settled: { signal, _ in settled.reach(signal.envelope.messageID) }
            )
        ) { orchestrator, bus in
            var samples = LatencySamples(capacity: self.stops)
            var withdrawn = 0
            for _ in 0..<self.stops {
                let out = orchestrator.tasks.outstandingCount
                let stop = Envelope(
                    eventType: .systemEmergencyStop, payload: ["reason": "bench", "by": "bench"], source: "bench",
                    project: world.project.key, priority: .critical)
                settled.expect(stop.messageID)
                let start = ContinuousClock.now
                _ = try await bus.publish(stop, to: Channels.system(world.project))
                let at = await settled.wait()
                samples.record(at - start)
                guard orchestrator.tasks.isHalted(project: world.project.key), orchestrator.tasks.outstandingCount == 0 else {
                    throw BenchmarkError("the stop did not halt dispatch and withdraw every task")
                }
                withdrawn += out
                let clear = Envelope(
                    eventType: .systemEmergencyCleared, payload: ["reason": "bench", "by": "bench"], source: "bench",
                    project: world.project.key, priority: .critical)
                settled.expect(clear.messageID)
                _ = try await bus.publish(clear, to: Channels.system(world.project))
                _ = await settled.wait()
            }
            return (samples, withdrawn)
        }
        return Result(
            halt_p50_ms: rounded(samples.percentileMilliseconds(50), places: 4), halt_p99_ms: rounded(samples.percentileMilliseconds(99), places: 4),
            halt_max_ms: rounded(samples.maxMilliseconds), tasks_withdrawn_per_stop: rounded(Double(withdrawn) / Double(max(1, self.stops)), places: 1),
            ping_p50_ms: ping, stories: self.stories, stops: self.stops
        )
    }
}
