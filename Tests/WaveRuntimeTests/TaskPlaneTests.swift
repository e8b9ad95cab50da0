import Foundation
import Testing
import WaveAgentKit
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

/// Starts an agent of each role on the harness's bus, working with `work`, until cancelled.
func startAgents(
    _ h: Harness, roles: [String] = ["pm", "cto", "fe", "be", "qa"], perRole: Int = 1,
    _ work: @escaping @Sendable (TaskEntry) async throws -> TaskReport
) -> [Task<Void, any Error>] {
    roles.flatMap { role in
        (1...perRole).map { index in
            let kit = AgentKit(
                bus: h.bus, identity: AgentIdentity(agentID: "\(role.uppercased())-\(index)", role: role, project: h.project),
                logger: TestServers.logger)
            return Task { try await kit.run(work) }
        }
    }
}

/// Starts simulated agents (the demo's) on the harness's bus.
func startSimulatedAgents(_ h: Harness, perRole: Int, profile: SimulationProfile) -> [Task<Void, any Error>] {
    ["pm", "cto", "fe", "be", "qa"].flatMap { role in
        (1...perRole).map { index in
            let kit = AgentKit(
                bus: h.bus, identity: AgentIdentity(agentID: "\(role.uppercased())-\(index)", role: role, project: h.project),
                logger: TestServers.logger)
            let agent = SimulatedAgent(kit: kit, profile: profile)
            return Task { try await agent.run() }
        }
    }
}

@Suite("The task plane: concurrent dev roles, a stop in a busy wave, a stop that outlives Redis")
struct TaskPlaneTests {
    @Test("FE and BE work on gates 1–3 at the same time (their working spans measured and overlapping)", arguments: BusKind.available)
    func devRolesOverlap(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([fullstack("P-1")])
        let work = Duration.milliseconds(500)
        let spans = Locked<[String: (start: ContinuousClock.Instant, end: ContinuousClock.Instant)]>([:])
        try await h.running {
            let agents = startAgents(h) { task in
                let start = ContinuousClock.now
                if task.role == "fe" || task.role == "be" { try await Task.sleep(for: work) }
                spans.withLock { $0["\(task.gate.number)/\(task.role)"] = (start, .now) }
                return TaskReport(.pass, details: task.action == "plan" ? ["dev_roles": ["fe", "be"]] : [:])
            }
            defer { for agent in agents { agent.cancel() } }
            try await eventually("the story completes") { try h.story("P-1").state.status == .complete }
        }
        var overlaps: [String] = []
        for gate in 1...3 {
            let fe = try #require(spans.withLock { $0["\(gate)/fe"] }), be = try #require(spans.withLock { $0["\(gate)/be"] })
            let overlap = min(fe.end, be.end) - max(fe.start, be.start)
            overlaps.append("gate-\(gate): \(overlap)")
            // One after the other, the spans could not overlap at all (the second would start after
            // the first ended); together they overlap by most of the work, less scheduling delays.
            #expect(overlap > .zero, "gate-\(gate): FE and BE did not overlap (\(overlap))")
        }
        print("FE ∥ BE overlap (\(kind), \(work) of work each): \(overlaps.joined(separator: ", "))")
    }

