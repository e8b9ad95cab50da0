import Foundation
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

@Suite("The legacy bridge: the reference's status mapping")
struct LegacyResultMappingTests {
    static func result(_ status: String, _ own: JSONValue = [:], error: JSONValue = nil) -> LegacyTaskResult? {
        let json: JSONValue = [
            "task_id": "fe-S-1-0a1b2c3d", "status": .string(status), "domain": "fe", "agent_id": "FE-1", "result": own,
            "duration_seconds": 1.5, "safety_score": 1.0, "error": error, "completed_at": "2026-01-27T17:07:26.123456",
        ]
        return LegacyTaskResult(jsonText: json.jsonText)
    }

    @Test(
        "a pass only when completed and the agent's own result says nothing against it",
        arguments: [
            ("completed", [:] as JSONValue, true),
            ("completed", ["status": "completed"] as JSONValue, true),
            ("completed", ["status": "failed"] as JSONValue, false),
            ("completed", ["status": "BLOCKED"] as JSONValue, false),
            ("completed", ["passed": false] as JSONValue, false),
            ("completed", ["approved": false] as JSONValue, false),
            ("completed", ["approved": true, "passed": true] as JSONValue, true),
            ("failed", ["status": "blocked"] as JSONValue, false),
            ("timeout", [:] as JSONValue, false),
        ])
    func passRule(status: String, own: JSONValue, pass: Bool) throws {
        let result = try #require(Self.result(status, own))
        #expect(result.isPass == pass)
    }

    @Test("the result signal names the task's story, gate and attempt, comes from the worker, and has a stable message id")
    func signal() throws {
        let task = TaskEntry(
            taskID: "t1", storyID: "S-1", sessionID: "sess", role: "fe", action: "develop", gate: try GateID(parsing: "gate-2"),
            payload: [:], priority: .high, attempt: 2, deadline: .now().adding(.seconds(60)), messageID: MessageID.make(),
            timestamp: .now(), project: "Demo")
        let failing = try #require(Self.result("completed", ["status": "failed", "build_success": false]))
        let signal = LegacyTaskBridge.signal(for: failing, task: task)
        #expect(signal.eventType == .gateFailed)
        #expect(signal.payload["gate_id"] == "gate-2" && signal.payload["result"] == "fail")
        #expect(signal.payload["build_success"] == false, "the agent's evidence reaches the validator")
        #expect(signal.payload["reason"] == "the agent reported failed")
        #expect(signal.correlationID == task.messageID && signal.storyID == "S-1" && signal.sessionID == "sess")
        #expect(signal.source == "FE-1")
        #expect(signal.messageID == LegacyTaskBridge.signal(for: failing, task: task).messageID, "the same result gives the same message id")
        // A worker whose id does not name the task's role does not speak for it.
        var other = failing
        other.agentID = "QA-7"
        #expect(LegacyTaskBridge.signal(for: other, task: task).source == "fe-legacy")
        // The exception path is the worker's own agent.error, not a second failure.
        #expect(try #require(Self.result("failed", [:], error: "boom")).isWorkerException)
        #expect(try #require(Self.result("failed", ["status": "blocked"], error: "Failed constitutional safety check")).isWorkerException == false)
        #expect(LegacyTaskResult(jsonText: #"{"status": "completed"}"#) == nil, "no task_id: unreadable")
        #expect(LegacyTaskBridge.legacyID(of: task).hasPrefix("fe-S-1-"))
        #expect(LegacyTaskBridge.legacyID(of: task).count == "fe-S-1-".count + 8)
        // Two attempts made in the same millisecond (time-ordered ids share their leading digits)
        // still get two legacy ids.
        var next = task
        next.messageID = MessageID.makeTimeOrdered(millisecondsSinceEpoch: 1_800_000_000_000)
        var again = task
        again.messageID = MessageID.makeTimeOrdered(millisecondsSinceEpoch: 1_800_000_000_000)
        #expect(LegacyTaskBridge.legacyID(of: next) != LegacyTaskBridge.legacyID(of: again))
    }
}

/// A worker that speaks only the reference's keys (WIRE.md, legacy task plane): BRPOP the role's
/// list, HGET the task's `data`, mark it in progress, answer with a `wave:result:{id}` and a
/// `task_completed` notification on `wave:results`.
struct ReferenceWorker: Sendable {
    let client: RedisClient
    let role: String
    let agentID: String
    /// The answer to a task (its `data` object): status, the agent's own result, an error.
    let answer: @Sendable ([String: JSONValue]) -> (status: String, result: JSONValue, error: String?)
    /// Tasks whose notification is not published (its result key is still written).
    let silent: @Sendable ([String: JSONValue]) -> Bool

