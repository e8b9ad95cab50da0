import Foundation
import Testing
import WaveBus
import WaveProtocol
import WaveTesting

@Suite("wave run, signal and status against a real Redis (CLI)")
struct RunCLITests {
    @Test(
        "an operator's session and hand-published signals drive a story; status shows the groups; SIGTERM exits 0 and removes the instance's groups",
        .enabled(if: TestServers.available(TestServers.plain)))
    func runSignalStatus() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-run-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try Data(#"[{"id": "RUN-1", "title": "Checkout", "domain": "backend", "agent_assignment": "BE-1"}]"#.utf8).write(
            to: folder.appendingPathComponent("stories.json"))
        let project = "run-\(UUID().uuidString.prefix(8).lowercased())"
        let consumer = "cli-\(UUID().uuidString.prefix(6).lowercased())"
        let common = ["--redis", url, "--store", "sqlite:\(folder.path)/wave.sqlite"]

        let orchestrator = try WaveBinary.start(["run", "--project", project, "--consumer", consumer] + common, in: folder)
        let bus = RedisEventBus(client: try TestServers.client(url), logger: TestServers.logger)
        let name = try ProjectName(project)
        // The orchestrator is up once its own group on the system stream exists.
        try await eventually("the orchestrator joined its groups") {
            try await bus.groups(of: Channels.system(name)).contains { $0.group == "orchestrator:\(consumer)" }
        }

        let created = try await WaveBinary.run(["session", "create", "--project", project, "--wave", "1", "--stories", "stories.json"] + common, in: folder)
        #expect(created.status == 0, "\(created.stderr)")
        // session.created reaches the orchestrator, which starts the session and asks the PM for a plan.
        let plan = try await nextTask(bus, project: name, role: "pm")
        #expect(plan.storyID == "RUN-1" && plan.action == "plan")

        for (source, payload) in [("PM-1", #"{"gate_id":"gate-0","result":"pass","dev_roles":["be"]}"#), ("CTO-1", #"{"gate_id":"gate-0","result":"pass"}"#)] {
            let sent = try await WaveBinary.run(
                ["signal", "gate.passed", "--project", project, "--story", "RUN-1", "--source", source, "--payload", payload] + common, in: folder)
            #expect(sent.status == 0, "\(sent.stderr)")
        }
        let develop = try await nextTask(bus, project: name, role: "be")
        #expect(develop.gate.number == 1 && develop.action == "develop")

        let story = try await WaveBinary.run(["story", "show", "RUN-1", "--json"] + common, in: folder)
        await #expect(try json(story.stdout)["current_gate"] as? String == "gate-1")

        let status = try await WaveBinary.run(["status", "--json"] + common, in: folder)
        #expect(status.status == 0, "\(status.stderr)")
        let report = try await json(status.stdout)
        for key in ["bus", "circuit", "groups", "dlq", "stops", "sessions", "unhandled_events", "trimmed_unread", "orchestrators"] {
            #expect(report[key] != nil, "status: \(key)")
        }
        #expect(report["bus"] as? String == "redis")
        let groups = try #require(report["groups"] as? [[String: Any]])
        #expect(groups.contains { $0["group"] as? String == "orchestrator" && $0["stream"] as? String == "wave:signals:\(project)" })
        #expect(groups.contains { $0["group"] as? String == "orchestrator:\(consumer)" && $0["stream"] as? String == "wave:system:global" })
        for key in ["stream", "group", "consumers", "pending", "lag", "entries_read"] {
            #expect(groups.first?.keys.contains(key) == true, "group: \(key)")
        }
        let instances = try #require(report["orchestrators"] as? [[String: Any]])
        #expect(instances.contains { $0["consumer"] as? String == consumer && $0["last_seen"] != nil && $0["circuit"] as? String == "closed" })

        orchestrator.terminate()
        let output = await orchestrator.wait()
        #expect(output.status == 0, "\(output.stderr.suffix(2_000))")
        #expect(output.stderr.contains("story RUN-1: gate-0: passed"), "one line per transition")
        #expect(try await !bus.groups(of: Channels.system(name)).contains { $0.group == "orchestrator:\(consumer)" })
        #expect(try await bus.groups(of: Channels.signals(name)).contains { $0.group == "orchestrator" }, "the shared group stays")
    }

    @Test("wave run: bad input exits 2, an unreachable Redis exits 3 with a hint")
    func runErrors() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-run-errors-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let noProject = try await WaveBinary.run(["run"], in: folder)
        #expect(noProject.status == 2)
        #expect(noProject.stderr.contains("no project to serve"))
        let badProject = try await WaveBinary.run(["run", "--project", "global"], in: folder)
        #expect(badProject.status == 2)
        let bridgeWithoutRedis = try await WaveBinary.run(["run", "--project", "p", "--legacy-bridge"], in: folder)
        #expect(bridgeWithoutRedis.status == 2)
        #expect(bridgeWithoutRedis.stderr.contains("--legacy-bridge needs --redis"))
        let port = try RedisServerProcess.freePort()
        let unreachable = try await WaveBinary.run(["run", "--project", "p", "--redis", "redis://127.0.0.1:\(port)", "--wait-for-redis", "0"], in: folder)
        #expect(unreachable.status == 3)
        #expect(unreachable.stderr.contains("is redis-server running?"))
    }
}

/// The next task on a role's stream, read by a watcher group from the beginning.
func nextTask(_ bus: any EventBus, project: ProjectName, role: String) async throws -> TaskEntry {
    var options = ConsumerOptions(streams: [Channels.tasks(project, role)], group: "watch-\(UUID().uuidString.prefix(6))", consumer: "w")
    options.entries = .tasks
    options.start = .beginning
    options.blockTime = .milliseconds(100)
    let consumer = options
    return try await within(.seconds(15), "a \(role) task") {
        try await bus.withConsumer(consumer) { deliveries in
            for await delivery in deliveries {
                if let task = delivery.task { return task }
            }
            throw HarnessError(description: "the consumer stopped")
        }
    }
}

func json(_ text: String) async throws -> [String: Any] {
    let lines = text.split(whereSeparator: \.isNewline)
    #expect(lines.count == 1, "--json prints exactly one line: \(text)")
    return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}
