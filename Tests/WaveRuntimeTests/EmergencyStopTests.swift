import Foundation
import Testing
import WaveBus
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

@Suite("Emergency stop: keys, restarts, the CLI (Redis)", .enabled(if: TestServers.available(TestServers.plain)))
struct EmergencyStopTests {
    @Test("wave stop halts a running orchestrator, survives its restart and a lost key; wave stop clear lets the held task out")
    func stopAcrossRestarts() async throws {
        let h = try Harness.make(.redis)
        let redis = try #require(h.bus as? RedisEventBus)
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let store = ["--redis", url, "--store", "sqlite:\(h.directory.path)/wave.sqlite"]
        _ = try h.session([backend("E-1")])
        try await h.running {
            try await h.passGateZero("E-1")
            let stopped = try await WaveBinary.run(["stop", "--project", h.project.key, "--reason", "bad deploy", "--by", "ops"] + store)
            #expect(stopped.status == 0, "\(stopped.stderr)")
            // The orchestrator received the announcement (already applied: a duplicate for the ledger).
            try await eventually("the orchestrator halted") { h.orchestrator.tasks.isHalted(project: h.project.key) }
            try await h.gate(1, story: "E-1", from: "BE-1")
            let underStop = try await h.tasks("be").map { "\($0.gate)#\($0.attempt)" }
            #expect(underStop == ["gate-1#1"], "nothing dispatched under the stop")
        }
        let key = EmergencyKeys.key(scope: .project(h.project))
        #expect(try await redis.client.send(TTLCommand(key)) == -1, "no TTL")
        // Redis loses the key; a new orchestrator on the same store writes it again and stays halted.
        _ = try await redis.client.send(DelCommand(keys: [key]))
        let restarted = Orchestrator(bus: h.bus, store: h.store.asStateStore, configuration: h.orchestrator.configuration, logger: TestServers.logger)
        try await restarted.prepare()
        #expect(restarted.tasks.isHalted(project: h.project.key))
        #expect(try await redis.client.send(GetCommand(key))?.contains("bad deploy") == true)
        #expect(try await h.tasks("be").map(\.gate.number) == [1], "the restart dispatched nothing under the stop")
        let cleared = try await WaveBinary.run(["stop", "clear", "--project", h.project.key, "--reason", "rolled back", "--by", "ops"] + store)
        #expect(cleared.status == 0, "\(cleared.stderr)")
        #expect(try await redis.client.send(GetCommand(key)) == nil)
        let again = Orchestrator(bus: h.bus, store: h.store.asStateStore, configuration: h.orchestrator.configuration, logger: TestServers.logger)
        try await again.prepare()
        #expect(try await h.tasks("be").map(\.gate.number) == [1, 2], "after the clear the held gate-2 task goes out")
        let history = try h.store.stopHistory()
        #expect(history.first?.stop.by == "ops" && history.first?.clearedBy == "ops")
    }

    @Test("the reference's wave:emergency:active key sets an audited global stop from a legacy trigger")
    func legacyKey() async throws {
        // The reference's key is global to a Redis server: a server of this test's own, so that no
        // other test's orchestrator sees it.
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let h = try Harness.make(.redis, redisURL: server.url)
        let redis = try #require(h.bus as? RedisEventBus)
        _ = try await redis.client.send(
            SetCommand(
                Channels.Legacy.emergencyActive, value: #"{"reason": "HALT from the portal", "timestamp": 1764000000}"#,
                expiration: .seconds(60)))
        try await h.orchestrator.prepare()
        let stops = try h.store.activeStops()
        #expect(stops.map(\.scope) == [.global])
        #expect(stops.first?.source == "legacy" && stops.first?.reason == "HALT from the portal")
        #expect(h.orchestrator.tasks.isHalted(project: h.project.key))
        #expect(try await redis.client.send(GetCommand(Channels.emergencyGlobal))?.contains("legacy") == true, "mirrored to wave:emergency:global")
        // The legacy key expiring never clears the stop.
        _ = try await redis.client.send(DelCommand(keys: [Channels.Legacy.emergencyActive]))
        let restarted = Orchestrator(bus: h.bus, store: h.store.asStateStore, configuration: h.orchestrator.configuration, logger: TestServers.logger)
        try await restarted.prepare()
        #expect(restarted.tasks.isHalted(project: h.project.key))
        await redis.client.shutdown()
    }

