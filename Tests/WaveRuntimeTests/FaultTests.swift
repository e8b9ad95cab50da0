import Foundation
import Logging
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveStore
import WaveTesting

/// QUALITY.md's faults, injected into real processes: a `wave run` process and a redis-server of
/// the test's own, 10 000 signals (1 250 stories × 8 gates, each signal passing one gate), and a
/// check that every story ends complete with exactly one gate checkpoint per gate: 0 lost, 0
/// duplicated. Each test prints its row of the closing table.
struct FaultWorld: Sendable {
    static let stories = 1_250
    static let signals = stories * 8
    static let senders = ["CTO-1", "BE-1", "BE-1", "BE-1", "QA-1", "PM-1", "CTO-1", "CTO-1"]

    let server: RedisServerProcess
    let directory: URL
    let project: ProjectName
    let store: SQLiteStore
    let sessionID: String
    let bus: RedisEventBus

    /// A private redis-server (with `arguments`), a store with one session of 1 250 backend
    /// stories (the orchestrator starts them), a configuration file letting them all run at once.
    static func make(_ name: String = #function, serverArguments: [String] = [], startServer: Bool = true) async throws -> FaultWorld {
        let server = try RedisServerProcess(arguments: serverArguments)
        if startServer { try await server.start() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-fault-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        var engine = EngineConfiguration.standard
        engine.parallelLimit = Self.stories
        let store = try SQLiteStore(
            location: StoreLocation(path: directory.appendingPathComponent("wave.sqlite").path), engine: StoryEngine(configuration: engine),
            logger: TestServers.logger)
        let project = try ProjectName("fault-\(name.prefix(while: { $0 != "(" }).lowercased().prefix(20))")
        let session = try store.createSession(
            project: project.key, wave: 1,
            stories: (0..<Self.stories).map {
                NewStory(id: "S-\($0)", title: "S-\($0)", domain: "backend", agent: "BE-1")
            }, budgetUSD: 1_000_000)
        try Data(#"{"engine": {"parallel_limit": \#(Self.stories)}, "orchestrator": {"block_ms": 500}}"#.utf8)
            .write(to: directory.appendingPathComponent("wave.json"))
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = Backoff(base: .milliseconds(20), cap: .milliseconds(200))
        let bus = RedisEventBus(client: try RedisClient(configuration: configuration, logger: TestServers.logger), logger: TestServers.logger)
        return FaultWorld(server: server, directory: directory, project: project, store: store, sessionID: session.id, bus: bus)
    }

    /// Starts `wave run` on this world (a stable consumer name, so that a restart re-reads its own pending entries).
    func orchestrator() async throws -> WaveBinary.Running {
        let running = try WaveBinary.start([
            "run", "--project", self.project.key, "--consumer", "fault", "--redis", self.server.url,
            "--store", "sqlite:\(self.directory.appendingPathComponent("wave.sqlite").path)", "--config",
            self.directory.appendingPathComponent("wave.json").path,
        ])
        return running
    }

    /// Signal `index`: gate `index / stories` of story `index % stories`, passing, with the evidence the validators read.
    func signal(_ index: Int) -> Envelope {
        let gate = index / Self.stories
        var payload: [String: JSONValue] = ["gate_id": .string("gate-\(gate)"), "result": "pass"]
        if gate == 2 { payload["build_success"] = true }
        if gate == 3 {
            payload["tests_passing"] = true
            payload["coverage"] = 90
        }
        // A message id that the same signal always has: a publish retried after a lost reply
        // writes the same id, which the ledger recognises.
        let messageID = String(format: "00000000-0000-4000-8000-%012d", index)
        return Envelope(
            eventType: .gatePassed, payload: payload, source: Self.senders[gate], project: self.project.key, messageID: messageID,
            storyID: "S-\(index % Self.stories)", seq: Self.seq(index))
    }

    /// Each sender numbers its signals one by one, as Wave's agents do: signal `index` is its
    /// sender's `seq`-th (the sender's signals at earlier gates come first).
    static func seq(_ index: Int) -> UInt64 {
        let gate = index / Self.stories
        let earlier = Self.senders[..<gate].filter { $0 == Self.senders[gate] }.count
        return UInt64(earlier * Self.stories + index % Self.stories + 1)
    }

    /// Publishes signals `range` in batches of 100, each batch retried until Redis takes it.
    func publish(_ range: Range<Int>, extra: @Sendable (Int) -> [(stream: String, fields: [StreamField])] = { _ in [] }) async throws {
        var start = range.lowerBound
        while start < range.upperBound {
            let end = min(start + 100, range.upperBound)
            let batch = (start..<end).map { (stream: Channels.signals(self.project), envelope: self.signal($0)) }
            let deadline = ContinuousClock.now + .seconds(30)
            while true {
                do {
                    _ = try await self.bus.publish(batch: batch)
                    let others = (start..<end).flatMap(extra)
                    if !others.isEmpty { _ = try await self.bus.publish(entries: others) }
                    break
                } catch {
                    guard ContinuousClock.now < deadline else { throw error }
                    try await Task.sleep(for: .milliseconds(50))
                }
            }
            start = end
        }
    }

    /// Gate results applied so far (the session's ledger).
    func applied() throws -> Int { try self.store.processedMessages(session: self.sessionID)["applied"] ?? 0 }

    /// Waits until `count` gate results are applied.
    func awaitApplied(_ count: Int, deadline: Duration = .seconds(60)) async throws {
        try await eventually("\(count) signals applied", deadline: deadline) { try self.applied() >= count }
    }

    /// Time from `start` (the fault cleared) until a signal beyond the `count` applied then is applied.
    func recovery(since start: ContinuousClock.Instant, beyond count: Int) async throws -> Duration {
        try await eventually("processing resumed", deadline: .seconds(30)) { try self.applied() > count }
        return ContinuousClock.now - start
    }

    /// Lost and duplicated effects: every story must be complete with exactly one passed gate
    /// checkpoint per gate.
    func verdict() throws -> (applied: Int, lost: Int, duplicated: Int, incomplete: Int) {
        let checkpoints = try self.store.checkpoints(session: self.sessionID).filter { $0.type == "gate" }
        var perGate: [String: Int] = [:]
        for checkpoint in checkpoints { perGate["\(checkpoint.storyID ?? "")/\(checkpoint.gate ?? "")", default: 0] += 1 }
        let distinct = perGate.count
        let duplicated = perGate.values.reduce(0) { $0 + max(0, $1 - 1) }
        let incomplete = try self.store.stories(session: self.sessionID).filter { $0.state.status != .complete }.count
        return (checkpoints.count, Self.signals - distinct, duplicated, incomplete)
    }

    func report(_ fault: String, recovered: Duration?) throws {
        let verdict = try self.verdict()
        let seconds = recovered.map { String(format: "%.2f s", Double($0.components.seconds) + Double($0.components.attoseconds) / 1e18) } ?? "–"
        print(
            "FAULT | \(fault) | sent \(Self.signals) | applied \(verdict.applied) | lost \(verdict.lost) | duplicated \(verdict.duplicated) | recovered in \(seconds)"
        )
        #expect(verdict.lost == 0, "\(fault): lost")
        #expect(verdict.duplicated == 0, "\(fault): duplicated")
        #expect(verdict.incomplete == 0, "\(fault): stories not complete")
        if let recovered { #expect(recovered < .seconds(2), "\(fault): processing resumed after \(recovered)") }
    }

    func close() async {
        await self.bus.client.shutdown()
        self.server.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }
}

@Suite(
    "Faults injected into real processes: nothing lost, nothing applied twice (QUALITY.md)",
    .serialized, .timeLimit(.minutes(3)), .enabled(if: TestServers.serverBinary != nil || TestServers.isCI))
struct FaultTests {
    @Test("fault 1: redis-server SIGKILLed in the middle of 10 000 signals and restarted 2 s later (AOF on)")
    func redisKilled() async throws {
        let world = try await FaultWorld.make(serverArguments: ["--appendonly", "yes", "--appendfsync", "always"])
        let orchestrator = try await world.orchestrator()
        try await eventually("the session started") { try world.store.session(id: world.sessionID).status == .inProgress }
        try await world.publish(0..<5_000)
        try await world.awaitApplied(1_000)
        world.server.kill()
        try await Task.sleep(for: .seconds(2))
        try await world.server.start()
        let cleared = ContinuousClock.now
        let before = try world.applied()
        async let rest: Void = world.publish(5_000..<FaultWorld.signals)
        let recovered = try await world.recovery(since: cleared, beyond: before)
        try await rest
        try await world.awaitApplied(FaultWorld.signals)
        orchestrator.terminate()
        let exit = await orchestrator.wait(limit: .seconds(30))
        #expect(exit.status == 0, "\(exit.stderr.suffix(2_000))")
        try world.report("1 redis-server SIGKILL, restart after 2 s (AOF always)", recovered: recovered)
        await world.close()
    }

    @Test("fault 2: the orchestrator SIGKILLed in the middle of 10 000 signals and restarted")
    func orchestratorKilled() async throws {
        try await Self.restartDuringLoad("2 orchestrator SIGKILL, restart") { first in
            kill(first.pid, SIGKILL)
            _ = await first.wait(limit: .seconds(10))
        }
    }

    /// Stops the orchestrator (`stop`) after 1 000 of the first 5 000 signals applied, publishes
    /// 2 500 more while it is down, starts it again and times the resumption, then the rest.
    static func restartDuringLoad(_ fault: String, stop: (WaveBinary.Running) async throws -> Void) async throws {
        let world = try await FaultWorld.make(String(fault.lowercased().filter { $0.isLetter || $0.isNumber }))
        let first = try await world.orchestrator()
        try await eventually("the session started") { try world.store.session(id: world.sessionID).status == .inProgress }
        try await world.publish(0..<5_000)
        try await world.awaitApplied(1_000)
        try await stop(first)
        let before = try world.applied()
        try await world.publish(5_000..<7_500)
        let cleared = ContinuousClock.now
        let second = try await world.orchestrator()
        let recovered = try await world.recovery(since: cleared, beyond: before)
        try await world.publish(7_500..<FaultWorld.signals)
        try await world.awaitApplied(FaultWorld.signals)
        second.terminate()
        let exit = await second.wait(limit: .seconds(30))
        #expect(exit.status == 0, "\(exit.stderr.suffix(2_000))")
        try world.report(fault, recovered: recovered)
        await world.close()
    }

    @Test("fault 3: Redis absent when the orchestrator starts; it appears 5 s later")
    func redisAbsentAtStart() async throws {
        let world = try await FaultWorld.make(startServer: false)
        let orchestrator = try await world.orchestrator()
        try await Task.sleep(for: .seconds(5))
        #expect(try world.store.session(id: world.sessionID).status == .pending, "nothing started without Redis")
        try await world.server.start()
        let cleared = ContinuousClock.now
        async let load: Void = world.publish(0..<FaultWorld.signals)
        let recovered = try await world.recovery(since: cleared, beyond: 0)
        try await load
        try await world.awaitApplied(FaultWorld.signals)
        orchestrator.terminate()
        let exit = await orchestrator.wait(limit: .seconds(30))
        #expect(exit.status == 0, "\(exit.stderr.suffix(2_000))")
        #expect(exit.stderr.contains("is not reachable") && exit.stderr.contains("waiting for it"), "it said once that it waits")
        try world.report("3 Redis absent at start, appears after 5 s", recovered: recovered)
        await world.close()
    }

    @Test(
        "fault 4: Redis restarted empty (no persistence): groups recreated; nothing lost among signals read before it or published after it; what vanished is counted from the seq gap"
    )
    func redisRestartedEmpty() async throws {
        let world = try await FaultWorld.make()
        let orchestrator = try await world.orchestrator()
        try await eventually("the session started") { try world.store.session(id: world.sessionID).status == .inProgress }
        try await world.publish(0..<9_000)
        try await world.awaitApplied(9_000)
        // The orchestrator is paused, so that signals 9 000..<9 500 (gate-7 of S-250…S-749, all
        // from CTO-1) are still unread when Redis dies without its data. A blocked read may have
        // brought some of them into the paused process's socket before the kill: those are read.
        kill(orchestrator.pid, SIGSTOP)
        try await world.publish(9_000..<9_500)
        world.server.kill()
        try await world.server.start()
        let cleared = ContinuousClock.now
        kill(orchestrator.pid, SIGCONT)
        #expect(try await world.bus.length(of: Channels.signals(world.project)) == 0, "the new server is empty")
        async let rest: Void = world.publish(9_500..<FaultWorld.signals)
        // Resumed when the first signal published after the restart (S-750's gate-7) is applied.
        try await eventually("processing resumed", deadline: .seconds(30)) {
            try world.store.story("S-750", session: world.sessionID).state.status == .complete
        }
        let recovered = ContinuousClock.now - cleared
        try await rest
        let stories = try world.store.stories(session: world.sessionID)
        let vanishedRange = 250..<750
        try await eventually("every signal read is applied") {
            try world.store.stories(session: world.sessionID).filter { !vanishedRange.contains(Int($0.state.storyID.dropFirst(2))!) }.allSatisfy {
                $0.state.status == .complete
            }
        }
        #expect(try await world.bus.groups(of: Channels.signals(world.project)).map(\.group) == ["orchestrator"], "the group was created again")
        orchestrator.terminate()
        let exit = await orchestrator.wait(limit: .seconds(30))
        #expect(exit.status == 0, "\(exit.stderr.suffix(2_000))")
        #expect(exit.stderr.contains("consumer group missing"), "the loss of the group is logged")

        // What vanished: the gate-7 signals of the stories still at gate-7. Each is counted,
        // from CTO-1's seq gap, in the log and in the instance's state (`wave status`).
        let final = try world.store.stories(session: world.sessionID)
        let stuck = final.filter { $0.state.status != .complete }
        #expect(
            stuck.allSatisfy { vanishedRange.contains(Int($0.state.storyID.dropFirst(2))!) && $0.state.currentGate.number == 7 },
            "only stories whose gate-7 vanished wait")
        #expect(stuck.count > 500 - 128, "at most one read's worth of the paused signals was read before the kill")
        let instance = try #require(try world.store.orchestrators().first { $0.consumer == "fault" })
        let counted = Int(instance.state["vanished_with_redis"]?.numberValue ?? -1)
        #expect(counted == stuck.count, "vanished counted from the seq gap: \(counted), stories waiting for a vanished signal: \(stuck.count)")
        #expect(exit.stderr.contains("entries vanished with Redis before they were read"), "the loss is logged")
        // Nothing else lost, nothing applied twice: every gate checkpoint once, all of them for
        // the complete stories, gates 0–6 for the waiting ones.
        let checkpoints = try world.store.checkpoints(session: world.sessionID).filter { $0.type == "gate" }
        var perGate: [String: Int] = [:]
        for checkpoint in checkpoints { perGate["\(checkpoint.storyID ?? "")/\(checkpoint.gate ?? "")", default: 0] += 1 }
        let duplicated = perGate.values.reduce(0) { $0 + max(0, $1 - 1) }
        let lost = FaultWorld.signals - counted - perGate.count
        print(
            "FAULT | 4 Redis restarted empty (\(counted) unread signals vanished, counted from the seq gap) | sent \(FaultWorld.signals) | applied \(checkpoints.count) | lost \(lost) | duplicated \(duplicated) | recovered in \(String(format: "%.2f s", Double(recovered.components.seconds) + Double(recovered.components.attoseconds) / 1e18))"
        )
        #expect(lost == 0 && duplicated == 0)
        #expect(stories.count == FaultWorld.stories)
        #expect(recovered < .seconds(2), "processing resumed after \(recovered)")
        await world.close()
    }

    @Test("fault 5: SIGTERM under load: a clean exit (0), then a restart finishes the work")
    func sigtermUnderLoad() async throws {
        try await Self.restartDuringLoad("5 SIGTERM under load, restart") { first in
            first.terminate()
            let exit = await first.wait(limit: .seconds(30))
            #expect(exit.status == 0, "a graceful stop exits 0: \(exit.stderr.suffix(1_500))")
            #expect(exit.stderr.contains("orchestrator stopped"))
        }
    }

    @Test("fault 6: poison and malformed messages mixed into the load are dead-lettered with their reason; the stream keeps flowing")
    func poisonInTheLoad() async throws {
        let world = try await FaultWorld.make()
        let orchestrator = try await world.orchestrator()
        try await eventually("the session started") { try world.store.session(id: world.sessionID).status == .inProgress }
        let project = world.project
        // Every 500th signal brings three bad entries: not an envelope, an unknown story, a gate that does not exist.
        try await world.publish(0..<FaultWorld.signals) { index in
            guard index % 500 == 0 else { return [] }
            let unknown = Envelope(
                eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: project.key, storyID: "NOPE-\(index)")
            let badGate = Envelope(
                eventType: .gatePassed, payload: ["gate_id": "gate-9", "result": "pass"], source: "BE-1", project: project.key, storyID: "S-0")
            return [
                (Channels.signals(project), [StreamField("garbage", "\(index)")]),
                (Channels.signals(project), unknown.fields),
                (Channels.signals(project), badGate.fields),
            ]
        }
        try await world.awaitApplied(FaultWorld.signals)
        let poison = 3 * (FaultWorld.signals / 500)
        try await eventually("every poison entry is dead-lettered") { try await world.bus.length(of: Channels.deadLetters(project)) >= poison }
        let letters = try await world.bus.entries(of: Channels.deadLetters(project), count: poison + 10)
        #expect(letters.count == poison)
        let reasons = letters.compactMap { $0.fields.first(where: { $0.name == "dlq_reason" || $0.name == "dlq_error" })?.value }
        #expect(reasons.count == poison, "each with its reason")
        #expect(reasons.filter { $0.contains("unknown_story") }.count == poison / 3)
        orchestrator.terminate()
        _ = await orchestrator.wait(limit: .seconds(30))
        try world.report("6 poison and malformed entries (\(poison) of them)", recovered: nil)
        await world.close()
    }
}
