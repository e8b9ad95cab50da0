import Foundation
import Testing
import WaveAgentKit
import WaveBus
import WaveProtocol
import WaveRedis
import WaveTesting

@Suite("wave dlq list, replay and purge (Redis)", .enabled(if: TestServers.available(TestServers.plain)))
struct DlqCLITests {
    @Test("a dead letter is listed with its reason, replayed to its stream with the same message id and no dlq_ fields, and purged")
    func listReplayPurge() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let bus = RedisEventBus(client: try TestServers.client(url), logger: TestServers.logger)
        let project = try ProjectName("dlq-\(UUID().uuidString.prefix(8).lowercased())")
        let original = Envelope(
            eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: project.key, storyID: "S-9",
            extraFields: [StreamField("x_custom", "kept")])
        let letter = DeadLetter(
            originalFields: original.fields, error: "unknown_story: no story S-9", originalID: "1-1",
            sourceStream: Channels.signals(project), group: "orchestrator", deliveryCount: 1)
        let dlq = Channels.deadLetters(project)
        let first = try await bus.publish(fields: letter.fields, to: dlq)
        _ = try await bus.publish(fields: letter.fields, to: dlq)

        let list = try await WaveBinary.run(["dlq", "list", "--project", project.key, "--json", "--redis", url])
        #expect(list.status == 0, "\(list.stderr)")
        let listed = try await json(list.stdout)
        #expect(listed["size"] as? Int == 2)
        let entries = try #require(listed["entries"] as? [[String: Any]])
        #expect(entries.first?["error"] as? String == "unknown_story: no story S-9")
        #expect(entries.first?["message_id"] as? String == original.messageID)

        let replay = try await WaveBinary.run(["dlq", "replay", first, "--project", project.key, "--redis", url])
        #expect(replay.status == 0, "\(replay.stderr)")
        let replayed = try #require(try await bus.entries(of: Channels.signals(project), count: 1).first)
        #expect(replayed.fields == original.fields, "the original fields, unknown ones included, and nothing else")
        #expect(try await bus.length(of: dlq) == 1)

        let missing = try await WaveBinary.run(["dlq", "replay", first, "--project", project.key, "--redis", url])
        #expect(missing.status == 2 && missing.stderr.contains("no dead letter"))

        let young = try await WaveBinary.run(["dlq", "purge", "--older-than", "1h", "--project", project.key, "--json", "--redis", url])
        await #expect(try json(young.stdout)["purged"] as? Int == 0)
        let all = try await WaveBinary.run(["dlq", "purge", "--project", project.key, "--json", "--redis", url])
        await #expect(try json(all.stdout)["purged"] as? Int == 1)
        #expect(try await bus.length(of: dlq) == 0)

        let bad = try await WaveBinary.run(["dlq", "purge", "--older-than", "soon", "--project", project.key, "--redis", url])
        #expect(bad.status == 2)
        let noRedis = try await WaveBinary.run(["dlq", "list", "--project", project.key])
        #expect(noRedis.status == 2 && noRedis.stderr.contains("--redis"))
        _ = try await bus.client.send(DelCommand(keys: [Channels.signals(project)]))
        await bus.client.shutdown()
    }
}

@Suite("wave agents (Redis)", .enabled(if: TestServers.available(TestServers.plain)))
struct AgentsCLITests {
    @Test("the roster comes from the agents' ready, busy and health signals")
    func roster() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let bus = RedisEventBus(client: try TestServers.client(url), logger: TestServers.logger)
        let project = try ProjectName("agents-\(UUID().uuidString.prefix(8).lowercased())")
        let be = AgentKit(bus: bus, identity: AgentIdentity(agentID: "BE-1", role: "be", project: project), logger: TestServers.logger)
        let qa = AgentKit(bus: bus, identity: AgentIdentity(agentID: "QA-1", role: "qa", project: project), logger: TestServers.logger)
        try await be.signal(.agentBusy, payload: ["status": "busy", "task_id": "T-7"], storyID: "S-1")
        try await be.signal(.agentReady, payload: ["status": "ready"])
        try await qa.signal(.agentBusy, payload: ["status": "busy", "task_id": "T-9"], storyID: "S-2")
        let run = try await WaveBinary.run(["agents", "--project", project.key, "--json", "--redis", url])
        #expect(run.status == 0, "\(run.stderr)")
        let agents = try await #require(try json(run.stdout)["agents"] as? [[String: Any]])
        #expect(agents.map { $0["agent_id"] as? String } == ["BE-1", "QA-1"])
        #expect(agents[0]["status"] as? String == "ready" && agents[0]["current_task"] == nil)
        #expect(agents[1]["status"] as? String == "busy" && agents[1]["current_task"] as? String == "T-9" && agents[1]["role"] as? String == "qa")
        _ = try await bus.client.send(DelCommand(keys: [Channels.signals(project)]))
        await bus.client.shutdown()
    }
}
