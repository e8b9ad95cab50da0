import Foundation
import Logging
import NIOPosix
import WaveBus
import WaveProtocol
import WaveRedis

/// `wave bench bus`: publish→delivery latency over sequential messages and the end-to-end rate
/// of a pipelined burst (publish → deliver → acknowledge), beside redis-benchmark's PING p50 and
/// pipelined XADD rate on the same server in the same run.
public struct BusBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Publish → delivery, p50, one message at a time.
        public var delivery_p50_ms: Double
        /// Publish → delivery, p99.
        public var delivery_p99_ms: Double
        /// Publish → delivery, worst.
        public var delivery_max_ms: Double
        /// Burst: messages / (first publish → last acknowledgement).
        public var burst_per_s: Double
        /// Burst: published − delivered (distinct).
        public var burst_lost: Int
        /// redis-benchmark's PING p50, same server, same run.
        public var ping_p50_ms: Double
        /// redis-benchmark's XADD rate with `-P 32`, same server, same run.
        public var xadd_pipelined_per_s_redis_benchmark: Double
        /// `delivery_p99_ms / ping_p50_ms` (bar ≤ 5).
        public var delivery_p99_ratio: Double
        /// `burst_per_s / xadd_pipelined_per_s_redis_benchmark` (bar ≥ 0.30).
        public var burst_ratio: Double
        /// Sequential messages timed.
        public var sequential: Int
        /// Burst size.
        public var burst: Int
        /// Publish batches in flight at once during the burst.
        public var publishers: Int
    }

    /// Sequential messages. Default 10 000.
    public var sequential = 10_000
    /// Burst size. Default 100 000.
    public var burst = 100_000
    /// Publish batch size for the burst. Default 100.
    public var batch = 100
    /// Batches in flight at once during the burst (concurrent publishers). Default 2.
    public var publishers = 2
    /// redis-benchmark's PING count. Default 100 000.
    public var rawPings = 100_000

    /// Creates a benchmark with the default sizes.
    public init() {}

    /// Runs it on its own project's streams, deleted at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let tool = try RedisBenchmarkTool(configuration: client.configuration)
        let project = "bench-\(UUID().uuidString.prefix(8).lowercased())"
        let latencyStream = Channels.signals(try ProjectName(project + "-latency"))
        let burstStream = Channels.signals(try ProjectName(project + "-burst"))
        let rawKey = "wave:bench:raw:\(UUID().uuidString.prefix(8).lowercased())"
        defer {
            Task {
                _ = try? await client.send(
                    DelCommand(keys: [latencyStream, burstStream, rawKey, deadLetterStream(for: latencyStream), deadLetterStream(for: burstStream)]))
            }
        }

        logger.info("redis-benchmark: PING, 1 client")
        let ping = try tool.pingP50Milliseconds(requests: self.rawPings)
        logger.info("wave: publish → delivery, \(self.sequential) messages one at a time")
        // The timing loop, the publishing connection and the consumer's connection share one event
        // loop and the loop runs the timing code (as the orchestrator runs its handlers on the
        // consumer's loop), so no thread hop sits between a reply and the code that waits for it.
        let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let latencyClient = try RedisClient(configuration: client.configuration, eventLoopGroup: loopGroup, logger: logger)
        let latency: LatencySamples
        do {
            latency = try await withTaskExecutorPreference(EventLoopTaskExecutor(loopGroup.next())) {
                try await self.measureLatency(bus: RedisEventBus(client: latencyClient, logger: logger), stream: latencyStream, project: project)
            }
            await latencyClient.shutdown()
            try? await loopGroup.shutdownGracefully()
        } catch {
            await latencyClient.shutdown()
            try? await loopGroup.shutdownGracefully()
            throw error
        }
        logger.info("redis-benchmark: XADD -P 32")
        let rawXAdd = try tool.pipelinedXAddPerSecond(key: rawKey, requests: 200_000, pipeline: 32)
        logger.info("wave: burst of \(self.burst) in batches of \(self.batch)")
        let burstGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let burstClient = try RedisClient(configuration: client.configuration, eventLoopGroup: burstGroup, logger: logger)
        let (rate, lost) = try await withTaskExecutorPreference(EventLoopTaskExecutor(burstGroup.next())) {
            try await self.measureBurst(bus: RedisEventBus(client: burstClient, logger: logger), stream: burstStream, project: project)
        }
        await burstClient.shutdown()
        try? await burstGroup.shutdownGracefully()
        _ = try await client.send(DelCommand(keys: [latencyStream, burstStream, rawKey]))

        let p99 = latency.percentileMilliseconds(99)
        return Result(
            delivery_p50_ms: rounded(latency.percentileMilliseconds(50), places: 4),
            delivery_p99_ms: rounded(p99, places: 4),
            delivery_max_ms: rounded(latency.maxMilliseconds, places: 3),
            burst_per_s: rate.rounded(),
            burst_lost: lost,
            ping_p50_ms: ping,
            xadd_pipelined_per_s_redis_benchmark: rawXAdd.rounded(),
            delivery_p99_ratio: rounded(ping > 0 ? p99 / ping : 0),
            burst_ratio: rounded(rawXAdd > 0 ? rate / rawXAdd : 0),
            sequential: self.sequential,
            burst: self.burst,
            publishers: max(1, self.publishers)
        )
    }

    private func measureLatency(bus: RedisEventBus, stream: String, project: String) async throws -> LatencySamples {
        try await bus.createGroup("bench", on: stream, start: .newEntries)
        var options = ConsumerOptions(streams: [stream], group: "bench", consumer: "bench-1")
        options.blockTime = .seconds(1)
        let count = self.sequential
        return try await bus.withConsumer(options) { deliveries in
            var iterator = deliveries.makeAsyncIterator()
            var samples = LatencySamples(capacity: count)
            let clock = ContinuousClock()
            for i in 0..<(count + 200) {
                let envelope = Envelope(
                    eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: project, storyID: "S-\(i)")
                let start = clock.now
                _ = try await bus.publish(envelope, to: stream)
                guard let delivery = await iterator.next() else { throw BenchmarkError("the consumer stopped") }
                let elapsed = clock.now - start
                if i >= 200 { samples.record(elapsed) }  // the first 200 warm up
                try await bus.acknowledge([delivery])
            }
            return samples
        }
    }

    private func measureBurst(bus: RedisEventBus, stream: String, project: String) async throws -> (Double, Int) {
        try await bus.createGroup("bench", on: stream, start: .newEntries)
        var options = ConsumerOptions(streams: [stream], group: "bench", consumer: "bench-1")
        options.blockTime = .seconds(1)
        let total = self.burst
        let batch = self.batch
        let clock = ContinuousClock()
        let start = clock.now
        let received = try await bus.withConsumer(options) { deliveries in
            try await withThrowingTaskGroup(of: Int.self) { group in
                let publishers = max(1, self.publishers)
                for publisher in 0..<publishers {
                    group.addTask {
                        // Publisher p sends batches p, p + publishers, …: `publishers` batches in flight.
                        var next = publisher * batch
                        while next < total {
                            let n = min(batch, total - next)
                            let envelopes = (0..<n).map { i in
                                (
                                    stream: stream,
                                    envelope: Envelope(
                                        eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: project,
                                        storyID: "S-\(next + i)")
                                )
                            }
                            _ = try await bus.publish(batch: envelopes)
                            next += publishers * batch
                        }
                        return -1
                    }
                }
                group.addTask {
                    // A consumer that handles each read as a batch and acknowledges it in one command.
                    // Message n carries story id "S-n": a bitmap counts distinct deliveries without
                    // hashing 100 000 message ids (the check, not the bus, would be measured).
                    var received = [Bool](repeating: false, count: total)
                    var distinct = 0
                    var iterator = deliveries.makeAsyncIterator()
                    while distinct < total, let batch = await iterator.nextBatch() {
                        for delivery in batch {
                            guard let n = delivery.envelope?.storyID.flatMap({ Int($0.dropFirst(2)) }), n >= 0, n < total else {
                                throw BenchmarkError("a delivery that the burst did not publish: \(delivery.id)")
                            }
                            if !received[n] {
                                received[n] = true
                                distinct += 1
                            }
                        }
                        try await bus.acknowledge(batch)
                    }
                    return distinct
                }
                var distinct = 0
                for try await value in group where value >= 0 { distinct = value }
                return distinct
            }
        }
        let elapsed = clock.now - start
        let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
        return (Double(total) / seconds, total - received)
    }
}