    init(
        client: RedisClient, role: String, index: Int = 1,
        silent: @escaping @Sendable ([String: JSONValue]) -> Bool = { _ in false },
        answer: @escaping @Sendable ([String: JSONValue]) -> (status: String, result: JSONValue, error: String?) = { _ in ("completed", [:], nil) }
    ) {
        self.client = client
        self.role = role
        self.agentID = "\(role.uppercased())-\(index)"
        self.answer = answer
        self.silent = silent
    }

    /// Works until cancelled, noting the ids it took.
    func run(taken: Locked<[String]>) async throws {
        while !Task.isCancelled {
            guard let (_, id) = try await self.client.blocking(BRPopCommand(keys: [Channels.Legacy.taskList(domain: self.role)], timeout: .milliseconds(500)))
            else { continue }
            let hash = Channels.Legacy.taskHash(id)
            guard let text = try await self.client.send(HGetCommand(hash, field: "data")), let data = JSONValue(jsonText: text)?.objectValue else { continue }
            taken.withLock { $0.append(id) }
            _ = try await self.client.send(HSetCommand(hash, fields: [("status", "in_progress"), ("agent_id", self.agentID)]))
            let (status, own, error) = self.answer(data)
            let result: JSONValue = [
                "task_id": .string(id), "status": .string(status), "domain": .string(self.role), "agent_id": .string(self.agentID), "result": own,
                "duration_seconds": 0.01, "safety_score": 1.0, "error": error.map { .string($0) } ?? .null, "completed_at": "2026-11-25T10:00:00.000000",
            ]
            _ = try await self.client.send(SetCommand(Channels.Legacy.result(id), value: result.jsonText, expiration: .seconds(86_400)))
            _ = try await self.client.send(HSetCommand(hash, fields: [("status", status)]))
            if !self.silent(data) {
                let notice: JSONValue = [
                    "event": "task_completed", "task_id": .string(id), "status": .string(status), "domain": .string(self.role),
                    "agent_id": .string(self.agentID),
                ]
                _ = try await self.client.send(PublishCommand(channel: Channels.Legacy.resultsChannel, message: notice.jsonText))
            }
        }
    }
}

@Suite(
    "The legacy bridge: the reference's Python workers keep working (a private redis-server)",
    .enabled(if: TestServers.serverBinary != nil || TestServers.isCI))
