import Foundation
import Testing
import WaveProtocol
import WaveTesting

/// The `wave` contract of SYSTEM.md, command by command: help, global options, `--json` shapes,
/// exit codes.
@Suite("The wave command: a pass over every subcommand")
struct CLIContractTests {
    static let commands: [[String]] = [
        ["demo"], ["run"], ["status"], ["stop", "set"], ["stop", "clear"], ["dlq", "list"], ["dlq", "replay"], ["dlq", "purge"], ["agents"],
        ["config", "show"], ["session", "create"], ["session", "list"], ["session", "show"], ["session", "pause"], ["session", "resume"],
        ["session", "cancel"], ["story", "show"], ["story", "unblock"], ["story", "recover"], ["approve"], ["approvals"],
        ["escalations", "list"], ["escalations", "ack"], ["signal"], ["tail"], ["store", "migrate"],
        ["bench", "redis"], ["bench", "bus"], ["bench", "store"], ["bench", "latency"], ["bench", "throughput"], ["bench", "stop"], ["bench", "soak"],
    ]

    @Test("every subcommand explains itself with --help and takes the global options", arguments: Self.commands)
    func help(command: [String]) async throws {
        let output = try await WaveBinary.run(command + ["--help"])
        #expect(output.status == 0, "\(output.stderr)")
        #expect(output.stdout.contains("OVERVIEW: "), "an abstract")
        #expect(output.stdout.contains("USAGE: wave \(command.joined(separator: " "))"))
        for option in ["--redis", "--store", "--config", "--json"] {
            #expect(output.stdout.contains(option), "wave \(command.joined(separator: " ")) takes \(option)")
        }
    }

    /// A folder with a store already migrated, so that no migration line reaches stderr.
    static func folder() async throws -> URL {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-contract-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let migrated = try await WaveBinary.run(["store", "migrate"], in: folder)
        #expect(migrated.status == 0, "\(migrated.stderr)")
        return folder
    }

    static func lines(_ text: String) -> [Substring] { text.split(separator: "\n", omittingEmptySubsequences: true) }

    @Test(
        "bad input exits 2 with one line on stderr that names the problem",
        arguments: [
            (["story", "show", "NOPE"], "no story NOPE"),
            (["approve", "NOPE", "--gate", "4"], "no story NOPE"),
            (["story", "recover", "NOPE", "--strategy", "sideways"], "--strategy must be one of"),
            (["signal", "gate.passed", "--project", "p"], "needs a Redis server"),
            (["tail", "--project", "p"], "needs a Redis server"),
            (["session", "create", "--project", "p", "--wave", "1", "--stories", "/no/such/folder"], "no file or folder"),
            (["stop", "--reason", "x"], "--project"),
            (["dlq", "purge", "--older-than", "soon", "--project", "p"], "older-than"),
            (["run", "--project", "p", "--legacy-bridge"], "--legacy-bridge needs --redis"),
            (["status", "--store", "postgres://db/wave"], "PostgreSQL StateStore, which is not built yet"),
        ])
    func badInput(arguments: [String], message: String) async throws {
        let output = try await WaveBinary.run(arguments, in: try Self.folder())
        #expect(output.status == 2, "\(arguments): \(output.stderr)")
        let lines = Self.lines(output.stderr)
        #expect(lines.count == 1, "one line: \(output.stderr)")
        #expect(lines.first?.contains(message) == true, "\(output.stderr)")
        #expect(output.stdout.isEmpty)
    }

