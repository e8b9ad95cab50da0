import Foundation
import GRDB
import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

/// What the rows say, without ids and wall-clock stamps (which differ between two stores).
func normalizedRows(_ store: SQLiteStore) throws -> [String] {
    try store.pool.read { db in
        var rows: [String] = []
        for row in try Row.fetchAll(
            db,
            sql: """
                SELECT story_id, status, current_gate, version, retry_count, blocked_reason, acceptance_criteria_passed, acceptance_criteria_total,
                    cost_usd, token_count, error_message, metadata, started_at IS NOT NULL, completed_at IS NOT NULL, failed_at IS NOT NULL
                FROM wave_story_executions ORDER BY story_id
                """)
        { rows.append("story " + row.databaseValues.map(\.description).joined(separator: "|")) }
        for row in try Row.fetchAll(db, sql: "SELECT story_id, checkpoint_type, checkpoint_name, gate, state FROM wave_checkpoints ORDER BY seq") {
            rows.append("checkpoint " + row.databaseValues.map(\.description).joined(separator: "|"))
        }
        for row in try Row.fetchAll(db, sql: "SELECT story_id, kind, reason FROM wave_escalations ORDER BY rowid") {
            rows.append("escalation " + row.databaseValues.map(\.description).joined(separator: "|"))
        }
        for row in try Row.fetchAll(db, sql: "SELECT message_id, outcome FROM wave_processed_messages ORDER BY message_id") {
            rows.append("ledger " + row.databaseValues.map(\.description).joined(separator: "|"))
        }
        for row in try Row.fetchAll(db, sql: "SELECT story_id, source, last_seq FROM wave_source_seq ORDER BY story_id, source") {
            rows.append("seq " + row.databaseValues.map(\.description).joined(separator: "|"))
        }
        for row in try Row.fetchAll(
            db, sql: "SELECT status, stories_completed, stories_failed, actual_cost_usd, token_count, paused_at IS NOT NULL, metadata FROM wave_sessions")
        {
            rows.append("session " + row.databaseValues.map(\.description).joined(separator: "|"))
        }
        return rows
    }
}

/// Random messages for three stories (S-3 depends on S-1): gate results from every role, errors,
/// blocks and unblocks, some numbered by their senders (now and then out of order), some with a cost.
func randomMessages(seed: Int, count: Int = 150) throws -> [IncomingEvent] {
    var generator = SeededGenerator(seed: UInt64(seed))
    let roles = ["fe", "be", "qa", "pm", "cto"]
    var messages: [IncomingEvent] = []
    for i in 0..<count {
        let story = "S-\(Int(generator.next() % 3) + 1)"
        let role = roles[Int(generator.next() % 5)]
        let event: StoryEvent
        switch generator.next() % 12 {
        case 0: event = .agentError(message: "e\(i)", retryable: generator.next() % 4 != 0, role: role)
        case 1: event = .blocked(reason: "b\(i)")
        case 2, 3: event = .unblocked(reason: nil)
        default:
            let payload: [String: JSONValue] = ["result": generator.next() % 5 == 0 ? "fail" : "pass"]
            event = .gateResult(GateResultInput(gate: try GateID(Int(generator.next() % 8)), payload: payload, senderRole: role, agentID: "\(role)-1"))
        }
        let seq: UInt64? = generator.next() % 3 == 0 ? UInt64(generator.next() % 4 == 0 ? max(0, i - 40) : i) : nil
        messages.append(
            IncomingEvent(
                messageID: "m-\(i)", eventType: "x", source: "\(role)-1", seq: seq, storyID: story, event: event,
                costUSD: generator.next() % 4 == 0 ? 0.01 : nil, tokens: 10))
    }
    return messages
}

/// A store with one session of three stories (S-3 depends on S-1) started at t(0).
func threeStoryStore(_ name: String, budgetUSD: Double) throws -> SQLiteStore {
    let store = try temporaryStore(name)
    let session = try store.createSession(project: "p", wave: 0, stories: stories([("S-1", []), ("S-2", []), ("S-3", ["S-1"])]), budgetUSD: budgetUSD)
    _ = try store.startNextSession(project: "p", now: t(0))
    _ = try store.startReadyStories(session: session.id, now: t(0))
    return store
}

