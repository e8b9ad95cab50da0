import Foundation
import Logging
import NIOCore
import RESP
import WaveRedis

/// `wave bench redis`: the RESP client against the raw limits of the same server in the same
/// run.
///
/// - PING round trips one at a time on one connection, the loop running on the connection's
///   event loop (p50, p99), and again through the pool from an ordinary task;
/// - XADD with 32 in flight (two pipelines of 16 typed commands on one connection, encoded each
///   time) of the same one-field entry that redis-benchmark writes, and again in synchronous
///   batches of 32 (redis-benchmark's own pattern);
/// - `redis-benchmark -c 1 -t ping_mbulk` and `redis-benchmark -c 1 -P 32 XADD …` on the same
///   server.
public struct RedisBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Wave's XADD rate with 32 in flight (two pipelines of 16 on one connection).
        public var xadd_pipelined_per_s: Double
        /// Wave's XADD rate in synchronous batches of 32 (send 32, wait for 32), redis-benchmark's
        /// own pattern.
        public var xadd_batch32_per_s: Double
        /// redis-benchmark's XADD rate with `-P 32`, same server, same run.
        public var xadd_pipelined_per_s_redis_benchmark: Double
        /// Wave's PING round trip, p50, on the connection's event loop.
        public var rtt_p50_ms: Double
        /// Wave's PING round trip, p99, on the connection's event loop.
        public var rtt_p99_ms: Double
        /// redis-benchmark's PING p50, same server, same run.
        public var rtt_p50_ms_redis_benchmark: Double
        /// Wave's PING p50 through the pooled client from an ordinary task (two thread hops).
        public var rtt_p50_ms_pooled: Double
        /// Wave's PING p99 through the pooled client.
        public var rtt_p99_ms_pooled: Double
        /// `xadd_pipelined_per_s / xadd_pipelined_per_s_redis_benchmark` (bar ≥ 0.70).
        public var xadd_ratio: Double
        /// `rtt_p50_ms / rtt_p50_ms_redis_benchmark` (bar ≤ 1.5).
        public var rtt_p50_ratio: Double
        /// PING samples per loop.
        public var pings: Int
        /// XADD commands sent.
        public var xadds: Int
    }

    /// PING round trips per loop. Default 20 000.
    public var pings = 20_000
    /// XADD commands (as redis-benchmark's `-n`). Default 200 000.
    public var xadds = 200_000
    /// Commands in flight. Default 32.
    public var inFlight = 32
    /// PINGs redis-benchmark sends (its `-n`). Default 100 000, as QUALITY.md gives.
    public var rawPings = 100_000

    /// Creates a benchmark with the default sizes.
    public init() {}

    /// Runs the benchmark; keys it writes are deleted at the end.
    public func run(client: RedisClient, logger: Logger) async throws -> Result {
        let tool = try RedisBenchmarkTool(configuration: client.configuration)
        let key = "wave:bench:\(UUID().uuidString.prefix(8).lowercased()):xadd"
        let rawKey = "wave:bench:raw:\(UUID().uuidString.prefix(8).lowercased())"
        defer {
            Task { _ = try? await client.send(DelCommand(keys: [key, rawKey])) }
        }
        _ = try await client.send(PingCommand())

        logger.info("redis-benchmark: PING, 1 client")
        let rawPing = try tool.pingP50Milliseconds(requests: self.rawPings)
        logger.info("wave: PING one at a time on the event loop (\(self.pings))")
        let (ping, pooled) = try await self.measurePing(client: client)
        logger.info("redis-benchmark: XADD -P \(self.inFlight)")
        let rawXAdd = try tool.pipelinedXAddPerSecond(key: rawKey, requests: self.xadds, pipeline: self.inFlight)
        logger.info("wave: XADD \(self.inFlight) in flight (\(self.xadds))")
        let xadd = try await self.measureXAdd(client: client, key: key, windows: 2)
        logger.info("wave: XADD in batches of \(self.inFlight), one at a time (\(self.xadds))")
        let xaddBatched = try await self.measureXAdd(client: client, key: key, windows: 1)
        _ = try await client.send(DelCommand(keys: [key, rawKey]))

        let p50 = ping.percentileMilliseconds(50)
        return Result(
            xadd_pipelined_per_s: xadd.rounded(),
            xadd_batch32_per_s: xaddBatched.rounded(),
            xadd_pipelined_per_s_redis_benchmark: rawXAdd.rounded(),
            rtt_p50_ms: rounded(p50, places: 4),
            rtt_p99_ms: rounded(ping.percentileMilliseconds(99), places: 4),
            rtt_p50_ms_redis_benchmark: rawPing,
            rtt_p50_ms_pooled: rounded(pooled.percentileMilliseconds(50), places: 4),
            rtt_p99_ms_pooled: rounded(pooled.percentileMilliseconds(99), places: 4),
            xadd_ratio: rounded(rawXAdd > 0 ? xadd / rawXAdd : 0),
            rtt_p50_ratio: rounded(rawPing > 0 ? p50 / rawPing : 0),
            pings: self.pings,
            xadds: self.xadds
        )
    }

    private func measurePing(client: RedisClient) async throws -> (LatencySamples, LatencySamples) {
        let count = self.pings
        let onLoop = try await client.withDedicatedConnection { connection in
            try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                let clock = ContinuousClock()
                var samples = LatencySamples(capacity: count)
                for _ in 0..<1000 { _ = try await connection.send(PingCommand()) }
                for _ in 0..<count {
                    let start = clock.now
                    _ = try await connection.send(PingCommand())
                    samples.record(clock.now - start)
                }
                return samples
            }
        }
        let clock = ContinuousClock()
        var pooled = LatencySamples(capacity: count)
        for _ in 0..<count {
            let start = clock.now
            _ = try await client.send(PingCommand())
            pooled.record(clock.now - start)
        }
        return (onLoop, pooled)
    }

    /// XADDs with `inFlight` commands outstanding on one connection, as `windows` pipelines that
    /// each send their next batch as soon as their previous one is answered. With one window this
    /// is exactly redis-benchmark's `-P 32` pattern (send 32, wait for 32); with two, the server
    /// always has the other half queued while one half's replies travel back.
    private func measureXAdd(client: RedisClient, key: String, windows: Int) async throws -> Double {
        let total = self.xadds
        let batchSize = max(1, self.inFlight / windows)
        return try await client.withDedicatedConnection { connection in
            try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                let fields = [(name: "f", value: "v")]
                let clock = ContinuousClock()
                let start = clock.now
                try await withThrowingTaskGroup(of: Void.self) { group in
                    for window in 0..<windows {
                        let share = total / windows + (window < total % windows ? 1 : 0)
                        group.addTask {
                            var sent = 0
                            while sent < share {
                                let n = min(batchSize, share - sent)
                                let batch = [XAddCommand](repeating: XAddCommand(key, fields: fields), count: n)
                                for result in try await connection.pipeline(batch: batch) { _ = try result.get() }
                                sent += n
                            }
                        }
                    }
                    try await group.waitForAll()
                }
                let elapsed = clock.now - start
                let seconds = Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) / 1e18
                return Double(total) / seconds
            }
        }
    }
}
