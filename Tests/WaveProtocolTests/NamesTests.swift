import Testing

@testable import WaveProtocol

@Suite("Names, gates, timestamps, tasks and dead letters")
struct NamesTests {
    @Test("project names are trimmed and lower-cased for keys")
    func projectNormalization() throws {
        #expect(try ProjectName("  My-Project.v2_x ").key == "my-project.v2_x")
        #expect(Channels.signals(try ProjectName("Acme")) == "wave:signals:acme")
        #expect(Channels.system(try ProjectName("acme")) == "wave:system:acme")
        #expect(Channels.tasks(try ProjectName("acme"), "be") == "wave:tasks:acme:be")
        #expect(Channels.gate(try ProjectName("acme"), try GateID(3)) == "wave:gate:acme:gate-3")
        #expect(Channels.deadLetters(try ProjectName("acme")) == "wave:dlq:acme")
        #expect(Channels.agent(try ProjectName("acme"), "BE-1") == "wave:agent:acme:BE-1")
        #expect(Channels.emergency(try ProjectName("acme")) == "wave:emergency:acme")
        #expect(ProjectName.same("ACME ", "acme"))
        #expect(!ProjectName.same("acme", "acme2"))
    }

    @Test("names that break the rule are refused, naming the rule", arguments: ["", "   ", "a b", "a:b", "proj/x", "ümlaut", "global", "ACTIVE", " Global "])
    func projectRejected(name: String) {
        do {
            _ = try ProjectName(name)
            Issue.record("accepted \(name)")
        } catch {
            #expect(error.code == .invalidProject)
            #expect(!error.message.isEmpty)
        }
    }

    @Test("gate ids")
    func gates() throws {
        #expect(try GateID(parsing: "gate-0") == GateID.first)
        #expect(try GateID(parsing: "GATE-7") == GateID.last)
        #expect(try GateID(parsing: "3").description == "gate-3")
        #expect(try GateID(parsing: "gate-6").next == GateID(parsing: "gate-7"))
        #expect(GateID.last.next == nil)
        #expect(GateID.all.count == 8)
        for bad in ["gate-8", "gate--1", "gate", "g-1", "unknown"] {
            #expect(throws: WaveProtocolError.self) { try GateID(parsing: bad) }
        }
    }

    @Test(
        "timestamps: naive is UTC, offsets convert, output is UTC with Z",
        arguments: [
            ("2026-01-27T17:07:26.123456", "2026-01-27T17:07:26.123456Z"),
            ("2026-01-27T17:07:26Z", "2026-01-27T17:07:26.000000Z"),
            ("2026-01-27T19:07:26.5+02:00", "2026-01-27T17:07:26.500000Z"),
            ("2026-01-27T12:07:26-0500", "2026-01-27T17:07:26.000000Z"),
            ("2024-02-29 23:59:59.999999", "2024-02-29T23:59:59.999999Z"),
            ("1970-01-01T00:00:00", "1970-01-01T00:00:00.000000Z"),
            ("1969-12-31T23:59:59.5", "1969-12-31T23:59:59.500000Z"),
        ])
    func timestamps(input: String, output: String) throws {
        let parsed = try #require(WaveTimestamp(parsing: input))
        #expect(parsed.description == output)
        #expect(WaveTimestamp(parsing: parsed.description) == parsed)
    }

    @Test(
        "malformed timestamps are refused",
        arguments: [
            "", "2026-01-27", "2026-02-30T00:00:00", "2026-01-27T25:00:00", "2026-01-27T17:07:26.", "2026-01-27T17:07:26+2", "2026-01-27T17:07:26 junk",
        ])
    func badTimestamps(input: String) {
        #expect(WaveTimestamp(parsing: input) == nil)
    }

    @Test("the epoch arithmetic agrees with a known instant")
    func epoch() throws {
        #expect(try #require(WaveTimestamp(parsing: "2026-01-27T17:07:26Z")).millisecondsSinceEpoch == 1_769_533_646_000)
    }

    @Test("task entries round-trip and report a missing or bad field by name")
    func tasks() throws {
        let task = TaskEntry(
            taskID: "t-1", storyID: "S-1", sessionID: "sess", role: "be", action: "develop", gate: try GateID(1),
            payload: ["feedback": "fix the login"], priority: .high, attempt: 2,
            deadline: try #require(WaveTimestamp(parsing: "2026-01-27T17:10:26Z")), messageID: "m-1",
            timestamp: try #require(WaveTimestamp(parsing: "2026-01-27T17:07:26Z")), project: "Acme"
        )
        #expect(try TaskEntry(decoding: task.fields) == task)
        var missing = task.fields
        missing.removeAll { $0.name == "story_id" }
        do {
            _ = try TaskEntry(decoding: missing)
            Issue.record("accepted a task without a story")
        } catch {
            #expect(error.message.contains("story_id"))
        }
    }

    @Test("dead letters keep the original fields and add the dlq_* fields; reference DLQ entries read")
    func deadLetters() throws {
        let original = [StreamField("event_type", "gate.exploded"), StreamField("payload", "{}"), StreamField("custom", "kept")]
        let letter = DeadLetter(
            originalFields: original, error: "unknown_event_type: …", originalID: "5-1", sourceStream: "wave:signals:acme", group: "orchestrator",
            deliveryCount: 1)
        let fields = letter.fields
        #expect(Array(fields.prefix(3)) == original)
        #expect(Set(fields.dropFirst(3).map(\.name)) == DeadLetter.dlqFieldNames)
        let read = DeadLetter(decoding: fields)
        #expect(read.originalFields == original && read.deliveryCount == 1 && read.sourceStream == "wave:signals:acme")
        // The reference wrote only dlq_error and dlq_original_id.
        let reference = DeadLetter(decoding: original + [StreamField("dlq_error", "boom"), StreamField("dlq_original_id", "1-1")])
        #expect(reference.error == "boom" && reference.originalID == "1-1" && reference.originalFields == original)
    }
}

@Suite("Message ids")
struct MessageIDTests {
    @Test("random ids are version-4 UUIDs in lower case, and 100 000 of them are distinct")
    func unique() {
        var seen = Set<String>()
        for _ in 0..<100_000 {
            let id = MessageID.make()
            seen.insert(id)
        }
        #expect(seen.count == 100_000)
        let sample = MessageID.make()
        let parts = sample.split(separator: "-").map(\.count)
        #expect(parts == [8, 4, 4, 4, 12])
        #expect(sample == sample.lowercased())
        #expect(Array(sample)[14] == "4")
        #expect("89ab".contains(Array(sample)[19]))
    }
}
