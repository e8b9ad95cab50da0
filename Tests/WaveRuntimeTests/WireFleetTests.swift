import Foundation
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

/// An agent that knows only WIRE.md: plain Redis commands on the task and signal streams, fields
/// written by hand (not Wave's agent kit or its envelope type).
struct WireAgent {
    let client: RedisClient
    let project: String
    let id: String
    let role: String

    /// Reads up to `count` new tasks of its role (`XREADGROUP … >`), as the group `agents:{role}`.
    func take(count: Int = 10) async throws -> [StreamEntry] {
        let stream = "wave:tasks:\(self.project.lowercased()):\(self.role)"
        let reply = try await self.client.send(
            XReadGroupCommand(
                group: "agents:\(self.role)", consumer: self.id, streams: [(stream, ">")],
                count: count, block: .milliseconds(500)))
        return reply.allEntries
    }

    /// Answers a task with `gate.passed` (its `message_id` as `correlation_id`), then acknowledges it.
    func pass(_ task: StreamEntry) async throws {
        let field = { (name: String) in task.fields.first { $0.name == name }?.value ?? "" }
        let payload = #"{"gate_id": "\#(field("gate"))", "result": "pass", "agent_id": "\#(self.id)"}"#
        _ = try await self.client.send(
            XAddCommand(
                "wave:signals:\(self.project.lowercased())",
                fields: [
                    ("event_type", "gate.passed"), ("payload", payload), ("source", self.id), ("project", self.project),
                    ("priority", "normal"), ("message_id", UUID().uuidString.lowercased()), ("timestamp", "2026-12-03T10:00:00.000000"),
                    ("session_id", field("session_id")), ("story_id", field("story_id")), ("correlation_id", field("message_id")),
                ]))
        _ = try await self.client.send(XAckCommand("wave:tasks:\(self.project.lowercased()):\(self.role)", group: "agents:\(self.role)", ids: [task.id]))
    }
}

@Suite("Agents that speak only WIRE.md")
struct WireFleetTests {
    @Test("a session created for a project spelled in mixed case starts, and its story moves on the lower-cased streams", arguments: BusKind.available)
    func mixedCaseProject(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        // The operator typed capitals (wave session create --project T-…); streams use the key.
        let spelled = h.project.key.uppercased()
        let session = try h.store.createSession(project: spelled, wave: 1, stories: [backend("M-1")], budgetUSD: 100).id
        try await h.running {
            #expect(try h.store.session(id: session).status == .inProgress, "the session started")
            #expect(try await h.tasks("pm").map(\.action) == ["plan"])
            let outcome = try await h.gate(0, story: "M-1", from: "PM-1", extra: ["dev_roles": .array([.string("be")])])
            guard case .applied = outcome else {
                Issue.record("the signal applied to the mixed-case session's story: \(String(describing: outcome))")
                return
            }
            try await h.gate(0, story: "M-1", from: "CTO-1")
            #expect(try h.story("M-1").state.currentGate == (try GateID(1)))
            #expect(try await h.tasks("be").map(\.action) == ["develop"])
        }
    }

    @Test(
        "a restart with results already waiting in the signals stream sends none of their tasks a second time",
        .enabled(if: TestServers.available(TestServers.plain)))
    func restartWithAnswersWaiting() async throws {
        let h = try Harness.make(.redis)
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let client = try TestServers.client(url)
        defer { Task { await client.shutdown() } }
        let session = try h.session((1...3).map { backend("W-\($0)") })
        // The first instance starts the stories and dispatches their plans, then "dies" before
        // reading anything (it never consumes).
        try await h.orchestrator.prepare()
        let pm = WireAgent(client: client, project: h.project.key.uppercased(), id: "PM-1", role: "pm")
        let plans = try await pm.take()
        #expect(plans.count == 3)
        // The agent answers and acknowledges every task; the answers wait, unread, in the signals stream.
        for task in plans { try await pm.pass(task) }
        // A new instance on the same store and streams: what does it send?
        let restarted = Orchestrator(bus: h.bus, store: h.store.asStateStore, configuration: h.orchestrator.configuration, logger: TestServers.logger)
        try await restarted.prepare()
        #expect(try await h.tasks("pm").count == 3, "no plan went out a second time: its answer was waiting")
        #expect(restarted.tasks.outstandingCount == 3, "the answered tasks count as out until their results apply")
        // Consuming applies the waiting answers: each story moves to the CTO's authorization, once.
        try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask { try await restarted.dispatcher.run() }
            defer { group.cancelAll() }
            try await eventually("the three waiting answers applied: an authorization for each story") { try await h.tasks("cto").count >= 3 }
            #expect(try await h.tasks("cto").map(\.action) == ["authorize", "authorize", "authorize"])
            #expect(try h.store.stories(session: session).allSatisfy { $0.state.retryCount == 0 }, "no timeout or failure counted")
        }
        #expect(try await h.tasks("pm").count == 3, "still one plan per story")
        #expect(try await h.tasks("cto").count == 3, "one authorization per story")
    }
}
