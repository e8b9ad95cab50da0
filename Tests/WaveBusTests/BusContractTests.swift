import Foundation
import Logging
import Testing
import WaveProtocol
import WaveRedis

@testable import WaveBus

enum BusKind: String, CaseIterable, CustomTestStringConvertible, Sendable {
    case memory, redis
    var testDescription: String { self.rawValue }

    static var environment: [String: String] { ProcessInfo.processInfo.environment }
    /// Redis runs when the test script started a server, or under CI (where its absence fails).
    static var available: [BusKind] {
        environment["WAVE_TEST_REDIS_URL"] != nil || environment["CI"] == "true" ? [.memory, .redis] : [.memory]
    }

    func makeBus() throws -> any EventBus {
        switch self {
        case .memory:
            return InMemoryEventBus()
        case .redis:
            guard let url = Self.environment["WAVE_TEST_REDIS_URL"] else {
                throw BusTestError("WAVE_TEST_REDIS_URL is not set: run ./scripts/test")
            }
            var logger = Logger(label: "bus-test")
            logger.logLevel = .critical
            return RedisEventBus(client: try RedisClient(configuration: try RedisConfiguration(url: url), logger: logger), logger: logger)
        }
    }
}

struct BusTestError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// A project name no other test uses.
func uniqueProject(_ name: String = #function) -> String {
    "t-\(name.prefix(while: { $0 != "(" }).lowercased())-\(UUID().uuidString.prefix(8).lowercased())"
}

/// Collects deliveries until `count` arrived or the deadline passed, and returns what arrived
/// (test scaffolding).
func collect(
    _ deliveries: Deliveries, count: Int, within deadline: Duration = .seconds(10), onEach: @escaping @Sendable (Delivery) async throws -> Void = { _ in }
) async throws -> [Delivery] {
    let received = Received()
    try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask {
            for await delivery in deliveries {
                try await onEach(delivery)
                if await received.append(delivery) >= count { break }
            }
        }
        group.addTask { try await Task.sleep(for: deadline) }
        _ = try await group.next()
        group.cancelAll()
    }
    return await received.items
}

actor Received {
    var items: [Delivery] = []
    func append(_ delivery: Delivery) -> Int {
        self.items.append(delivery)
        return self.items.count
    }
}

func envelope(
    _ type: EventType = .gatePassed, project: String, story: String = "S-1", payload: [String: JSONValue] = ["gate_id": "gate-1", "result": "pass"]
) -> Envelope {
    Envelope(eventType: type, payload: payload, source: "BE-1", project: project, storyID: story)
}

@Suite("Event bus contract (in-memory and Redis)")
struct BusContractTests {
    @Test("every event type round-trips", arguments: BusKind.available)
    func roundTrip(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        var options = ConsumerOptions(streams: [stream], group: "orchestrator", consumer: "c1")
        options.start = .beginning
        let sent = EventType.allCases.map { envelope($0, project: project) }
        _ = try await bus.publish(batch: sent.map { (stream, $0) })
        let received = try await bus.withConsumer(options) { deliveries in
            try await collect(deliveries, count: sent.count) { try await bus.acknowledge([$0]) }
        }
        #expect(received.map(\.envelope) == sent.map(Optional.some))
        #expect(received.allSatisfy { $0.deliveryCount == 1 && $0.stream == stream })
    }

    @Test("projects are isolated: the same group on two projects sees only its own entries", arguments: BusKind.available)
    func isolation(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let a = uniqueProject("a")
        let b = uniqueProject("b")
        var options = ConsumerOptions(streams: [Channels.signals(try ProjectName(a))], group: "orchestrator", consumer: "c")
        options.start = .beginning
        _ = try await bus.publish(envelope(project: b, story: "B"), to: Channels.signals(try ProjectName(b)))
        _ = try await bus.publish(envelope(project: a, story: "A"), to: Channels.signals(try ProjectName(a)))
        let received = try await bus.withConsumer(options) { try await collect($0, count: 2, within: .seconds(3)) }
        #expect(received.map(\.envelope?.storyID) == ["A"])
    }