    @Test("the reference's HALT on wave:emergency stops everything; its RESUME clears only a legacy stop")
    func legacyChannel() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let h = try Harness.make(.redis, redisURL: server.url)
        let redis = try #require(h.bus as? RedisEventBus)
        let run = Task { try await h.orchestrator.run() }
        defer { run.cancel() }
        try await eventually("a HALT on the channel halts dispatch") {
            _ = try await redis.client.send(
                PublishCommand(
                    channel: Channels.Legacy.emergencyChannel, message: #"{"action": "HALT", "reason": "portal says stop", "timestamp": 1764000000}"#))
            // Dispatch halts first; the stop's record follows it.
            return try h.orchestrator.tasks.isHalted(project: h.project.key) && !h.store.activeStops().isEmpty
        }
        #expect(try h.store.activeStops().map { "\($0.scope) \($0.source) \($0.reason)" } == ["global legacy portal says stop"])
        _ = try await redis.client.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "RESUME", "reason": "ok"}"#))
        try await eventually("RESUME clears the legacy stop") { try h.store.activeStops().isEmpty && !h.orchestrator.tasks.isHalted(project: h.project.key) }
        // A stop set through Wave is not the legacy channel's to clear.
        _ = try h.store.recordStop(scope: .global, reason: "operator", by: "ops")
        _ = try await redis.client.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "RESUME", "reason": "nope"}"#))
        _ = try await redis.client.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "NOPE"}"#))
        try await Task.sleep(for: .milliseconds(300))
        #expect(try h.store.activeStops().map(\.by) == ["ops"])
        run.cancel()
        _ = try? await run.value
    }

    @Test("Redis killed and restarted: the reference's HALT still halts dispatch (the channel's listener is supervised)")
    func legacyChannelAfterOutage() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        // The orchestrator's client opens its breaker after one failure and probes again only
        // after up to 4 s (full jitter), so the channel's re-subscription (which reconnects on
        // its own) usually meets an open breaker in its reconcile: the case that used to end the
        // listener for good.
        let h = try Harness.make(
            .redis, redisURL: server.url,
            redis: {
                $0.circuitBreaker = CircuitBreaker.Configuration(failureThreshold: 1, openBackoff: Backoff(base: .seconds(4), cap: .seconds(4)))
            }, configure: { $0.supervision.backoff = Backoff(base: .milliseconds(50), cap: .milliseconds(500)) })
        let redis = try #require(h.bus as? RedisEventBus)
        let run = Task { try await h.orchestrator.run() }
        defer { run.cancel() }
        let publisher = try TestServers.client(server.url)
        // Listening before the outage: someone receives what is published on the channel.
        try await eventually("the orchestrator subscribed to the legacy channel") {
            try await publisher.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "NOOP"}"#)) >= 1
        }
        server.kill()
        // A request of the orchestrator's during the outage opens its breaker.
        _ = try? await redis.client.send(PingCommand())
        #expect(redis.client.breaker.state == .open)
        // sleep: test-scaffolding (the outage's length)
        try await Task.sleep(for: .seconds(1))
        try await server.start()
        try await eventually("the listener subscribed again after the outage", deadline: .seconds(15)) {
            ((try? await publisher.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "NOOP"}"#))) ?? 0) >= 1
        }
        // Listening for good: the reconcile after the (re)subscription went through.
        try await eventually("the breaker closed again", deadline: .seconds(10)) { redis.client.breaker.state == .closed }
        try await eventually("still subscribed", deadline: .seconds(5)) {
            ((try? await publisher.send(PublishCommand(channel: Channels.Legacy.emergencyChannel, message: #"{"action": "NOOP"}"#))) ?? 0) >= 1
        }
        #expect(!h.orchestrator.tasks.isHalted(project: h.project.key))
        let sent = ContinuousClock.now
        let receivers = try await publisher.send(
            PublishCommand(
                channel: Channels.Legacy.emergencyChannel,
                message: #"{"action": "HALT", "reason": "after the outage", "timestamp": 1764000000}"#))
        #expect(receivers >= 1)
        try await eventually("the HALT halted dispatch", deadline: .seconds(5)) { h.orchestrator.tasks.isHalted(project: h.project.key) }
        let took = ContinuousClock.now - sent
        #expect(took < .seconds(1), "halted \(took) after the HALT (generous bound; the figure is wave bench stop's)")
        // Dispatch halts before the stop is written; the record follows.
        try await eventually("the stop recorded", deadline: .seconds(5)) { try !h.store.activeStops().isEmpty }
        #expect(try h.store.activeStops().map { "\($0.scope) \($0.source) \($0.reason)" } == ["global legacy after the outage"])
        run.cancel()
        _ = try? await run.value
        await publisher.shutdown()
    }
}
