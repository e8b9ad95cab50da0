import Foundation
import Logging
import NIOCore
import NIOPosix
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

enum BusKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, redis
    var testDescription: String { self.rawValue }

    /// Redis runs when the test script started a server, or under CI (where its absence fails).
    static var available: [BusKind] { TestServers.available(TestServers.plain) ? [.memory, .redis] : [.memory] }

    func makeBus(
        url given: String? = nil, loops: (any EventLoopGroup)? = nil, adjust: (inout RedisConfiguration) -> Void = { _ in }
    ) throws -> any EventBus {
        switch self {
        case .memory:
            return InMemoryEventBus()
        case .redis:
            let url = try given ?? TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
            guard let loops else { return RedisEventBus(client: try TestServers.client(url, adjust), logger: TestServers.logger) }
            var configuration = try RedisConfiguration(url: url)
            adjust(&configuration)
            return RedisEventBus(
                client: try RedisClient(configuration: configuration, eventLoopGroup: loops, logger: TestServers.logger), logger: TestServers.logger)
        }
    }
}

/// What the dispatcher settled, by message id, with waiters resumed by each result (no polling).
actor Settled {
    var results: [String: [DispatchResult]] = [:]
    var waiters: [(token: Int, id: String, count: Int, continuation: CheckedContinuation<[DispatchResult], Never>)] = []
    var nextToken = 0

    func record(_ messageID: String, _ result: DispatchResult) {
        self.results[messageID, default: []].append(result)
        let ready = self.waiters.filter { self.results[$0.id, default: []].count >= $0.count }
        self.waiters.removeAll { self.results[$0.id, default: []].count >= $0.count }
        for waiter in ready { waiter.continuation.resume(returning: self.results[waiter.id] ?? []) }
    }

    /// Waits until `count` results for the message were settled; a cancelled wait (its deadline
    /// passed) returns what there is, so that the caller's deadline can fail the test.
    func wait(for messageID: String, count: Int) async -> [DispatchResult] {
        if let results = self.results[messageID], results.count >= count { return results }
        let token = self.nextToken
        self.nextToken += 1
        return await withTaskCancellationHandler {
            await withCheckedContinuation { continuation in
                if Task.isCancelled {
                    continuation.resume(returning: self.results[messageID] ?? [])
                } else {
                    self.waiters.append((token, messageID, count, continuation))
                }
            }
        } onCancel: {
            Task { await self.cancel(token) }
        }
    }

    func cancel(_ token: Int) {
        guard let index = self.waiters.firstIndex(where: { $0.token == token }) else { return }
        let waiter = self.waiters.remove(at: index)
        waiter.continuation.resume(returning: self.results[waiter.id] ?? [])
    }
}

struct HarnessError: Error, CustomStringConvertible {
    let description: String
}

/// An orchestrator over a real bus (in-memory or Redis) and a fresh SQLite store.
struct Harness: Sendable {
    let bus: any EventBus
    let store: SQLiteStore
    let orchestrator: Orchestrator
    let project: ProjectName
    let settled: Settled
    let directory: URL