    @Test("two consumers in one group split the load", arguments: BusKind.available)
    func splitLoad(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        let tally = Tally(target: 40)
        let counts = try await withThrowingTaskGroup(of: [String].self) { group in
            for name in ["c1", "c2"] {
                group.addTask {
                    var options = ConsumerOptions(streams: [stream], group: "g", consumer: name)
                    options.batchSize = 1
                    return try await bus.withConsumer(options) { deliveries in
                        var mine: [String] = []
                        for await delivery in deliveries {
                            try await bus.acknowledge([delivery])
                            mine.append(delivery.id)
                            _ = await tally.add()
                            try? await Task.sleep(for: .milliseconds(5))
                        }
                        return mine  // the stream ends when the test cancels the consumers
                    }
                }
            }
            try await Task.sleep(for: .milliseconds(200))
            for i in 0..<40 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
            // Both together have all 40 (or a generous deadline passed): stop the consumers.
            try await withThrowingTaskGroup(of: Void.self) { wait in
                wait.addTask { await tally.waitUntilDone() }
                wait.addTask { try await Task.sleep(for: .seconds(20)) }
                _ = try await wait.next()
                wait.cancelAll()
            }
            try await Task.sleep(for: .milliseconds(50))
            group.cancelAll()
            var all: [[String]] = []
            for try await ids in group { all.append(ids) }
            return all
        }
        #expect(counts.map(\.count).reduce(0, +) == 40)
        #expect(Set(counts.flatMap { $0 }).count == 40)
        #expect(counts.allSatisfy { !$0.isEmpty }, "\(counts.map(\.count))")
    }

    @Test("a slow consumer holds back reading: reads are handed over whole and no more than two are taken ahead", arguments: BusKind.available)
    func backPressure(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<100 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        var options = ConsumerOptions(streams: [stream], group: "g", consumer: "slow")
        options.batchSize = 10
        let (first, pending) = try await bus.withConsumer(options) { deliveries in
            var iterator = deliveries.makeAsyncIterator()
            let first = try #require(await iterator.nextBatch())
            // Give the reader every chance to run ahead, then look at what the group handed out.
            try await Task.sleep(for: .milliseconds(300))
            return (first, try await bus.pendingEntries(stream: stream, group: "g", count: 1000).count)
        }
        #expect(first.count == 10)
        #expect(first.map(\.envelope?.storyID) == (0..<10).map { "S-\($0)" })
        // The batch in hand and at most one more read waiting to be taken.
        #expect(pending >= 10 && pending <= 20, "\(pending) entries were taken from the group")
    }

    @Test("unacknowledged entries come back first when the consumer restarts", arguments: BusKind.available)
    func restart(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        let options = ConsumerOptions(streams: [stream], group: "g", consumer: "stable-name")
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<3 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        let first = try await bus.withConsumer(options) { try await collect($0, count: 3) }
        #expect(first.count == 3)
        let pending = try await bus.pendingEntries(stream: stream, group: "g", count: 10)
        #expect(pending.map(\.id) == first.map(\.id))
        #expect(pending.allSatisfy { $0.consumer == "stable-name" && $0.deliveryCount == 1 })
        let second = try await bus.withConsumer(options) { deliveries in
            try await collect(deliveries, count: 3) { try await bus.acknowledge([$0]) }
        }
        #expect(second.map(\.id) == first.map(\.id))
        #expect(second.allSatisfy { $0.deliveryCount == 2 })
        let groups = try await bus.groups(of: stream)
        #expect(groups.first?.pending == 0)
    }

