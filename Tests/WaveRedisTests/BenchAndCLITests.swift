import Foundation
import Testing
import WaveBench
import WaveStore
import WaveTesting

@testable import WaveRedis

@Suite("wave bench redis and the CLI")
struct BenchAndCLITests {
    @Test(
        "the Redis benchmark measures both sides on a real server and reports every key",
        .enabled(if: TestServers.available(TestServers.plain)))
    func benchmarkSmoke() async throws {
        let client = try TestServers.client(try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL"))
        var benchmark = RedisBenchmark()
        benchmark.pings = 200
        benchmark.xadds = 3_200
        benchmark.rawPings = 2_000
        let result = try await benchmark.run(client: client, logger: TestServers.logger)
        #expect(result.xadd_pipelined_per_s > 0)
        #expect(result.xadd_pipelined_per_s_redis_benchmark > 0)
        #expect(result.rtt_p50_ms > 0 && result.rtt_p99_ms >= result.rtt_p50_ms)
        #expect(result.rtt_p50_ms_redis_benchmark > 0)
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(result)) as? [String: Any]
        for key in ["xadd_pipelined_per_s", "xadd_pipelined_per_s_redis_benchmark", "rtt_p50_ms", "rtt_p99_ms", "rtt_p50_ms_redis_benchmark"] {
            #expect(json?[key] is Double, "\(key)")
        }
        await client.shutdown()
    }