struct LegacyBridgeTests {
    /// The reference's task lists are global to a Redis server: each test has a server of its own.
    func withBridge(_ stories: [NewStory], _ body: @escaping @Sendable (Harness, RedisClient, String) async throws -> Void) async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let client = try TestServers.client(server.url)
        let h = try Harness.make(.redis, redisURL: server.url, configure: { $0.legacyBridge = client })
        let legacy = try #require(h.orchestrator.legacy)
        let session = try h.session(stories)
        try await h.running {
            let bridge = Task { try await legacy.run() }
            defer { bridge.cancel() }
            try await body(h, client, session)
        }
        await client.shutdown()
    }

    @Test("a story goes through every gate with reference workers only; completed-but-failed is a failure; each result applies once")
    func roundTrip() async throws {
        try await self.withBridge([NewStory(id: "L-1", title: "Legacy story", domain: "fullstack", agent: "fullstack")]) { h, client, session in
            let qaAnswers = Locked(0)
            let taken = Locked<[String]>([])
            var workers: [ReferenceWorker] = []
            for role in ["pm", "cto", "fe", "be"] {
                workers.append(
                    ReferenceWorker(
                        client: client, role: role,
                        answer: { data in
                            // The PM's plan names both dev roles, as a reference PM's output would.
                            data["action"]?.stringValue == "plan"
                                ? ("completed", ["dev_roles": ["fe", "be"]], nil) : ("completed", ["status": "completed"], nil)
                        }))
            }
            // QA's first answer is the reference worker's "completed" with the agent's own "failed".
            workers.append(
                ReferenceWorker(
                    client: client, role: "qa",
                    answer: { _ in
                        qaAnswers.withLock {
                            $0 += 1
                            return $0
                        } == 1 ? ("completed", ["status": "failed", "feedback": "login broken"], nil) : ("completed", [:], nil)
                    }))
            let runs = workers.map { worker in Task { try await worker.run(taken: taken) } }
            defer { for run in runs { run.cancel() } }
            try await eventually("the story completes", deadline: .seconds(30)) { try h.story("L-1").state.status == .complete }
            let checkpoints = try h.gateCheckpoints("L-1", session: session)
            let names = checkpoints.map(\.name)
            #expect(names.filter { $0.hasPrefix("gate-4") } == ["gate-4: failed", "gate-4: passed"], "QA's completed-but-failed is a failure: \(names)")
            #expect(names.filter { $0.hasPrefix("gate-1: passed") }.count == 4, "back to develop: gate-1 passed twice by FE and BE")
            // gate-0; gates 1–3 by FE and BE; QA's failure; gates 1–3 again; gates 4–7.
            let expected = 1 + 6 + 1 + 6 + 4
            #expect(checkpoints.count == expected, "one gate checkpoint per applied result, none twice: \(names)")
            let totals = try #require(h.orchestrator.legacy).totals
            #expect(totals.settled == taken.withLock { $0.count }, "every task a worker took came back once as a result signal")
            #expect(totals.written >= totals.settled)
            // The reference's hash for a task holds what its workers read and wrote.
            let first = try #require(taken.withLock { $0.first })
            let data = try #require(try await client.send(HGetCommand(Channels.Legacy.taskHash(first), field: "data")))
            let object = try #require(JSONValue(jsonText: data)?.objectValue)
            #expect(object["story_id"] == "L-1" && object["domain"] == "pm" && object["action"] == "plan")
            #expect(object["created_at"]?.stringValue?.hasSuffix("Z") == false, "naive timestamps, as the reference writes them")
            #expect(try await client.send(TTLCommand(Channels.Legacy.taskHash(first))) > 86_000)
        }
    }

    @Test("a notification missed while disconnected is not lost: the result keys are re-read on the next subscription")
    func missedNotification() async throws {
        try await self.withBridge([NewStory(id: "L-2", title: "Quiet worker", domain: "backend", agent: "backend")]) { h, client, session in
            let taken = Locked<[String]>([])
            // The bridge listens before the PM works: otherwise its first subscription's re-read,
            // not the one after the drop below, would find the result.
            try await eventually("the bridge subscribed to the results channel") {
                let reply = try await client.send(RawCommand("PUBSUB", "NUMSUB", Channels.Legacy.resultsChannel)).elements()
                return try reply.count == 2 && Int(fromRESP: reply[1]) > 0
            }
            // The PM writes its result but never announces it.
            let pm = ReferenceWorker(client: client, role: "pm", silent: { _ in true }, answer: { _ in ("completed", ["dev_roles": ["be"]], nil) })
            let run = Task { try await pm.run(taken: taken) }
            defer { run.cancel() }
            try await eventually("the PM took its task") { taken.withLock { !$0.isEmpty } }
            let id = try #require(taken.withLock { $0.first })
            try await eventually("the PM wrote its result") { try await client.send(GetCommand(Channels.Legacy.result(id))) != nil }
            #expect(try h.story("L-2").state.currentGate.number == 0)
            #expect(h.orchestrator.legacy?.outstandingCount == 1)
            // The bridge's subscription drops; it subscribes again and reads the key it missed.
            _ = try await client.send(RawCommand("CLIENT", "KILL", "TYPE", "pubsub"))
            try await eventually("the PM's plan applied from the re-read") {
                try h.store.checkpoints(session: session, story: "L-2").contains { $0.state["kind"] == "plan" }
            }
            #expect(h.orchestrator.legacy?.totals.settled == 1)
        }
    }

    @Test("a stop takes back the tasks no worker has taken yet: out of the list, the hash marked cancelled, audited in a checkpoint")
    func stopWithdraws() async throws {
        try await self.withBridge([NewStory(id: "L-3", title: "Nobody home", domain: "backend", agent: "backend")]) { h, client, session in
            let list = Channels.Legacy.taskList(domain: "pm")
            try await eventually("the PM's task is on the reference's list") { try await Int(fromRESP: client.send(RawCommand("LLEN", list))) == 1 }
            let id = try #require(try await client.send(RawCommand("LRANGE", list, "0", "-1")).elements().first?.stringValue)
            try await h.signal(.systemEmergencyStop, story: nil, from: "ops", payload: ["reason": "freeze"], stream: Channels.system(h.project))
            #expect(try await Int(fromRESP: client.send(RawCommand("LLEN", list))) == 0, "withdrawn before any worker took it")
            #expect(try await client.send(HGetCommand(Channels.Legacy.taskHash(id), field: "status")) == "cancelled")
            #expect(h.orchestrator.legacy?.outstandingCount == 0)
            let stopped = try h.store.checkpoints(session: session, story: "L-3").filter { $0.state["kind"] == "emergency_stop" }
            #expect(
                stopped.count == 1 && stopped.first?.state["reason"] == "freeze" && stopped.first?.gate == "gate-0",
                "the story's state at the stop is checkpointed")
        }
    }
}