@Suite("Store properties")
struct StorePropertyTests {
    @Test(
        "the one apply path against the simple model: every message delivered twice, applied in batches of each size 1…64, leaves the rows of one-by-one application in stream order",
        arguments: 1...64)
    func batchesMatchTheModel(size: Int) throws {
        let messages = try randomMessages(seed: 1_000 + size, count: 120)
        // The stream: every message, and each one again a few entries later (a redelivery).
        var generator = SeededGenerator(seed: UInt64(size))
        var stream: [IncomingEvent] = []
        var redeliveries: [(at: Int, message: IncomingEvent)] = []
        for message in messages {
            stream.append(message)
            redeliveries.append((stream.count + Int(generator.next() % 12), message))
            while let next = redeliveries.firstIndex(where: { $0.at <= stream.count }) { stream.append(redeliveries.remove(at: next).message) }
        }
        stream.append(contentsOf: redeliveries.map(\.message))
        #expect(stream.count == 2 * messages.count)
        func prepared(_ name: String) throws -> SQLiteStore { try threeStoryStore(name, budgetUSD: 0.5) }
        let model = try prepared("model-\(size)")
        var refusedByModel: [String] = []
        for message in stream {
            do { try model.apply(message, now: t(1), jitter: 0.5) } catch is EngineRejection { refusedByModel.append(message.messageID) }
        }
        let batched = try prepared("batched-\(size)")
        var refused: [String] = []
        var index = 0
        while index < stream.count {
            let chunk = Array(stream[index..<min(index + size, stream.count)])
            let results = try batched.apply(batch: chunk, now: t(1), jitter: 0.5)
            #expect(results.count == chunk.count)
            for (message, result) in zip(chunk, results) {
                if case .failure(let error) = result {
                    #expect(error is EngineRejection, "only the engine refuses a message here: \(error)")
                    refused.append(message.messageID)
                }
            }
            index += chunk.count
        }
        #expect(refused == refusedByModel)
        let rows = try normalizedRows(batched)
        #expect(rows == (try normalizedRows(model)))
        // A message refused at its first delivery may apply at its second (its story moved on).
        let refusedTwice = Set(refused.filter { id in refused.count(where: { $0 == id }) == 2 })
        #expect(
            rows.filter { $0.hasPrefix("ledger") }.count == Set(stream.map(\.messageID)).subtracting(refusedTwice).count, "one ledger entry per message applied"
        )
    }

    @Test("every message delivered twice, and the whole sequence again, leaves exactly the rows one delivery leaves", arguments: 0..<12)
    func duplicatesChangeNothing(seed: Int) throws {
        let messages = try randomMessages(seed: seed)
        func prepared(_ name: String) throws -> SQLiteStore { try threeStoryStore(name, budgetUSD: 5) }
        let once = try prepared("once-\(seed)")
        let twice = try prepared("twice-\(seed)")
        let batched = try prepared("batched-\(seed)")
        var refused = Set<String>()
        for (i, message) in messages.enumerated() {
            do { try once.apply(message, now: t(i + 1), jitter: 0.5) } catch is EngineRejection { refused.insert(message.messageID) }
            for _ in 0..<2 {
                do { try twice.apply(message, now: t(i + 1), jitter: 0.5) } catch is EngineRejection {}
            }
            // Now and then the session is paused or resumed (announced twice in the second store);
            // results keep applying while it is paused.
            if i % 37 == 5 || i % 37 == 20 {
                let pause = i % 37 == 5
                for (store, times) in [(once, 1), (twice, 2)] {
                    let id = try #require(try store.sessions().first?.id)
                    for _ in 0..<times {
                        if pause {
                            try store.pauseSession(id, messageID: "pause-\(i)", now: t(i + 1))
                        } else {
                            try store.resumeSession(id, messageID: "resume-\(i)", now: t(i + 1))
                        }
                    }
                }
            }
        }

        // The same messages in batches of 7 (one commit each) leave the rows that applying them one
        // by one at the same times leaves; a refused message is reported in its slot, changes nothing.
        let singly = try prepared("singly-\(seed)")
        var index = 0
        while index < messages.count {
            let chunk = Array(messages[index..<min(index + 7, messages.count)])
            let results = try batched.apply(batch: chunk, now: t(index + 1), jitter: 0.5)
            #expect(results.count == chunk.count)
            for (message, result) in zip(chunk, results) {
                var refusedSingly = false
                do { try singly.apply(message, now: t(index + 1), jitter: 0.5) } catch is EngineRejection { refusedSingly = true }
                if case .failure = result { #expect(refusedSingly) } else { #expect(!refusedSingly) }
            }
            index += chunk.count
        }
        #expect(try normalizedRows(batched) == normalizedRows(singly))

        // The whole sequence again: every acknowledged message is a duplicate now.
        for (i, message) in messages.enumerated() where !refused.contains(message.messageID) {
            #expect(throws: Never.self) { try twice.apply(message, now: t(i + 1000), jitter: 0.5) }
        }
        // The session's counters moved by deltas; they must equal a recount of its stories.
        for store in [once, twice] {
            let (counted, recorded) = try store.pool.read { db in
                (
                    try Row.fetchOne(
                        db,
                        sql: """
                            SELECT SUM(status = 'complete'), SUM(status = 'failed'), ROUND(SUM(cost_usd), 4), SUM(token_count) FROM wave_story_executions
                            """)!.databaseValues.map(\.description),
                    try Row.fetchOne(db, sql: "SELECT stories_completed, stories_failed, ROUND(actual_cost_usd, 4), token_count FROM wave_sessions")!
                        .databaseValues.map(\.description)
                )
            }
            #expect(Array(counted) == Array(recorded))
        }
        let a = try normalizedRows(once)
        let b = try normalizedRows(twice)
        #expect(a == b)
        let announcements = messages.indices.filter { $0 % 37 == 5 || $0 % 37 == 20 }.count
        #expect(a.filter { $0.hasPrefix("ledger") }.count == messages.count - refused.count + announcements)
    }
}