    @Test(
        "an emergency stop in a busy wave halts everything (no dispatch, no transition, tasks withdrawn); the clear resumes it and every story completes with exactly its gates",
        arguments: BusKind.available)
    func stopInBusyWave(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        let count = 12
        let session = try h.session((1...count).map { backend("W-\($0)") })
        var simulation = SimulationProfile()
        simulation.workTime = .milliseconds(10)...(.milliseconds(40))
        let profile = simulation
        try await h.running {
            let agents = startSimulatedAgents(h, perRole: 2, profile: profile)
            defer { for agent in agents { agent.cancel() } }
            try await eventually("the wave is busy: some stories at gate-2 or later") {
                try h.store.stories(session: session).filter { $0.state.currentGate.number >= 2 }.count >= 3
            }
            try await h.signal(.systemEmergencyStop, story: nil, from: "ops", payload: ["reason": "busy-wave drill"], stream: Channels.system(h.project))
            #expect(h.orchestrator.tasks.isHalted(project: h.project.key))
            #expect(h.orchestrator.tasks.outstandingCount == 0, "every task out was withdrawn")
            let published = h.orchestrator.tasks.totals.published
            let before = try Self.snapshot(h, session)
            // The agents finish what they had in hand; their results are late and change nothing.
            try await Task.sleep(for: .milliseconds(400))
            #expect(h.orchestrator.tasks.totals.published == published, "nothing dispatched under the stop")
            #expect(try Self.snapshot(h, session) == before, "no story moved under the stop")
            let stopped = try h.store.checkpoints(session: session).filter { $0.state["kind"] == "emergency_stop" }
            #expect(
                stopped.count == before.values.filter { !$0.hasPrefix("complete") && !$0.hasPrefix("pending") }.count,
                "one stop checkpoint per story at work")
            try await h.signal(.systemEmergencyCleared, story: nil, from: "ops", payload: ["reason": "drill over"], stream: Channels.system(h.project))
            try await eventually("every story completes after the clear", deadline: .seconds(30)) {
                try h.store.stories(session: session).allSatisfy { $0.state.status == .complete }
            }
        }
        for index in 1...count {
            // gate-0, gates 1–3 by BE, gates 4–7: each applied once, whatever the stop took back.
            #expect(try h.gateCheckpoints("W-\(index)", session: session).count == 8, "W-\(index)")
        }
        #expect(try h.store.session(id: session).status == .completed)
    }

    /// Each story's status, gate and number of checkpoints.
    static func snapshot(_ h: Harness, _ session: String) throws -> [String: String] {
        let checkpoints = Dictionary(grouping: try h.store.checkpoints(session: session).filter { $0.type == "gate" }, by: { $0.storyID ?? "" })
        return Dictionary(
            uniqueKeysWithValues: try h.store.stories(session: session).map {
                ($0.state.storyID, "\($0.state.status.rawValue) \($0.state.currentGate) \(checkpoints[$0.state.storyID]?.count ?? 0)")
            })
    }

    @Test(
        "a restart hands out no second copy of a task still in the agents' stream (unread or held); one acknowledged without a result goes out again",
        arguments: BusKind.available)
    func restartAdoptsWaitingTasks(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        _ = try h.session([backend("A-1")])
        try await h.orchestrator.prepare()
        #expect(try await h.tasks("pm").count == 1, "the plan task went out")
        func restart() async throws -> Orchestrator {
            let again = Orchestrator(bus: h.bus, store: h.store.asStateStore, configuration: h.orchestrator.configuration, logger: TestServers.logger)
            try await again.prepare()
            return again
        }
        // Not read yet: still out.
        let second = try await restart()
        #expect(try await h.tasks("pm").count == 1, "no second copy of an unread task")
        #expect(second.tasks.outstandingCount == 1, "adopted, with its deadline")
        // Read by an agent that holds it (pending): still out.
        var options = ConsumerOptions(streams: [Channels.tasks(h.project, "pm")], group: Channels.agentsGroup(role: "pm"), consumer: "PM-1")
        options.entries = .tasks
        options.start = .beginning
        options.blockTime = .milliseconds(100)
        let consumer = options
        let held: Delivery? = try await within(.seconds(10), "the agent reads its task") {
            try await h.bus.withConsumer(consumer) { deliveries -> Delivery? in
                for await delivery in deliveries { return delivery }
                return nil
            }
        }
        let delivery = try #require(held)
        _ = try await restart()
        #expect(try await h.tasks("pm").count == 1, "no second copy of a task an agent holds")
        // Acknowledged with no result (the agent lost it): it goes out again.
        try await h.bus.acknowledge([delivery])
        _ = try await restart()
        #expect(try await h.tasks("pm").count == 2, "a task no agent will do goes out again")
    }

    @Test(
        "Redis restarted empty during a stop does not lift it: the key is written again and dispatch stays halted",
        .enabled(if: TestServers.serverBinary != nil || TestServers.isCI))
    func stopOutlivesRedis() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let h = try Harness.make(.redis, redisURL: server.url)
        let redis = try #require(h.bus as? RedisEventBus)
        _ = try h.session([backend("R-1")])
        let run = Task { try await h.orchestrator.run() }
        defer { run.cancel() }
        try await eventually("the orchestrator started the story") { try h.story("R-1").state.status == .inProgress }
        _ = try h.store.recordStop(scope: .project(h.project), reason: "incident", by: "ops")
        try await h.signal(.systemEmergencyStop, story: nil, from: "ops", payload: ["reason": "incident"], stream: Channels.system(h.project))
        let key = EmergencyKeys.key(scope: .project(h.project))
        #expect(try await redis.client.send(GetCommand(key)) != nil)
        // Redis dies and comes back with nothing (a marker of the test's own proves it: the
        // orchestrator may write its key again before the test looks).
        let marker = TestServers.key()
        _ = try await redis.client.send(SetCommand(marker, value: "before"))
        server.kill()
        try await server.start()
        #expect(try await redis.client.send(GetCommand(marker)) == nil, "the new server is empty")
        try await eventually("the key is written again after the reconnect") { try await redis.client.send(GetCommand(key))?.contains("incident") == true }
        #expect(h.orchestrator.tasks.isHalted(project: h.project.key))
        #expect(try h.store.activeStops().map(\.scope.key) == [h.project.key])
        run.cancel()
        _ = try? await run.value
    }
}
