import Foundation
import Logging
import NIOPosix
import WaveBus
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore

/// `wave bench soak`: signals through real handlers (durable transitions) at a target rate for a
/// long time, in rounds of fresh stories (one session per round, each started by the orchestrator
/// when the one before it completes), measuring the process's resident memory after the warm-up
/// and at the end (QUALITY.md: growth ≤ 10 %), and accounting for every signal published.
public struct SoakBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Resident memory after the warm-up (2 minutes, or a fifth of a shorter run), MiB.
        public var rss_start_mb: Double
        /// Resident memory at the end of the run, MiB.
        public var rss_end_mb: Double
        /// `(rss_end_mb - rss_start_mb) / rss_start_mb × 100` (bar ≤ 10).
        public var rss_growth_pct: Double
        /// Signals published and found nowhere at the end: not in the store's ledger (applied or
        /// acknowledged with no effect), not dead-lettered, not still waiting in the group.
        public var lost: Int
        /// Signals dead-lettered (each with its reason, on the project's DLQ stream).
        public var dead_lettered: Int
        /// Seconds the handlers needed after publishing ended to catch up (at most 60).
        public var drain_s: Double
        /// Signals published.
        public var published: Int
        /// Signals in the store's ledger (applied, or taken with no effect).
        public var settled: Int
        /// Signals still waiting in the group at the end (the handlers' backlog).
        public var backlog: Int
        /// The run's length, seconds.
        public var duration_s: Double
        /// The target rate.
        public var target_per_s: Double
        /// The rate the publisher achieved.
        public var published_per_s: Double
        /// The rate the handlers achieved.
        public var settled_per_s: Double
        /// Rounds of fresh stories.
        public var rounds: Int
    }

    /// How long to publish. Default 10 minutes.
    public var duration: Duration = .seconds(600)
    /// Signals per second. Default 10 000.
    public var rate = 10_000.0
    /// Stories per round (8 signals each). Default 1 250.
    public var storiesPerRound = 1_250
    /// Signals per pipelined publish. Default 100.
    public var batch = 100
    /// When resident memory is first taken. Default: 2 minutes, or a fifth of a shorter run.
    public var warmup: Duration?

    /// Opens the store measured.
    public var open: BenchStoreOpener

    /// Creates the benchmark with its defaults, over the stores `open` makes.
    public init(open: @escaping BenchStoreOpener) { self.open = open }

    /// Runs it in its own project and a fresh store, both removed at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let world = try await BenchWorld.make(stories: self.storiesPerRound, open: self.open)
        let acknowledged = CountDown(target: Int.max)
        let warmup = self.warmup ?? min(.seconds(120), self.duration / 5)
        logger.info("wave: signals at \(Int(self.rate))/s for \(self.duration) through real handlers; memory after \(warmup) and at the end")
        // The publisher stands in for agents, which run in other processes: it gets a client and
        // an event-loop thread of its own instead of sharing the orchestrator's.
        let publisherLoop = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let publisherClient = try RedisClient(configuration: client.configuration, eventLoopGroup: publisherLoop, logger: logger)
        let publisher = RedisEventBus(client: publisherClient, logger: logger)
        defer {
            Task {
                await publisherClient.shutdown()
                try? await publisherLoop.shutdownGracefully()
            }
        }
        return try await world.withOrchestrator(
            client.configuration, consumer: "bench-soak", logger: logger,
            hooks: EventDispatcher.Hooks(
                acknowledged: { acknowledged.add($0.count) }
            )
        ) { _, bus in
            try await withTaskExecutorPreference(EventLoopTaskExecutor(publisherLoop.next())) {
                try await self.publish(world: world, bus: bus, publisher: publisher, acknowledged: acknowledged, warmup: warmup)
            }
        }
    }

    /// Publishes at the pace for the duration, lets the handlers catch up, and takes the figures.
    func publish(world: BenchWorld, bus: RedisEventBus, publisher: RedisEventBus, acknowledged: CountDown, warmup: Duration) async throws -> Result {
        let perRound = self.storiesPerRound * 8
        let interval = Duration.seconds(Double(self.batch) / self.rate)
        let start = ContinuousClock.now
        let end = start + self.duration
        var slot = start
        var published = 0
        var rssStart: Double?
        var round = 0
        // Round r + 1's session exists before round r ends, so that the orchestrator starts it
        // the moment round r's session completes (sessions of a project run one at a time).
        try await self.createRound(1, world: world)
        while ContinuousClock.now < end {
            let index = published % perRound
            if index == 0, published > 0 {
                round += 1
                try await self.createRound(round + 1, world: world)
            }
            let n = min(self.batch, perRound - index)
            let batch = (index..<(index + n)).map { (stream: Channels.signals(world.project), envelope: self.signal(round: round, index: $0, world: world)) }
            _ = try await publisher.publish(batch: batch)
            published += n
            if rssStart == nil, ContinuousClock.now - start >= warmup { rssStart = Self.residentMegabytes() }
            // The pace: the next batch's slot (a deadline, not a check).
            slot = slot.advanced(by: interval)
            // sleep: deadline
            if slot > ContinuousClock.now { try await Task.sleep(until: slot, clock: .continuous) }
        }
        let elapsed = seconds(ContinuousClock.now - start)
        let rssEnd = Self.residentMegabytes()
        // Let the handlers catch up (resumed by the acknowledgements), for at most a minute.
        let published_ = published
        let drainStart = ContinuousClock.now
        acknowledged.retarget(published_)
        _ = await acknowledged.wait(atMost: .seconds(60))
        let drained = seconds(ContinuousClock.now - drainStart)
        // Every signal published is somewhere: in the ledger, on the DLQ, or still in the group.
        let info = try await bus.groups(of: Channels.signals(world.project)).first { $0.group == Channels.orchestratorGroup }
        let backlog = (info?.lag ?? 0) + (info?.pending ?? 0)
        let ledger = try await world.store.processedMessages(project: world.project.key).values.reduce(0, +)
        let dead = try await bus.length(of: Channels.deadLetters(world.project))
        let begin = rssStart ?? rssEnd
        return Result(
            rss_start_mb: rounded(begin, places: 1), rss_end_mb: rounded(rssEnd, places: 1),
            rss_growth_pct: rounded((rssEnd - begin) / max(begin, 1) * 100, places: 2),
            lost: max(0, published - ledger - dead - backlog), dead_lettered: dead, drain_s: rounded(drained, places: 1),
            published: published, settled: ledger, backlog: backlog,
            duration_s: rounded(elapsed, places: 1), target_per_s: self.rate,
            published_per_s: (Double(published) / elapsed).rounded(), settled_per_s: (Double(ledger) / (elapsed + drained)).rounded(), rounds: round + 1
        )
    }

    /// Round `round`'s session (round 0 is the world's own): fresh stories `R{round}-S-{k}`.
    func createRound(_ round: Int, world: BenchWorld) async throws {
        _ = try await world.store.createSession(
            project: world.project.key, wave: round,
            stories: (0..<self.storiesPerRound).map {
                NewStory(id: "R\(round)-S-\($0)", title: "R\(round)-S-\($0)", domain: "backend", agent: "BE-1")
            }, budgetUSD: 1_000_000)
    }

    /// Signal `index` of a round: gate `index / stories` of story `index % stories`, passing.
    func signal(round: Int, index: Int, world: BenchWorld) -> Envelope {
        var envelope = world.signal(index)
        if round > 0, let story = envelope.storyID { envelope.storyID = "R\(round)-\(story)" }
        return envelope
    }

    /// This process's resident memory (`VmRSS` in `/proc/self/status`), MiB.
    static func residentMegabytes() -> Double {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmRSS:") }),
            let kilobytes = line.split(separator: " ").compactMap({ Double($0) }).first
        else { return 0 }
        return kilobytes / 1024
    }
}