    @Test("the store benchmark runs every mode, the raw loop on Wave's tables included, and reports every key")
    func storeSmoke() async throws {
        var benchmark = StoreBenchmark(open: sqliteBenchStore)
        benchmark.transitions = 800
        benchmark.batch = 50
        benchmark.storiesPerSession = 20
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-bench-store-test-\(UUID().uuidString.prefix(8))")
        defer { try? FileManager.default.removeItem(at: directory) }
        let result = try await benchmark.run(directory: directory, logger: TestServers.logger)
        for rate in [result.single_per_s, result.batched_per_s, result.raw_single_per_s, result.raw_batched_per_s, result.schema_floor_batched_per_s] {
            #expect(rate > 0)
        }
        #expect(abs(result.schema_floor_ratio_to_raw - result.schema_floor_batched_per_s / result.raw_batched_per_s) < 0.001)
        #expect(abs(result.batched_floor_ratio - result.batched_per_s / result.schema_floor_batched_per_s) < 0.001)
        #expect(result.transitions == 800 && result.batch == 50)
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(result)) as? [String: Any]
        for key in [
            "single_per_s", "batched_per_s", "raw_single_per_s", "raw_batched_per_s", "schema_floor_batched_per_s", "schema_floor_ratio_to_raw",
            "batched_floor_ratio",
        ] {
            #expect(json?[key] is Double, "\(key)")
        }
    }

    @Test(
        "the soak benchmark runs rounds of fresh stories through real handlers, accounts for every signal and reports memory",
        .enabled(if: TestServers.available(TestServers.plain)))
    func soakSmoke() async throws {
        let client = try TestServers.client(try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL"))
        var benchmark = SoakBenchmark(open: sqliteBenchStore)
        benchmark.duration = .seconds(3)
        benchmark.rate = 1_000
        benchmark.storiesPerRound = 50
        benchmark.warmup = .seconds(1)
        let result = try await benchmark.run(client: client, logger: TestServers.logger)
        #expect(result.published > 0 && result.rounds >= 2, "\(result)")
        #expect(result.settled == result.published && result.backlog == 0, "every signal in the ledger after the drain: \(result)")
        #expect(result.lost == 0 && result.dead_lettered == 0, "\(result)")
        #expect(result.rss_start_mb > 0 && result.rss_end_mb > 0)
        let json = try JSONSerialization.jsonObject(with: try JSONEncoder().encode(result)) as? [String: Any]
        for key in ["rss_start_mb", "rss_end_mb", "rss_growth_pct", "lost"] { #expect(json?[key] != nil, "\(key)") }
        await client.shutdown()
    }

    /// Runs the built `wave` binary.
    static func wave(_ arguments: [String], environment: [String: String] = [:]) async throws -> (status: Int32, stdout: String, stderr: String) {
        let output = try await WaveBinary.run(arguments, environment: environment)
        return (output.status, output.stdout, output.stderr)
    }

    @Test(
        "bad input exits 2 with one line on stderr",
        arguments: [
            ["bench", "redis"],
            ["bench", "redis", "--redis", "http://nope"],
            ["bench", "redis", "--redis", "redis://127.0.0.1:1", "--pings", "0"],
            ["bench", "nosuch"],
            ["--no-such-flag"],
        ])
    func badInput(arguments: [String]) async throws {
        let result = try await Self.wave(arguments)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        #expect(result.stderr.split(whereSeparator: \.isNewline).count == 1, "\(result.stderr)")
        #expect(result.stderr.hasPrefix("wave: "))
    }

    @Test("an unreachable Redis exits 3 with a hint")
    func unreachable() async throws {
        let port = try RedisServerProcess.freePort()
        let result = try await Self.wave(
            ["bench", "redis", "--redis", "redis://127.0.0.1:\(port)", "--pings", "1", "--xadds", "1"],
            environment: ["WAVE_LOG_LEVEL": "critical"])
        #expect(result.status == 3, "\(result.stderr)")
        #expect(result.stderr.contains("hint:"))
    }

    @Test("`wave demo` as README.md shows it: finishes with every story complete and a summary, leaving no store behind")
    func demoAsInTheReadme() async throws {
        let result = try await Self.wave(["demo"])
        #expect(result.status == 0, "\(result.stderr.suffix(2_000))")
        #expect(result.stdout.contains("6 complete, 0 failed; 48 gates passed"))
        #expect(result.stdout.contains("signal → handler latency"))
        #expect(result.stdout.contains("(a temporary store (deleted))"))
    }

    @Test("--help works for the root and for bench redis")
    func help() async throws {
        let root = try await Self.wave(["--help"])
        #expect(root.status == 0 && root.stdout.contains("bench"))
        let bench = try await Self.wave(["bench", "redis", "--help"])
        #expect(bench.status == 0 && bench.stdout.contains("--redis"))
    }
}

@Suite("wave signal and wave tail", .enabled(if: TestServers.available(TestServers.plain)))
struct SignalTailCLITests {
    @Test("signal publishes and prints id, message_id and stream; tail shows it without consuming")
    func roundTrip() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let project = "cli-\(UUID().uuidString.prefix(8).lowercased())"
        let published = try await BenchAndCLITests.wave(
            [
                "signal", "gate.passed", "--project", project.uppercased(), "--story", "S-9", "--seq", "4",
                "--payload", #"{"gate_id":"gate-2","result":"pass"}"#, "--redis", url, "--json",
            ]
        )
        #expect(published.status == 0, "\(published.stderr)")
        let line = try #require(try JSONSerialization.jsonObject(with: Data(published.stdout.utf8)) as? [String: Any])
        #expect(line["stream"] as? String == "wave:signals:\(project)")
        let id = try #require(line["id"] as? String)
        let messageID = try #require(line["message_id"] as? String)
        #expect(published.stdout.split(whereSeparator: \.isNewline).count == 1)

        let tail = try await BenchAndCLITests.wave(["tail", "--project", project, "--count", "5", "--redis", url, "--json"])
        #expect(tail.status == 0, "\(tail.stderr)")
        let rows = tail.stdout.split(whereSeparator: \.isNewline)
        #expect(rows.count == 1)
        let row = try #require(try JSONSerialization.jsonObject(with: Data(rows[0].utf8)) as? [String: Any])
        #expect(row["id"] as? String == id)
        let fields = try #require(row["fields"] as? [String: String])
        #expect(fields["message_id"] == messageID && fields["story_id"] == "S-9" && fields["seq"] == "4" && fields["project"] == project.uppercased())
        // Extension types go to the system stream, never to signals.
        let resumed = try await BenchAndCLITests.wave(["signal", "session.resumed", "--project", project, "--redis", url, "--json"])
        #expect(resumed.stdout.contains("wave:system:\(project)"))
    }

    @Test(
        "bad signals and tails exit 2 with one line",
        arguments: [
            ["signal", "gate.nope", "--project", "p"],
            ["signal", "gate.passed", "--project", "p", "--payload", "{oops"],
            ["signal", "gate.passed", "--project", "p", "--payload", "[1,2]"],
            ["signal", "gate.passed", "--project", "no spaces"],
            ["signal", "gate.passed", "--project", "global"],
            ["signal", "gate.passed", "--project", "p", "--priority", "urgent"],
            ["signal", "gate.passed", "--project", "p"],
            ["tail", "--project", "p", "--stream", "nowhere"],
            ["tail", "--project", "p"],
        ])
    func badInput(arguments: [String]) async throws {
        var args = arguments
        // Every case but the two without --redis gets a reachable server, so only the input is wrong.
        if !(arguments == ["signal", "gate.passed", "--project", "p"] || arguments == ["tail", "--project", "p"]) {
            args += ["--redis", try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")]
        }
        let result = try await BenchAndCLITests.wave(args)
        #expect(result.status == 2, "\(args): \(result.stderr)")
        #expect(result.stderr.split(whereSeparator: \.isNewline).count == 1, "\(result.stderr)")
    }
}

/// The benchmarks' stores in these tests: SQLite files at the paths they give.
let sqliteBenchStore: BenchStoreOpener = { path, engine in
    try SQLiteStore(location: StoreLocation(path: path), engine: engine, logger: TestServers.logger).asStateStore
}