    static func make(
        _ kind: BusKind, name: String = #function, redisURL: String? = nil, redis adjust: (inout RedisConfiguration) -> Void = { _ in },
        engine: EngineConfiguration = Harness.fastEngine, asDeployed: Bool = false, logger given: Logger? = nil,
        configure: (inout OrchestratorConfiguration) -> Void = { _ in },
        register: (inout HandlerRegistry) -> Void = { _ in }
    ) throws -> Harness {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-runtime-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var logger = Logger(label: "runtime-test")
        logger.logLevel = .critical
        if let given { logger = given }
        let store = try SQLiteStore(
            location: StoreLocation(path: directory.appendingPathComponent("wave.sqlite").path),
            engine: StoryEngine(configuration: engine), logger: logger)
        let project = try ProjectName("t-\(name.prefix(while: { $0 != "(" }).lowercased().prefix(30))-\(UUID().uuidString.prefix(8).lowercased())")
        var configuration = OrchestratorConfiguration(projects: [project], consumer: "test-\(UUID().uuidString.prefix(6))")
        configuration.blockTime = .milliseconds(200)
        // As `wave run` deploys it: the Redis client on one event-loop thread, which also runs
        // everything but the signal handling (that runs on the store's executor).
        let loops: (any EventLoopGroup)? = asDeployed ? MultiThreadedEventLoopGroup(numberOfThreads: 1) : nil
        if let loops { configuration.executor = EventLoopTaskExecutor(loops.next()) }
        configure(&configuration)
        let settled = Settled()
        let bus = try kind.makeBus(url: redisURL, loops: loops, adjust: adjust)
        let orchestrator = Orchestrator(
            bus: bus, store: store.asStateStore, configuration: configuration, logger: logger, register: register,
            hooks: EventDispatcher.Hooks(settled: { signal, result in
                let id = signal.envelope.messageID
                Task { await settled.record(id, result) }
            }))
        return Harness(bus: bus, store: store, orchestrator: orchestrator, project: project, settled: settled, directory: directory)
    }

    /// Retries quickly (10 ms backoff), so that tests see them.
    static let fastEngine: EngineConfiguration = {
        var configuration = EngineConfiguration.standard
        configuration.backoffBase = .milliseconds(10)
        configuration.backoffCap = .milliseconds(40)
        return configuration
    }()

    /// Creates a session of `stories` and returns its id (the orchestrator starts it in `prepare`).
    func session(_ stories: [NewStory]) throws -> String {
        try self.store.createSession(project: self.project.key, wave: 1, stories: stories, budgetUSD: 100).id
    }

    /// Prepares the orchestrator, consumes while `body` runs, then stops.
    func running(_ body: @escaping @Sendable () async throws -> Void) async throws {
        try await self.orchestrator.prepare()
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await self.orchestrator.dispatcher.run() }
            defer { group.cancelAll() }
            try await body()
        }
    }

    /// Publishes a signal from an agent and waits until the dispatcher settled it.
    @discardableResult
    func signal(
        _ type: EventType, story: String?, from source: String, payload: [String: JSONValue] = [:], session: String? = nil,
        seq: UInt64? = nil, messageID: String = MessageID.make(), stream: String? = nil, waitFor count: Int = 1
    ) async throws -> [DispatchResult] {
        let envelope = Envelope(
            eventType: type, payload: payload, source: source, project: self.project.key, messageID: messageID,
            sessionID: session, storyID: story, seq: seq)
        _ = try await self.bus.publish(envelope, to: stream ?? (type.allowedOnSignalStreams ? Channels.signals(self.project) : Channels.system(self.project)))
        return try await self.settledResults(messageID, count: count)
    }

    func settledResults(_ messageID: String, count: Int = 1) async throws -> [DispatchResult] {
        let settled = self.settled
        return try await within(.seconds(10), "settling \(messageID)") { await settled.wait(for: messageID, count: count) }
    }

    /// A gate result signal.
    @discardableResult
    func gate(
        _ gate: Int, story: String, from source: String, result: String = "pass", extra: [String: JSONValue] = [:], session: String? = nil
    ) async throws -> HandlerOutcome? {
        var payload: [String: JSONValue] = ["gate_id": .string("gate-\(gate)"), "result": .string(result)]
        payload.merge(extra) { _, new in new }
        return try await self.signal(.gatePassed, story: story, from: source, payload: payload, session: session).first?.outcomes.first?.outcome
    }

    /// Tasks on a role's stream (newest `count`, oldest first), decoded.
    func tasks(_ role: String, count: Int = 100) async throws -> [TaskEntry] {
        try await self.bus.entries(of: Channels.tasks(self.project, role), count: count).map { try TaskEntry(decoding: $0.fields) }
    }

    /// The story as stored.
    func story(_ id: String) throws -> StoryRecord { try self.store.story(id, session: nil) }

    /// Gate checkpoints of a story.
    func gateCheckpoints(_ id: String, session: String) throws -> [CheckpointRecord] {
        try self.store.checkpoints(session: session, story: id).filter { $0.type == "gate" }
    }

    /// Passes gate-0 (the PM's plan, then the CTO's authorization).
    func passGateZero(_ story: String, devRoles: [String] = ["be"]) async throws {
        try await self.gate(0, story: story, from: "PM-1", extra: ["dev_roles": .array(devRoles.map { .string($0) })])
        try await self.gate(0, story: story, from: "CTO-1")
    }

    /// Waits until a role's stream holds at least `count` tasks for `story` (resumed by the
    /// stream's own consumer group, not by looking again and again).
    func awaitTasks(_ role: String, story: String, count: Int, deadline: Duration = .seconds(10)) async throws -> [TaskEntry] {
        try await self.awaitTasks(role, story: story, "\(count) \(role) tasks for \(story)", deadline: deadline) { $0.count >= count }
    }

    /// Waits until the tasks of a role's stream for `story` satisfy `done`.
    func awaitTasks(
        _ role: String, story: String, _ what: String, deadline: Duration = .seconds(10), until done: @escaping @Sendable ([TaskEntry]) -> Bool
    ) async throws -> [TaskEntry] {
        let bus = self.bus
        var options = ConsumerOptions(streams: [Channels.tasks(self.project, role)], group: "watch-\(UUID().uuidString.prefix(6))", consumer: "w")
        options.entries = .tasks
        options.start = .beginning
        options.blockTime = .milliseconds(100)
        let consumer = options
        return try await within(deadline, what) {
            try await bus.withConsumer(consumer) { deliveries in
                var seen: [TaskEntry] = []
                for await delivery in deliveries {
                    if let task = delivery.task, task.storyID == story { seen.append(task) }
                    if done(seen) { break }
                }
                return seen
            }
        }
    }
}