    @Test("a consumer killed mid-batch loses nothing: another consumer reclaims its entries", arguments: BusKind.available)
    func killedMidBatch(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<5 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        var dying = ConsumerOptions(streams: [stream], group: "g", consumer: "dies")
        dying.batchSize = 10
        let taken = try await bus.withConsumer(dying) { try await collect($0, count: 5) }
        #expect(taken.count == 5)
        var survivor = ConsumerOptions(streams: [stream], group: "g", consumer: "survivor")
        survivor.reclaimAfter = .milliseconds(300)
        survivor.reclaimInterval = .milliseconds(100)
        let reclaimed = try await bus.withConsumer(survivor) { deliveries in
            try await collect(deliveries, count: 5) { try await bus.acknowledge([$0]) }
        }
        #expect(Set(reclaimed.map(\.id)) == Set(taken.map(\.id)))
        #expect(reclaimed.allSatisfy { $0.consumer == "survivor" && $0.deliveryCount == 2 })
        #expect(try await bus.groups(of: stream).first?.pending == 0)
    }

    @Test(
        "a project's new owner takes the old consumer's pending entries at once (read first, not delivered again); a loser's leftovers go to the next reclaim",
        arguments: BusKind.available)
    func takeOver(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<3 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        let old = ConsumerOptions(streams: [stream], group: "g", consumer: "old")
        let held = try await bus.withConsumer(old) { try await collect($0, count: 3) }
        // A third consumer's entry is taken too (`from` nil: every other consumer's).
        _ = try await bus.publish(envelope(project: project, story: "S-3"), to: stream)
        let otherHeld = try await bus.withConsumer(ConsumerOptions(streams: [stream], group: "g", consumer: "other")) { try await collect($0, count: 1) }
        #expect(try await bus.transferPending(stream: stream, group: "g", from: nil, to: "new") == 4)
        #expect(try await bus.transferPending(stream: stream, group: "g", from: nil, to: "new") == 0, "nothing left to take")
        let pending = try await bus.pendingEntries(stream: stream, group: "g", count: 10)
        #expect(pending.allSatisfy { $0.consumer == "new" && $0.deliveryCount == 1 }, "\(pending)")
        #expect(Set(pending.map(\.id)) == Set((held + otherHeld).map(\.id)))
        // The new owner reads them first (its own pending entries).
        let read = try await bus.withConsumer(ConsumerOptions(streams: [stream], group: "g", consumer: "new")) { deliveries in
            try await collect(deliveries, count: 4) { try await bus.acknowledge([$0]) }
        }
        #expect(read.map(\.id) == pending.map(\.id))
        #expect(try await bus.groups(of: stream).first?.pending == 0)

        // Leftovers: marked idle, they are reclaimed by the next round, however recently read.
        _ = try await bus.publish(envelope(project: project, story: "S-late"), to: stream)
        let late = try await bus.withConsumer(old) { try await collect($0, count: 1) }
        #expect(try await bus.releasePending(stream: stream, group: "g", consumer: "old", idle: .seconds(30)) == 1)
        var owner = ConsumerOptions(streams: [stream], group: "g", consumer: "new")
        owner.reclaimAfter = .seconds(30)
        owner.reclaimInterval = .milliseconds(100)
        let reclaimed = try await bus.withConsumer(owner) { deliveries in
            try await collect(deliveries, count: 1, within: .seconds(3)) { try await bus.acknowledge([$0]) }
        }
        #expect(reclaimed.map(\.id) == late.map(\.id))
        #expect(reclaimed.first?.consumer == "new")
    }

    @Test("a poison entry reaches the DLQ after exactly max_deliveries, with provenance", arguments: BusKind.available)
    func poison(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        let id = try await bus.publish(envelope(project: project, story: "POISON"), to: stream)
        var options = ConsumerOptions(streams: [stream], group: "g", consumer: "c")
        options.maxDeliveries = 3
        options.reclaimAfter = .milliseconds(150)
        options.reclaimInterval = .milliseconds(50)
        let dlq = deadLetterStream(for: stream)
        // The handler never succeeds: it never acknowledges.
        let seen = try await bus.withConsumer(options) { deliveries in
            try await collect(deliveries, count: 4, within: .seconds(3))
        }
        #expect(seen.map(\.deliveryCount) == [1, 2, 3])
        #expect(seen.allSatisfy { $0.id == id })
        let letters = try await bus.entries(of: dlq, count: 10).map { DeadLetter(decoding: $0.fields) }
        #expect(letters.count == 1)
        let letter = try #require(letters.first)
        #expect(letter.originalID == id && letter.sourceStream == stream && letter.group == "g" && letter.deliveryCount == 3)
        #expect(letter.error.hasPrefix("max_deliveries"))
        #expect(try Envelope(decoding: letter.originalFields).storyID == "POISON")
        #expect(try await bus.groups(of: stream).first?.pending == 0)
    }

