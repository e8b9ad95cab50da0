import ArgumentParser
import Foundation
import Logging
import WaveBench
import WaveOperations
import WaveRedis
import WaveStore

/// `wave bench …`: measurements printed beside the raw limit measured in the same run.
struct BenchCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench",
        abstract: "Benchmarks; each prints Wave's figures beside the raw limit of the same run.",
        subcommands: [RedisBench.self, BusBench.self, StoreBench.self, LatencyBench.self, ThroughputBench.self, StopBench.self, SoakBench.self]
    )
}

/// `wave bench redis`.
struct RedisBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "redis",
        abstract: "The RESP client: PING round trips and pipelined XADD, beside redis-benchmark on the same server.",
        discussion: "Bars (QUALITY.md): pipelined XADD ≥ 70 % of redis-benchmark -P 32; PING p50 ≤ 1.5× redis-benchmark's."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "PING round trips to time.")
    var pings = 20_000

    @Option(help: "XADD commands to send (redis-benchmark's -n).")
    var xadds = 200_000

    func validate() throws {
        guard self.pings > 0, self.xadds > 0 else { throw ValidationError("--pings and --xadds must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench redis")
        var benchmark = RedisBenchmark()
        benchmark.pings = self.pings
        benchmark.xadds = self.xadds
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
        } else {
            print(
                BenchTable.render(
                    title: "wave bench redis (\(configuration.redactedURL))",
                    rows: [
                        .init(
                            "XADD, 32 in flight (/s)", wave: result.xadd_pipelined_per_s, raw: result.xadd_pipelined_per_s_redis_benchmark,
                            ratio: result.xadd_ratio, bar: "≥ 0.70", meets: result.xadd_ratio >= 0.70),
                        .init(
                            "XADD, batches of 32 (/s)", wave: result.xadd_batch32_per_s, raw: result.xadd_pipelined_per_s_redis_benchmark,
                            ratio: rounded(result.xadd_batch32_per_s / max(1, result.xadd_pipelined_per_s_redis_benchmark)), bar: "", meets: nil),
                        .init(
                            "PING p50 (ms)", wave: result.rtt_p50_ms, raw: result.rtt_p50_ms_redis_benchmark,
                            ratio: result.rtt_p50_ratio, bar: "≤ 1.5", meets: result.rtt_p50_ratio <= 1.5),
                        .init("PING p99 (ms)", wave: result.rtt_p99_ms, raw: nil, ratio: nil, bar: "", meets: nil),
                        .init("PING p50, pooled client (ms)", wave: result.rtt_p50_ms_pooled, raw: nil, ratio: nil, bar: "", meets: nil),
                        .init("PING p99, pooled client (ms)", wave: result.rtt_p99_ms_pooled, raw: nil, ratio: nil, bar: "", meets: nil),
                    ]
                )
            )
        }
    }
}

/// One-line JSON with sorted keys.
enum JSONOutput {
    static func line(_ value: some Encodable) throws -> String {
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        return String(decoding: try encoder.encode(value), as: UTF8.self)
    }
}

/// A plain table for benchmark figures.
enum BenchTable {
    struct Row {
        var name: String
        var wave: Double
        var raw: Double?
        var ratio: Double?
        var bar: String
        var meets: Bool?
        init(_ name: String, wave: Double, raw: Double?, ratio: Double?, bar: String, meets: Bool?) {
            self.name = name
            self.wave = wave
            self.raw = raw
            self.ratio = ratio
            self.bar = bar
            self.meets = meets
        }
    }

    static func render(title: String, rows: [Row]) -> String {
        func pad(_ text: String, _ width: Int) -> String { text + String(repeating: " ", count: max(0, width - text.count)) }
        func number(_ value: Double?) -> String {
            guard let value else { return "" }
            return value >= 1000 ? String(Int(value.rounded())) : String(value)
        }
        var lines = [title, pad("measure", 30) + pad("wave", 12) + pad("raw limit", 12) + pad("ratio", 8) + pad("bar", 8) + "verdict"]
        for row in rows {
            let verdict = row.meets.map { $0 ? "meets the bar" : "BELOW the bar" } ?? ""
            lines.append(pad(row.name, 30) + pad(number(row.wave), 12) + pad(number(row.raw), 12) + pad(number(row.ratio), 8) + pad(row.bar, 8) + verdict)
        }
        return lines.joined(separator: "\n")
    }
}

func rounded(_ value: Double) -> Double { (value * 1000).rounded() / 1000 }

