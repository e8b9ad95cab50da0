import Testing

@testable import WaveProtocol

@Suite("Envelope")
struct EnvelopeTests {
    @Test("every declared event type round-trips through the wire fields", arguments: EventType.allCases)
    func roundTrip(type: EventType) throws {
        let original = Envelope(
            eventType: type, payload: ["gate_id": "gate-3", "result": "pass", "coverage": 81.5, "nested": ["a": [1, 2, nil]]],
            source: "BE-1", project: "My-Project", priority: .high, timestamp: WaveTimestamp(parsing: "2026-01-27T17:07:26.123456Z"),
            sessionID: "5b0c7c1e-0d8f-4d4b-9d0a-2f1c2e9a7b11", storyID: "WAVE-42", correlationID: "c-1", seq: 7,
            extraFields: [StreamField("x_trace", "abc")]
        )
        let decoded = try Envelope(decoding: original.fields)
        #expect(decoded == original)
        #expect(decoded.fields == original.fields)
    }

    @Test("there are 18 core types and the extension types never go on signal streams")
    func typeSets() {
        #expect(EventType.core.count == 18)
        #expect(EventType.core.contains(.sessionPaused))
        #expect(EventType.extensions.allSatisfy { !$0.allowedOnSignalStreams })
        #expect(EventType.extensions.count == 10)
    }

