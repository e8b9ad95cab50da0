import Foundation
import Testing
import WaveAgentKit
import WaveBus
import WaveProtocol
import WaveRuntime
import WaveTesting

@Suite("Agent leases: heartbeats keep a task; a dead agent's task is reclaimed by another and completed once")
struct AgentLeaseTests {
    @Test(
        "an agent that heartbeats keeps its task past the lease; killed, its task is taken by another agent of the role and done once",
        arguments: BusKind.available)
    func deadAgentsTaskReclaimed(kind: BusKind) async throws {
        let h = try Harness.make(kind)
        let session = try h.session([backend("L-1")])
        let lease = Duration.milliseconds(400)
        try await h.running {
            try await h.passGateZero("L-1")
            // BE-1 takes the gate-1 task and works "forever", heartbeating.
            let first = AgentKit(
                bus: h.bus, identity: AgentIdentity(agentID: "BE-1", role: "be", project: h.project), logger: TestServers.logger,
                lease: lease, heartbeat: .milliseconds(100))
            let dying = Task {
                try await first.run { _ in
                    try await Task.sleep(for: .seconds(60))
                    return TaskReport(.pass)
                }
            }
            try await eventually("BE-1 took the task") { h.orchestrator.roster.agent("BE-1")?.currentTask != nil }
            // BE-2 passes gate-1 tasks it gets.
            let second = AgentKit(
                bus: h.bus, identity: AgentIdentity(agentID: "BE-2", role: "be", project: h.project), logger: TestServers.logger,
                lease: lease, heartbeat: .milliseconds(100))
            let done = Locked(0)
            let rescuer = Task {
                try await second.run { task in
                    guard task.gate.number == 1 else {
                        try await Task.sleep(for: .seconds(60))
                        return TaskReport(.pass)
                    }
                    done.withLock { $0 += 1 }
                    return TaskReport(.pass)
                }
            }
            defer { rescuer.cancel() }
            // Two leases later BE-1 still holds it: heartbeats reset its idle time.
            try await Task.sleep(for: lease * 2)
            #expect(try h.story("L-1").state.currentGate.number == 1)
            #expect(done.withLock { $0 } == 0)
            let holder = try await h.bus.pendingEntries(stream: Channels.tasks(h.project, "be"), group: "agents:be", count: 10).map(\.consumer)
            #expect(holder == ["BE-1"])
            // BE-1 dies: no more heartbeats, no acknowledgement. BE-2 reclaims after the lease.
            dying.cancel()
            _ = try? await dying.value
            try await eventually("BE-2 completed the task") { try h.story("L-1").state.currentGate.number == 2 }
            #expect(done.withLock { $0 } == 1)
        }
        #expect(try h.gateCheckpoints("L-1", session: session).filter { $0.gate == "gate-1" }.count == 1, "completed once")
    }

    @Test("renew keeps an entry that is still the consumer's, and refuses one that is not pending for it any more", arguments: BusKind.available)
    func renew(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = try ProjectName("renew-\(UUID().uuidString.prefix(8).lowercased())")
        let stream = Channels.tasks(project, "be")
        let entry = TaskEntry(
            taskID: "T-1", storyID: "S-1", sessionID: "s", role: "be", action: "develop", gate: try GateID(1),
            deadline: WaveTimestamp.now().adding(.seconds(60)), messageID: MessageID.make(), project: project.key)
        var options = ConsumerOptions(streams: [stream], group: "agents:be", consumer: "BE-1")
        options.entries = .tasks
        options.start = .beginning
        options.blockTime = .milliseconds(100)
        _ = try await bus.publish(fields: entry.fields, to: stream)
        let consumer = options
        let delivery = try await within(.seconds(10), "the task") {
            try await bus.withConsumer(consumer) { deliveries in
                for await delivery in deliveries { return delivery }
                throw HarnessError(description: "no delivery")
            }
        }
        #expect(try await bus.renew(delivery))
        var other = delivery
        other.consumer = "BE-2"
        #expect(try await !bus.renew(other), "not BE-2's entry")
        try await bus.acknowledge([delivery])
        #expect(try await !bus.renew(delivery), "acknowledged: nothing to keep")
    }
}