/// `wave bench bus`.
struct BusBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bus",
        abstract: "The Redis event bus: publish→delivery latency and an acknowledged burst, beside redis-benchmark on the same server.",
        discussion: "Bars (QUALITY.md): delivery p99 ≤ 5× redis-benchmark's PING p50; burst ≥ 30 % of its pipelined XADD rate; 0 lost."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Messages timed one at a time.")
    var sequential = 10_000

    @Option(help: "Messages in the burst.")
    var burst = 100_000

    @Option(help: "Batches of 100 in flight at once during the burst (concurrent publishers).")
    var publishers = 2

    func validate() throws {
        guard self.sequential > 0, self.burst > 0, self.publishers > 0 else { throw ValidationError("--sequential, --burst and --publishers must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench bus")
        var benchmark = BusBenchmark()
        benchmark.sequential = self.sequential
        benchmark.burst = self.burst
        benchmark.publishers = self.publishers
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
        } else {
            print(
                BenchTable.render(
                    title: "wave bench bus (\(configuration.redactedURL))",
                    rows: [
                        .init(
                            "delivery p50 (ms)", wave: result.delivery_p50_ms, raw: result.ping_p50_ms,
                            ratio: rounded(result.delivery_p50_ms / max(result.ping_p50_ms, 0.001)), bar: "", meets: nil),
                        .init(
                            "delivery p99 (ms)", wave: result.delivery_p99_ms, raw: result.ping_p50_ms, ratio: result.delivery_p99_ratio, bar: "≤ 5",
                            meets: result.delivery_p99_ratio <= 5),
                        .init("delivery max (ms)", wave: result.delivery_max_ms, raw: nil, ratio: nil, bar: "", meets: nil),
                        .init(
                            "burst (/s)", wave: result.burst_per_s, raw: result.xadd_pipelined_per_s_redis_benchmark, ratio: result.burst_ratio, bar: "≥ 0.30",
                            meets: result.burst_ratio >= 0.30),
                        .init("burst lost", wave: Double(result.burst_lost), raw: nil, ratio: nil, bar: "0", meets: result.burst_lost == 0),
                    ]
                )
            )
        }
    }
}

/// `wave bench store`.
struct StoreBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "store",
        abstract: "The SQLite store: committed gate transitions per second, one per transaction and batched, beside a raw SQLite loop.",
        discussion: """
            Runs in fresh temporary databases (WAL, the store's settings), deleted at the end. Bars (issue 4):             ≥ 5 000/s single and ≥ 30 000/s batched on a quiet machine, and ≥ 25 % of the raw loop.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Transitions per mode.")
    var transitions = 20_000

    @Option(help: "Transitions per transaction when batched.")
    var batch = 100

    @Flag(help: "synchronous=FULL instead of NORMAL.")
    var full = false

    func validate() throws {
        guard self.transitions > 0, self.batch > 0 else { throw ValidationError("--transitions and --batch must be positive") }
    }

    func run() async throws {
        let synchronous: SynchronousMode = self.full ? .full : .normal
        var benchmark = StoreBenchmark(open: benchStore(synchronous: synchronous))
        benchmark.transitions = self.transitions
        benchmark.batch = self.batch
        benchmark.synchronous = synchronous
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-bench-store-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result: StoreBenchmark.Result
        do {
            result = try await benchmark.run(directory: directory, logger: Logger(label: "wave.bench"))
        } catch let error as BenchmarkError {
            throw CLIError(exitCode: 1, message: error.description)
        }
        if self.global.json {
            print(try JSONOutput.line(result))
            return
        }
        print(
            BenchTable.render(
                title: "wave bench store (SQLite, synchronous=\(result.synchronous), \(result.transitions) transitions per mode)",
                rows: [
                    .init(
                        "transitions/s, 1 per commit", wave: result.single_per_s, raw: result.raw_single_per_s, ratio: result.single_ratio, bar: "≥ 0.25",
                        meets: result.single_ratio >= 0.25 && result.single_per_s >= 5_000),
                    .init(
                        "transitions/s, \(result.batch) per commit", wave: result.batched_per_s, raw: result.raw_batched_per_s, ratio: result.batched_ratio,
                        bar: "", meets: nil),
                    .init(
                        "floor: same rows, raw loop", wave: result.schema_floor_batched_per_s, raw: result.raw_batched_per_s,
                        ratio: result.schema_floor_ratio_to_raw, bar: "(the ceiling)", meets: nil),
                    .init(
                        "batched vs the floor", wave: result.batched_per_s, raw: result.schema_floor_batched_per_s,
                        ratio: result.batched_floor_ratio, bar: "≥ 0.75", meets: result.batched_floor_ratio >= 0.75),
                ]
            )
        )
        print("bars re-based on the schema floor (QUALITY.md); one per commit also ≥ 5 000/s on a quiet machine")
    }
}

/// `wave bench latency`.
struct LatencyBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "latency",
        abstract: "The orchestrator: gate signals published one at a time to live stories; publish → handler and publish → committed.",
        discussion: """
            Runs the real orchestrator (dispatcher, handlers, a fresh temporary store) on its own project, removed at \
            the end. Bars (QUALITY.md): handler p50 ≤ 2.5× and p99 ≤ 5× redis-benchmark's PING p50; committed p99 ≤ \
            2 ms + the raw SQLite commit p99 of the same run.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Signals timed.")
    var signals = 10_000

    func validate() throws {
        guard self.signals > 0 else { throw ValidationError("--signals must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench latency")
        var benchmark = LatencyBenchmark(open: benchStore())
        benchmark.signals = self.signals
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
            return
        }
        print(
            BenchTable.render(
                title: "wave bench latency (\(configuration.redactedURL), \(result.signals) signals)",
                rows: [
                    .init(
                        "handler p50 (ms)", wave: result.handler_p50_ms, raw: result.ping_p50_ms, ratio: result.handler_p50_ratio, bar: "≤ 2.5",
                        meets: result.handler_p50_ratio <= 2.5),
                    .init(
                        "handler p99 (ms)", wave: result.handler_p99_ms, raw: result.ping_p50_ms, ratio: result.handler_p99_ratio, bar: "≤ 5",
                        meets: result.handler_p99_ratio <= 5),
                    .init("handler max (ms)", wave: result.handler_max_ms, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("committed p50 (ms)", wave: result.committed_p50_ms, raw: result.raw_commit_p50_ms, ratio: nil, bar: "", meets: nil),
                    .init(
                        "committed p99 (ms)", wave: result.committed_p99_ms, raw: result.raw_commit_p99_ms, ratio: nil, bar: "≤ \(result.committed_p99_bar_ms)",
                        meets: result.committed_p99_ms <= result.committed_p99_bar_ms),
                    .init("committed max (ms)", wave: result.committed_max_ms, raw: nil, ratio: nil, bar: "", meets: nil),
                ]))
    }
}

