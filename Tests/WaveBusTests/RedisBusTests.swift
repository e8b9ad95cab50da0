import Foundation
import Logging
import Testing
import WaveProtocol
import WaveRedis

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
        let reference = try await bus.client.send(RawCommand(
            "XADD", stream, "MAXLEN", "~", "10000", "*",
            "event_type", "gate.passed",
            "payload", #"{"gate_id": "gate-3", "result": "fail", "agent_id": "be-dev-1", "domain": "be"}"#,
            "source", "be-dev-1", "project", project.uppercased(), "priority", "normal",
            "message_id", "0f8fad5b-d9cb-469f-a165-70867728950e", "timestamp", "2026-01-27T17:07:26.123456",
            "session_id", "3e2c8a3c-6c43-4f0b-8b7e-1a6f9b0d2c11", "story_id", "AUTH-001"
        )).stringValue
        let received = try await bus.withConsumer(ConsumerOptions(streams: [stream], group: "orchestrator", consumer: "c")) { deliveries in
            try await collect(deliveries, count: 1) { try await bus.acknowledge([$0]) }
        }
        let delivery = try #require(received.first)
        #expect(delivery.id == reference)
        #expect(delivery.envelope.isReferenceFormat && delivery.envelope.seq == nil)
        #expect(delivery.envelope.messageID == "0f8fad5b-d9cb-469f-a165-70867728950e")
        #expect(delivery.envelope.timestamp?.description == "2026-01-27T17:07:26.123456Z")
        #expect(GateOutcome(payload: delivery.envelope.payload) == .failed)

        // Wave's own envelope, read back raw: the reference's names, strings for every value.
        let id = try await bus.publish(Envelope(eventType: .gatePassed, payload: ["gate_id": "gate-3", "result": "pass"], source: "BE-1", project: project, storyID: "AUTH-001", seq: 3), to: stream)
        let raw = try #require(try await bus.client.send(XRangeCommand(stream, start: id, end: id)).first)
        let names = raw.fields.map(\.name)
        #expect(Array(names.prefix(7)) == ["event_type", "payload", "source", "project", "priority", "message_id", "timestamp"])
        #expect(raw["payload"].flatMap { JSONValue(jsonText: $0) } == .object(["gate_id": "gate-3", "result": "pass"]))
        #expect(raw["timestamp"]?.hasSuffix("Z") == true && raw["seq"] == "3" && raw["schema_version"] == "2")
        await bus.client.shutdown()
    }
}