func t(_ seconds: Int) -> WaveTimestamp {
    WaveTimestamp(microsecondsSinceEpoch: 1_800_000_000_000_000 + Int64(seconds) * 1_000_000)
}

struct SeededGenerator {
    var state: UInt64
    init(seed: UInt64) { self.state = seed &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407 }
    mutating func next() -> UInt64 {
        self.state = self.state &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407
        var z = self.state
        z = (z ^ (z >> 33)) &* 0xFF51_AFD7_ED55_8CCD
        return z ^ (z >> 33)
    }
}

@Suite("Store batches")
struct StoreBatchTests {
    @Test("stories run to complete in batches leave the rows that one-by-one application leaves, session completion included")
    func completionInBatches() throws {
        func prepared(_ name: String) throws -> SQLiteStore {
            let store = try temporaryStore(name)
            let session = try store.createSession(project: "p", wave: 0, stories: stories([("S-1", []), ("S-2", []), ("S-3", [])]))
            _ = try store.startNextSession(project: "p", now: t(0))
            _ = try store.startReadyStories(session: session.id, now: t(0))
            return store
        }
        let owners = ["cto", "be", "be", "be", "qa", "pm", "cto", "cto"]
        var messages: [IncomingEvent] = []
        for number in 0..<8 {
            for story in ["S-1", "S-2", "S-3"] {
                var message = try gate(story, number, "pass", from: owners[number], id: "\(story)-\(number)")
                message.tokens = 5
                messages.append(message)
                if number == 4 { messages.append(message) }  // a duplicate inside the run
            }
        }
        let single = try prepared("single")
        let batched = try prepared("batched")
        for message in messages { try single.apply(message, now: t(1), jitter: 0.5) }
        var index = 0
        while index < messages.count {
            let results = try batched.apply(batch: Array(messages[index..<min(index + 5, messages.count)]), now: t(1), jitter: 0.5)
            #expect(results.allSatisfy { if case .success = $0 { true } else { false } })
            index += 5
        }
        #expect(try normalizedRows(batched) == normalizedRows(single))
        let session = try #require(try batched.sessions().first)
        #expect(session.status == .completed)
        #expect(session.tokenCount == 5 * 24, "duplicates add nothing")
    }
}
