import Foundation
import Logging
import Testing
import WaveProtocol
import WaveRedis
import WaveTesting

@testable import WaveBus

@Suite("Redis bus: the reference's wire format", .enabled(if: BusKind.available.contains(.redis)))
struct RedisBusTests {
    @Test("an entry written field by field as the reference writes it is delivered; Wave writes the same names and formats")
    func referenceEntry() async throws {
        let bus = try #require(try BusKind.redis.makeBus() as? RedisEventBus)
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("orchestrator", on: stream, start: .newEntries)
        // Exactly what the Python reference's publisher sends: MAXLEN ~ 10000, naive timestamp,
        // no seq, no schema_version, a random per-process session id.
        let reference = try await bus.client.send(
            RawCommand(
                "XADD", stream, "MAXLEN", "~", "10000", "*",
                "event_type", "gate.passed",
                "payload", #"{"gate_id": "gate-3", "result": "fail", "agent_id": "be-dev-1", "domain": "be"}"#,
                "source", "be-dev-1", "project", project.uppercased(), "priority", "normal",
                "message_id", "0f8fad5b-d9cb-469f-a165-70867728950e", "timestamp", "2026-01-27T17:07:26.123456",
                "session_id", "3e2c8a3c-6c43-4f0b-8b7e-1a6f9b0d2c11", "story_id", "AUTH-001"
            )
        ).stringValue
        let received = try await bus.withConsumer(ConsumerOptions(streams: [stream], group: "orchestrator", consumer: "c")) { deliveries in
            try await collect(deliveries, count: 1) { try await bus.acknowledge([$0]) }
        }
        let delivery = try #require(received.first)
        #expect(delivery.id == reference)
        #expect(delivery.envelope?.isReferenceFormat == true && delivery.envelope?.seq == nil)
        #expect(delivery.envelope?.messageID == "0f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(delivery.envelope?.timestamp?.description == "2026-01-27T17:07:26.123456Z")
        #expect(GateOutcome(payload: delivery.envelope?.payload ?? [:]) == .failed)

        // Wave's own envelope, read back raw: the reference's names, strings for every value.
        let id = try await bus.publish(
            Envelope(eventType: .gatePassed, payload: ["gate_id": "gate-3", "result": "pass"], source: "BE-1", project: project, storyID: "AUTH-001", seq: 3),
            to: stream)
        let raw = try #require(try await bus.client.send(XRangeCommand(stream, start: id, end: id)).first)
        let names = raw.fields.map(\.name)
        #expect(Array(names.prefix(7)) == ["event_type", "payload", "source", "project", "priority", "message_id", "timestamp"])
        #expect(raw["payload"].flatMap { JSONValue(jsonText: $0) } == .object(["gate_id": "gate-3", "result": "pass"]))
        #expect(raw["timestamp"]?.hasSuffix("Z") == true && raw["seq"] == "3" && raw["schema_version"] == "2")
        await bus.client.shutdown()
    }
}

@Suite("Redis bus: trimming", .enabled(if: BusKind.available.contains(.redis)))
struct RedisBusTrimmingTests {
    @Test("a publisher trimming with MAXLEN ~ while the consumer is stopped gives an exact trimmed_unread count")
    func trimmedUnread() async throws {
        let bus = try #require(try BusKind.redis.makeBus() as? RedisEventBus)
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        let options = ConsumerOptions(streams: [stream], group: "g", consumer: "c")
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<10 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        let before = try await bus.withConsumer(options) { deliveries in
            try await collect(deliveries, count: 10) { try await bus.acknowledge([$0]) }
        }
        #expect(before.count == 10)
        // The consumer is stopped; a reference-style publisher adds 1 000 entries with MAXLEN ~ 100.
        let published = 1_000
        var commands: [RawCommand] = []
        for i in 0..<published {
            var arguments = ["XADD", stream, "MAXLEN", "~", "100", "*"]
            for field in envelope(project: project, story: "T-\(i)").fields { arguments += [field.name, field.value] }
            commands.append(RawCommand(arguments: arguments))
        }
        for chunk in stride(from: 0, to: commands.count, by: 100) {
            _ = try await bus.client.pipeline(Array(commands[chunk..<min(chunk + 100, commands.count)]))
        }
        let remaining = try await bus.client.send(XLenCommand(stream))
        #expect(remaining < published)
        let after = try await bus.withConsumer(options) { deliveries in
            try await collect(deliveries, count: remaining) { try await bus.acknowledge([$0]) }
        }
        #expect(after.count == remaining)
        // Every entry published while the consumer was stopped was either delivered or counted:
        // trimmed before the group read it, or (when the stopping consumer's last blocking read
        // took one entry into its pending list just before its connection closed) deleted while
        // pending.
        let trimmed = bus.counters.trimmedUnread["\(stream)|g"] ?? 0
        let deletedPending = bus.counters.deletedWhilePending
        #expect(
            trimmed + deletedPending == published - after.count,
            "trimmed \(trimmed) + deleted while pending \(deletedPending), published \(published), delivered \(after.count)")
        #expect(deletedPending <= 1)
        await bus.client.shutdown()
    }
}

@Suite("Redis bus: publishing across a connection loss", .enabled(if: TestServers.available(TestServers.serverBinary)))
struct RedisBusRetryTests {
    @Test("a publish retried after the server came back writes the same message id")
    func retryKeepsMessageID() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        var configuration = try RedisConfiguration(url: server.url)
        configuration.reconnectBackoff = Backoff(base: .milliseconds(100), cap: .milliseconds(200))
        configuration.circuitBreaker = .init(failureThreshold: 1000)
        let client = try RedisClient(configuration: configuration, logger: TestServers.logger)
        var bus = RedisEventBus(client: client, logger: TestServers.logger)
        bus.publishAttempts = 40
        let stream = "wave:signals:retry"
        _ = try await bus.publish(envelope(project: "retry", story: "BEFORE"), to: stream)
        server.stop()
        let message = envelope(project: "retry", story: "DURING")
        let publishing = Task { [bus] in try await bus.publish(message, to: stream) }
        try await Task.sleep(for: .milliseconds(300))
        try await server.start()
        let id = try await publishing.value
        let entries = try await bus.entries(of: stream, count: 10)
        #expect(entries.last?.id == id)
        #expect(entries.last?.fields.first(where: { $0.name == "message_id" })?.value == message.messageID)
        await client.shutdown()
        server.stop()
    }
}