    @Test(
        "bad signals exit 2 naming the problem: an unknown event type (the declared ones listed), a payload that is not a JSON object",
        .enabled(if: TestServers.available(TestServers.plain)))
    func badSignals() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let unknown = try await WaveBinary.run(["signal", "gate.bogus", "--project", "p", "--redis", url])
        #expect(unknown.status == 2)
        #expect(unknown.stderr.contains("unknown event type \"gate.bogus\"") && unknown.stderr.contains("gate.passed"), "the hint lists the declared types")
        for payload in ["{bad", "[1, 2]"] {
            let bad = try await WaveBinary.run(["signal", "gate.passed", "--project", "p", "--payload", payload, "--redis", url])
            #expect(bad.status == 2, "\(payload)")
            #expect(Self.lines(bad.stderr).count == 1 && bad.stderr.contains("--payload"), "\(bad.stderr)")
        }
    }

    @Test(
        "an unreachable Redis exits 3 with a hint, for every command that needs it",
        arguments: [
            ["status"], ["signal", "gate.passed", "--project", "p"], ["tail", "--project", "p"], ["agents", "--project", "p"],
            ["dlq", "list", "--project", "p"], ["stop", "--project", "p", "--reason", "x"], ["run", "--project", "p", "--wait-for-redis", "0"],
        ])
    func unreachable(arguments: [String]) async throws {
        let port = try RedisServerProcess.freePort()
        let output = try await WaveBinary.run(arguments + ["--redis", "redis://127.0.0.1:\(port)"], in: try Self.folder())
        #expect(output.status == 3, "\(arguments): \(output.stderr)")
        #expect(output.stderr.contains("redis-server"), "a hint: \(output.stderr)")
        #expect(output.stdout.isEmpty)
    }

    /// Parses stdout as exactly one JSON object on one line and checks its keys.
    static func object(_ output: WaveBinary.Output, _ keys: [String], _ what: String) async throws -> [String: Any] {
        #expect(output.status == 0, "\(what): \(output.stderr)")
        #expect(Self.lines(output.stdout).count == 1, "\(what): one line of JSON: \(output.stdout)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any], "\(what)")
        for key in keys { #expect(object.keys.contains(key), "\(what): \(key)") }
        return object
    }

    @Test("README's tour: the example stories load as a session of two, WAVE-2 after WAVE-1")
    func tourStories() async throws {
        let repository = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
        let stories = repository.appendingPathComponent("examples/stories").path
        let folder = try await Self.folder()
        let created = try await Self.object(
            try await WaveBinary.run(["session", "create", "--project", "shop", "--wave", "1", "--stories", stories, "--json"], in: folder),
            ["id", "story_count"], "session create")
        #expect(created["story_count"] as? Int == 2)
        let second = try await Self.object(try await WaveBinary.run(["story", "show", "WAVE-2", "--json"], in: folder), ["story_id", "status"], "story show")
        #expect(second["dependencies"] as? [String] == ["WAVE-1"])
    }

    @Test("every --json output is one object on one line with the keys SYSTEM.md lists", .enabled(if: TestServers.available(TestServers.plain)))
    func jsonShapes() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let folder = try await Self.folder()
        let project = "contract-\(UUID().uuidString.prefix(8).lowercased())"
        let redis = ["--redis", url]
        let stories = folder.appendingPathComponent("stories.json")
        try Data(#"[{"id": "K-1", "title": "One", "domain": "backend", "priority": "P1", "dependencies": []}]"#.utf8).write(to: stories)
        func run(_ arguments: [String]) async throws -> WaveBinary.Output { try await WaveBinary.run(arguments + ["--json"], in: folder) }

        let sessionKeys = ["id", "project", "wave", "status", "paused", "story_count", "stories_completed", "stories_failed", "budget_usd", "actual_cost_usd"]
        let created = try await Self.object(
            try run(["session", "create", "--project", project, "--wave", "1", "--stories", stories.path] + redis), sessionKeys, "session create")
        let id = try #require(created["id"] as? String)
        _ = try await Self.object(try run(["session", "show", id]), sessionKeys, "session show")
        _ = try await Self.object(try run(["session", "pause", id] + redis), sessionKeys, "session pause")
        _ = try await Self.object(try run(["session", "resume", id] + redis), sessionKeys, "session resume")
        let list = try await Self.object(try run(["session", "list"]), ["sessions"], "session list")
        #expect((list["sessions"] as? [[String: Any]])?.count == 1)
        _ = try await Self.object(
            try run(["story", "show", "K-1"]),
            [
                "story_id", "session_id", "status", "current_gate", "retry_count", "acceptance_criteria_passed", "acceptance_criteria_total", "blocked_reason",
            ], "story show")
        _ = try await Self.object(try run(["approvals"]), ["approvals"], "approvals")
        _ = try await Self.object(try run(["escalations", "list"]), ["escalations"], "escalations list")
        let signal = try await Self.object(
            try run(["signal", "gate.passed", "--project", project, "--story", "K-1", "--payload", #"{"gate_id": "gate-0"}"#] + redis),
            ["id", "message_id", "stream"], "signal")
        #expect(signal["stream"] as? String == "wave:signals:\(project)")
        let tail = try await WaveBinary.run(["tail", "--project", project, "--count", "5", "--json"] + redis, in: folder)
        #expect(tail.status == 0)
        for line in Self.lines(tail.stdout) {
            let entry = try #require(try JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
            #expect(entry["id"] is String && entry["fields"] is [String: String], "tail: id and fields (strings)")
        }
        let stop = try await Self.object(
            try run(["stop", "--project", project, "--reason", "contract", "--by", "ci"] + redis), ["scope", "reason", "by", "since"], "stop")
        #expect(stop["scope"] as? String == project)
        let status = try await Self.object(
            try run(["status"] + redis),
            [
                "bus", "circuit", "groups", "dlq", "stops", "sessions", "unhandled_events", "trimmed_unread", "orchestrators",
            ], "status")
        #expect((status["stops"] as? [[String: Any]])?.first.map { ["scope", "reason", "by", "since"].allSatisfy($0.keys.contains) } == true)
        #expect(
            status["unhandled_events"] is NSNumber && status["trimmed_unread"] is NSNumber && status["vanished_with_redis"] is NSNumber,
            "numbers as JSON numbers")
        _ = try await Self.object(
            try run(["stop", "clear", "--project", project, "--reason", "done", "--by", "ci"] + redis), ["scope", "cleared_by"], "stop clear")
        _ = try await Self.object(try run(["agents", "--project", project] + redis), ["agents", "project"], "agents")
        _ = try await Self.object(try run(["dlq", "list", "--project", project] + redis), ["entries", "size", "stream"], "dlq list")
        _ = try await Self.object(try run(["config", "show"]), ["store", "batch_size", "max_deliveries"], "config show")
        let migrate = try await Self.object(try run(["store", "migrate", "--dry-run"]), ["store", "pending"], "store migrate --dry-run")
        #expect((migrate["pending"] as? [String])?.isEmpty == true, "a list, empty once migrated")
        _ = try await Self.object(try run(["session", "cancel", id, "--reason", "contract over"] + redis), sessionKeys, "session cancel")
    }
}