/// `wave bench throughput`.
struct ThroughputBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "throughput",
        abstract: "The orchestrator under load: phase A unpaced (no-op handlers, then real handlers), phase B paced with MAXLEN ~ 10000.",
        discussion: """
            Bars (QUALITY.md): dispatched ≥ 30 % of redis-benchmark's pipelined XADD; committed ≥ 25 % of the raw \
            batched SQLite loop; phase B loses 0 (entries trimmed unread by the publisher are counted, not lost).
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Signals per phase.")
    var signals = 100_000

    @Option(help: "Phase B's pace (signals per second).")
    var pace = 28_000.0

    func validate() throws {
        guard self.signals > 0, self.pace > 0 else { throw ValidationError("--signals and --pace must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench throughput")
        var benchmark = ThroughputBenchmark(open: benchStore())
        benchmark.signals = self.signals
        benchmark.pace = self.pace
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
            return
        }
        print(
            BenchTable.render(
                title: "wave bench throughput (\(configuration.redactedURL), \(result.signals) signals per phase)",
                rows: [
                    .init(
                        "A: dispatched, no-op (/s)", wave: result.dispatched_per_s, raw: result.xadd_pipelined_per_s_redis_benchmark,
                        ratio: result.dispatched_ratio, bar: "≥ 0.30",
                        meets: result.dispatched_ratio >= 0.30),
                    .init(
                        "A: committed, real (/s)", wave: result.committed_per_s, raw: result.raw_batched_commits_per_s, ratio: result.committed_ratio,
                        bar: "≥ 0.05",
                        meets: result.committed_ratio >= 0.05),
                    .init(
                        "A: committed vs schema floor", wave: result.committed_per_s, raw: result.schema_floor_batched_per_s,
                        ratio: result.committed_floor_ratio, bar: "≥ 0.50", meets: result.committed_floor_ratio >= 0.50),
                    .init(
                        "A: committed vs the store alone", wave: result.committed_per_s, raw: result.store_batched_per_s,
                        ratio: result.committed_store_ratio, bar: "(ceiling)", meets: nil),
                    .init("B: publisher (/s)", wave: result.publisher_per_s, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("B: handled", wave: Double(result.handled), raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("B: trimmed unread", wave: Double(result.trimmed_unread), raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("B: lost", wave: Double(result.lost), raw: nil, ratio: nil, bar: "0", meets: result.lost == 0),
                ]))
    }
}

/// `wave bench stop`.
struct StopBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "The emergency stop: published → dispatch halted and every task withdrawn, with live stories.",
        discussion: "Bar (QUALITY.md): p99 ≤ 10 ms with 50 live stories (the reference's budget was 5 s)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Live stories.")
    var stories = 50

    @Option(help: "Stops timed.")
    var stops = 200

    func validate() throws {
        guard self.stories > 0, self.stops > 0 else { throw ValidationError("--stories and --stops must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench stop")
        var benchmark = StopBenchmark(open: benchStore())
        benchmark.stories = self.stories
        benchmark.stops = self.stops
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
            return
        }
        print(
            BenchTable.render(
                title: "wave bench stop (\(configuration.redactedURL), \(result.stories) live stories, \(result.stops) stops)",
                rows: [
                    .init("halt p50 (ms)", wave: result.halt_p50_ms, raw: result.ping_p50_ms, ratio: nil, bar: "", meets: nil),
                    .init("halt p99 (ms)", wave: result.halt_p99_ms, raw: result.ping_p50_ms, ratio: nil, bar: "≤ 10 ms", meets: result.halt_p99_ms <= 10),
                    .init("halt max (ms)", wave: result.halt_max_ms, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("tasks withdrawn per stop", wave: result.tasks_withdrawn_per_stop, raw: nil, ratio: nil, bar: "", meets: nil),
                ]))
    }
}

/// `wave bench soak`.
struct SoakBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "soak",
        abstract: "Memory over a long run: signals at a steady rate through real handlers, resident memory after the warm-up and at the end.",
        discussion:
            "Bar (QUALITY.md): RSS at the end ≤ RSS after 2 minutes + 10 %, with 10 000 signals/s for 10 minutes. Every signal published is accounted for: settled, still waiting in the group (backlog), or lost."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "How long to publish: 90s, 10m, 1h.")
    var duration = "10m"

    @Option(help: "Signals per second.")
    var rate = 10_000.0

    func validate() throws {
        guard let duration = DurationText.parse(self.duration), duration >= .seconds(1) else {
            throw ValidationError("--duration takes a number and a unit (s, m, h), at least 1s, like 10m, not \"\(self.duration)\"")
        }
        guard self.rate > 0 else { throw ValidationError("--rate must be positive") }
    }

    func run() async throws {
        let configuration = try self.global.requireRedis(for: "wave bench soak")
        var benchmark = SoakBenchmark(open: benchStore())
        benchmark.duration = DurationText.parse(self.duration) ?? .seconds(600)
        benchmark.rate = self.rate
        let result = try await runBenchmark(configuration) { try await benchmark.run(client: $0, logger: $1) }
        if self.global.json {
            print(try JSONOutput.line(result))
            return
        }
        print(
            BenchTable.render(
                title: "wave bench soak (\(configuration.redactedURL), \(result.duration_s) s at \(Int(result.target_per_s))/s, \(result.rounds) rounds)",
                rows: [
                    .init("RSS after warm-up (MiB)", wave: result.rss_start_mb, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("RSS at the end (MiB)", wave: result.rss_end_mb, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("RSS growth (%)", wave: result.rss_growth_pct, raw: nil, ratio: nil, bar: "≤ 10", meets: result.rss_growth_pct <= 10),
                    .init("published /s", wave: result.published_per_s, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("settled /s", wave: result.settled_per_s, raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("backlog at the end", wave: Double(result.backlog), raw: nil, ratio: nil, bar: "", meets: nil),
                    .init("lost", wave: Double(result.lost), raw: nil, ratio: nil, bar: "0", meets: result.lost == 0),
                ]))
    }
}

/// Runs a benchmark with a client of its own, shut down afterwards; a benchmark that cannot run
/// (redis-benchmark missing) exits 1 with the reason.
func runBenchmark<Result: Sendable>(
    _ configuration: RedisConfiguration,
    _ body: (RedisClient, Logger) async throws -> Result
) async throws -> Result {
    let logger = Logger(label: "wave.bench")
    let client = try RedisClient(configuration: configuration, logger: logger)
    do {
        let result = try await body(client, logger)
        await client.shutdown()
        return result
    } catch let error as BenchmarkError {
        await client.shutdown()
        throw CLIError(exitCode: 1, message: error.description)
    } catch {
        await client.shutdown()
        throw error
    }
}

/// The stores the benchmarks measure: SQLite files in the benchmark's own folders (the
/// composition root names the implementation; the benchmarks see `StateStore`).
func benchStore(synchronous: SynchronousMode = .normal) -> BenchStoreOpener {
    { path, engine in
        var quiet = Logger(label: "wave.bench.store")
        quiet.logLevel = .warning
        return try SQLiteStore(location: StoreLocation(path: path), synchronous: synchronous, engine: engine, logger: quiet).asStateStore
    }
}