    @Test("an entry in the reference's format decodes: naive timestamp, no seq or schema_version, extra fields kept")
    func referenceFormat() throws {
        let fields = [
            StreamField("event_type", "gate.passed"),
            StreamField("payload", #"{"gate_id": "gate-2", "result": "fail", "agent_id": "be-dev-1", "domain": "be"}"#),
            StreamField("source", "be-dev-1"),
            StreamField("project", "Acme"),
            StreamField("priority", "normal"),
            StreamField("message_id", "0f8fad5b-d9cb-469f-a165-70867728950e"),
            StreamField("timestamp", "2026-01-27T17:07:26.123456"),
            StreamField("session_id", "3e2c8a3c-6c43-4f0b-8b7e-1a6f9b0d2c11"),
            StreamField("story_id", "AUTH-001"),
            StreamField("dlq_hint", "kept"),
        ]
        let envelope = try Envelope(decoding: fields)
        #expect(envelope.isReferenceFormat)
        #expect(envelope.seq == nil)
        #expect(envelope.timestamp?.description == "2026-01-27T17:07:26.123456Z")
        #expect(envelope.extraFields == [StreamField("dlq_hint", "kept")])
        #expect(envelope.storyIDForRouting == "AUTH-001")
        #expect(envelope.senderRole() == "be")
        #expect(GateOutcome(payload: envelope.payload) == .failed)
        // Wave writes the same field names and value formats.
        let names = Envelope(eventType: .gatePassed, source: "BE-1", project: "Acme").fields.map(\.name)
        #expect(Array(names.prefix(7)) == ["event_type", "payload", "source", "project", "priority", "message_id", "timestamp"])
    }

    @Test("absent optional fields take their defaults; a missing message_id is derived from the entry, stably")
    func defaults() throws {
        let fields = [
            StreamField("event_type", "agent.ready"), StreamField("payload", "{}"),
            StreamField("source", "QA-1"), StreamField("project", "p"),
        ]
        let a = try Envelope(decoding: fields, stream: "wave:signals:p", entryID: "1-1")
        let b = try Envelope(decoding: fields, stream: "wave:signals:p", entryID: "1-1")
        let c = try Envelope(decoding: fields, stream: "wave:signals:p", entryID: "1-2")
        #expect(a.priority == .normal && a.timestamp == nil && a.sessionID == nil)
        #expect(a.messageIDDerived)
        #expect(a.messageID == b.messageID && a.messageID != c.messageID)
        #expect(a.messageID.count == 36)
    }

    static let rejected: [([StreamField], EnvelopeDecodingError.Reason)] = [
        (
            [StreamField("event_type", "gate.exploded"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p")],
            .unknownEventType
        ),
        ([StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p")], .missingField),
        ([StreamField("event_type", "gate.passed"), StreamField("source", "a"), StreamField("project", "p")], .missingField),
        ([StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("project", "p")], .missingField),
        ([StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("source", "a")], .missingField),
        (
            [StreamField("event_type", "gate.passed"), StreamField("payload", "{not json"), StreamField("source", "a"), StreamField("project", "p")],
            .invalidJSON
        ),
        (
            [StreamField("event_type", "gate.passed"), StreamField("payload", "[1,2]"), StreamField("source", "a"), StreamField("project", "p")],
            .payloadNotObject
        ),
        (
            [StreamField("event_type", "gate.passed"), StreamField("payload", "\"text\""), StreamField("source", "a"), StreamField("project", "p")],
            .payloadNotObject
        ),
        (
            [
                StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p"),
                StreamField("priority", "urgent"),
            ], .invalidPriority
        ),
        (
            [
                StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p"),
                StreamField("timestamp", "yesterday"),
            ], .invalidTimestamp
        ),
        (
            [
                StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p"),
                StreamField("seq", "-1"),
            ], .invalidSeq
        ),
        (
            [
                StreamField("event_type", "gate.passed"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", "p"),
                StreamField("schema_version", "two"),
            ], .invalidSchemaVersion
        ),
    ]

    @Test("what must be rejected is rejected with its reason and the raw fields", arguments: rejected)
    func rejects(fields: [StreamField], reason: EnvelopeDecodingError.Reason) {
        do {
            _ = try Envelope(decoding: fields)
            Issue.record("accepted \(fields)")
        } catch {
            #expect(error.reason == reason)
            #expect(error.fields == fields)
            #expect(error.dlqError.hasPrefix(reason.rawValue))
        }
    }

    @Test("payloads over the size or depth limit are rejected")
    func limits() {
        let big = "{\"x\":\"" + String(repeating: "a", count: 2000) + "\"}"
        let deep = String(repeating: "{\"a\":", count: 40) + "1" + String(repeating: "}", count: 40)
        let limits = EnvelopeLimits(maxPayloadBytes: 1000, maxPayloadDepth: 32)
        for (payload, reason) in [(big, EnvelopeDecodingError.Reason.payloadTooLarge), (deep, .payloadTooDeep)] {
            let fields = [StreamField("event_type", "gate.passed"), StreamField("payload", payload), StreamField("source", "a"), StreamField("project", "p")]
            #expect(throws: EnvelopeDecodingError.self) { try Envelope(decoding: fields, limits: limits) }
            do { _ = try Envelope(decoding: fields, limits: limits) } catch { #expect(error.reason == reason) }
        }
    }

    @Test(
        "the pass rule",
        arguments: [
            (["result": "pass"], GateOutcome.passed), (["result": "PASSED"], .passed), (["result": "Success"], .passed),
            (["result": "ok"], .passed), (["result": "fail"], .failed), (["result": "failed"], .failed), ([:], .failed),
            (["result": "pass", "approved": false], .failed), (["result": "pass", "approved": true], .passed),
            (["result": "pass", "approved": "false"], .failed), (["result": 1], .failed),
        ] as [([String: JSONValue], GateOutcome)])
    func passRule(payload: [String: JSONValue], outcome: GateOutcome) {
        #expect(GateOutcome(payload: payload) == outcome)
    }

    @Test("the role of a sender")
    func roles() {
        #expect(AgentRole.of(agentID: "cto-1") == "cto")
        #expect(AgentRole.of(agentID: "CTO-1") == "cto")
        #expect(AgentRole.of(agentID: "be-dev-1") == "be")
        #expect(AgentRole.of(agentID: "BE-1") == "be")
        #expect(AgentRole.of(agentID: "reviewer-7", roleMap: ["reviewer-7": "cto"]) == "cto")
        #expect(AgentRole.of(agentID: "") == nil)
        let envelope = Envelope(eventType: .gatePassed, payload: ["agent_id": "QA-2"], source: "", project: "p")
        #expect(envelope.senderRole() == "qa")
    }

    @Test("10 000 random entries: valid ones round-trip, corrupted ones decode or fail with a reason, never crash")
    func randomized() throws {
        var rng = SplitMix(seed: 0xE7)
        let types = EventType.allCases.map(\.rawValue) + ["gate.exploded", "", "GATE.PASSED"]
        let payloads = ["{}", #"{"result":"pass","gate_id":"gate-1"}"#, "[]", "{", "null", #"{"a":{"b":[1,2,{"c":null}]}}"#, "\"x\"", "{\"k\":\"\u{1F600}\"}"]
        var outcomes = (accepted: 0, rejected: 0)
        for _ in 0..<10_000 {
            var fields: [StreamField] = []
            if Int.random(in: 0..<10, using: &rng) > 0 { fields.append(StreamField("event_type", types.randomElement(using: &rng)!)) }
            if Int.random(in: 0..<10, using: &rng) > 0 { fields.append(StreamField("payload", payloads.randomElement(using: &rng)!)) }
            if Int.random(in: 0..<10, using: &rng) > 0 { fields.append(StreamField("source", ["BE-1", "", "cto-2"].randomElement(using: &rng)!)) }
            if Int.random(in: 0..<10, using: &rng) > 0 { fields.append(StreamField("project", ["p", "Acme", ""].randomElement(using: &rng)!)) }
            if Bool.random(using: &rng) { fields.append(StreamField("priority", ["low", "normal", "HIGH", "bogus", ""].randomElement(using: &rng)!)) }
            if Bool.random(using: &rng) {
                fields.append(
                    StreamField(
                        "timestamp",
                        ["2026-01-27T17:07:26.123456", "2026-01-27T17:07:26Z", "2026-13-01T00:00:00", "2026-01-27T17:07:26+02:00", "x"].randomElement(
                            using: &rng)!))
            }
            if Bool.random(using: &rng) { fields.append(StreamField("seq", ["1", "0", "-3", "18446744073709551616", "abc"].randomElement(using: &rng)!)) }
            if Bool.random(using: &rng) { fields.append(StreamField("extra_\(Int.random(in: 0..<3, using: &rng))", "v")) }
            fields.shuffle(using: &rng)
            do {
                let envelope = try Envelope(decoding: fields, stream: "s", entryID: "1-0")
                outcomes.accepted += 1
                // What was accepted re-encodes and decodes to the same envelope.
                var again = try Envelope(decoding: envelope.fields)
                again.messageIDDerived = envelope.messageIDDerived
                #expect(again == envelope)
            } catch {
                outcomes.rejected += 1
                #expect(error.fields == fields)
            }
        }
        #expect(outcomes.accepted > 500 && outcomes.rejected > 500)
    }
}

struct SplitMix: RandomNumberGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed }
    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
