import Foundation
import Testing
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

@Suite(
    "The outbox: what Wave publishes while Redis is down waits in the store and goes out in order",
    .enabled(if: TestServers.serverBinary != nil || TestServers.isCI))
struct OutboxTests {
    @Test(
        "entries published during an outage are kept in order (later ones queue behind), flushed when Redis answers again, and survive a restart of the publisher"
    )
    func outageAndFlush() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-outbox-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        let store = try SQLiteStore(
            location: StoreLocation(path: directory.appendingPathComponent("wave.sqlite").path), engine: StoryEngine(), logger: TestServers.logger)
        let client = try TestServers.client(server.url) {
            $0.reconnectBackoff = Backoff(base: .milliseconds(10), cap: .milliseconds(50))
            $0.circuitBreaker = .init(failureThreshold: 1, openBackoff: Backoff(base: .milliseconds(10), cap: .milliseconds(50)))
        }
        let bus = RedisEventBus(client: client, logger: TestServers.logger)
        let stream = "wave:tasks:outbox-test:be"
        func entry(_ n: Int) -> [(stream: String, fields: [StreamField])] { [(stream, [StreamField("message_id", "m-\(n)"), StreamField("n", "\(n)")])] }

        let publisher = DurablePublisher(bus: bus, store: store.asStateStore, logger: TestServers.logger)
        #expect(try await publisher.publish(entries: entry(1)), "Redis up: on the stream at once")
        server.kill()
        #expect(try await publisher.publish(entries: entry(2)) == false, "Redis down: kept")
        #expect(try await publisher.publish(entries: entry(3)) == false)
        #expect(try publisher.isParked && store.outboxCount() == 2)

        // A new publisher on the same store (a restarted orchestrator) finds them and keeps order.
        let restarted = DurablePublisher(bus: bus, store: store.asStateStore, logger: TestServers.logger)
        #expect(try await restarted.lookForWaitingEntries(), "the outbox is not empty: new entries queue behind it")
        try await server.start()
        let flushing = Task { await restarted.run() }
        defer { flushing.cancel() }
        #expect(try await restarted.publish(entries: entry(4)) == false, "still queued behind the outbox until it is flushed")
        // Anything that reaches Redis closes the breaker; the publisher flushes on that transition.
        try await eventually("Redis answers again") { (try? await client.send(PingCommand())) == "PONG" }
        try await eventually("the outbox is flushed") { try store.outboxCount() == 0 && !restarted.isParked }
        let numbers = try await bus.entries(of: stream, count: 10).compactMap { $0.fields.first(where: { $0.name == "n" })?.value }
        #expect(numbers == ["2", "3", "4"], "in order (entry 1 went to the server that was killed without persistence)")
        #expect(try await restarted.publish(entries: entry(5)), "straight to the stream again")
        #expect(restarted.totals.flushed == 3)
        await client.shutdown()
    }
}