    @Test("malformed entries go to the DLQ at once with their reason, and the stream keeps flowing", arguments: BusKind.available)
    func malformed(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        let bad: [[StreamField]] = [
            [StreamField("event_type", "gate.passed"), StreamField("source", "a"), StreamField("project", project)],
            [StreamField("event_type", "gate.passed"), StreamField("payload", "{oops"), StreamField("source", "a"), StreamField("project", project)],
            [
                StreamField("event_type", "gate.teleported"), StreamField("payload", "{}"), StreamField("source", "a"), StreamField("project", project),
                StreamField("x_extra", "kept"),
            ],
        ]
        for fields in bad { _ = try await bus.publish(fields: fields, to: stream) }
        _ = try await bus.publish(envelope(project: project, story: "GOOD"), to: stream)
        let received = try await bus.withConsumer(ConsumerOptions(streams: [stream], group: "g", consumer: "c")) { deliveries in
            try await collect(deliveries, count: 1) { try await bus.acknowledge([$0]) }
        }
        #expect(received.map(\.envelope?.storyID) == ["GOOD"])
        let letters = try await bus.entries(of: deadLetterStream(for: stream), count: 10).map { DeadLetter(decoding: $0.fields) }
        #expect(letters.map { String($0.error.prefix(while: { $0 != ":" })) } == ["missing_field", "invalid_json", "unknown_event_type"])
        #expect(letters[2].originalFields == bad[2])
        #expect(try await bus.groups(of: stream).first?.pending == 0)
    }

    @Test("a new group starts where it is told: $ skips history, an id replays after it", arguments: BusKind.available)
    func groupStart(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        let old = try await bus.publish(envelope(project: project, story: "OLD"), to: stream)
        let cut = try await bus.publish(envelope(project: project, story: "CUT"), to: stream)
        _ = old
        var fromNow = ConsumerOptions(streams: [stream], group: "new", consumer: "c")
        fromNow.start = .newEntries
        var fromCut = ConsumerOptions(streams: [stream], group: "after", consumer: "c")
        fromCut.start = .after(cut)
        try await bus.createGroup("new", on: stream, start: .newEntries)
        try await bus.createGroup("after", on: stream, start: .after(cut))
        _ = try await bus.publish(envelope(project: project, story: "NEW"), to: stream)
        let seenNew = try await bus.withConsumer(fromNow) { try await collect($0, count: 2, within: .seconds(3)) }
        #expect(seenNew.map(\.envelope?.storyID) == ["NEW"])
        let seenAfter = try await bus.withConsumer(fromCut) { try await collect($0, count: 2, within: .seconds(3)) }
        #expect(seenAfter.map(\.envelope?.storyID) == ["NEW"])
    }
}

/// Counts deliveries across consumers; resumes waiters when the target is reached.
actor Tally {
    let target: Int
    var count = 0
    var waiters: [CheckedContinuation<Void, Never>] = []
    init(target: Int) { self.target = target }

    /// Adds one; `true` once the target is reached.
    func add() -> Bool {
        self.count += 1
        if self.count >= self.target {
            for waiter in self.waiters { waiter.resume() }
            self.waiters = []
        }
        return self.count >= self.target
    }

    func waitUntilDone() async {
        if self.count >= self.target { return }
        await withTaskCancellationHandler {
            await withCheckedContinuation { self.waiters.append($0) }
        } onCancel: {
            Task { await self.resumeAll() }
        }
    }

    private func resumeAll() {
        for waiter in self.waiters { waiter.resume() }
        self.waiters = []
    }

}
