import Foundation
import Testing
import WaveProtocol
import WaveRedis

@testable import WaveBus

@Suite("Event bus contract: trimming, keys, channels, health (in-memory and Redis)")
struct BusCapabilityContractTests {
    @Test("trimming removes only what every group acknowledged, keeping a tail", arguments: BusKind.available)
    func trimAcknowledged(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("fast", on: stream, start: .newEntries)
        try await bus.createGroup("slow", on: stream, start: .newEntries)
        var ids: [String] = []
        for i in 0..<50 { ids.append(try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream)) }
        var fast = ConsumerOptions(streams: [stream], group: "fast", consumer: "c")
        fast.batchSize = 30
        _ = try await bus.withConsumer(fast) { deliveries in
            try await collect(deliveries, count: 50) { try await bus.acknowledge([$0]) }
        }
        // The slow group read 10 and acknowledged all but its 9th and 10th entries.
        var slow = ConsumerOptions(streams: [stream], group: "slow", consumer: "c")
        slow.batchSize = 10
        let slowRead = try await bus.withConsumer(slow) { deliveries in try await collect(deliveries, count: 10) }
        #expect(slowRead.count == 10)
        try await bus.acknowledge(Array(slowRead.prefix(8)))
        // Entries 0–7 are acknowledged by both groups; keep 5 of them: 3 go.
        #expect(try await bus.trimAcknowledged(stream: stream, keep: 5) == 3)
        #expect(try await bus.length(of: stream) == 47)
        #expect(try await bus.entries(of: stream, count: 100).first?.id == ids[3])
        // Nothing a group still needs can go, whatever the tail.
        _ = try await bus.trimAcknowledged(stream: stream, keep: 1)
        #expect(try await bus.entries(of: stream, count: 100).first?.id == ids[7])
        // A stream without groups is left alone.
        let loose = "wave:signals:\(uniqueProject())"
        _ = try await bus.publish(envelope(project: project), to: loose)
        #expect(try await bus.trimAcknowledged(stream: loose, keep: 1) == 0)
    }

    @Test("keys: set without expiry, read, delete; an absent key reads nil", arguments: BusKind.available)
    func keys(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let key = "wave:emergency:\(uniqueProject())"
        #expect(try await bus.value(of: key) == nil)
        try await bus.setValue(#"{"reason": "test"}"#, for: key)
        #expect(try await bus.value(of: key) == #"{"reason": "test"}"#)
        try await bus.deleteValues([key])
        #expect(try await bus.value(of: key) == nil)
        try await bus.deleteValues([])
    }

    @Test("channels: subscribed first, then every message in order; a broadcast counts its receivers", arguments: BusKind.available)
    func channels(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let channel = "wave:test:\(uniqueProject())"
        #expect(try await bus.broadcast("nobody", on: channel) == 0)
        let received = try await bus.withSubscription(channels: [channel]) { events in
            var seen: [BusChannelEvent] = []
            for await event in events {
                seen.append(event)
                if case .subscribed = event {
                    for text in ["one", "two"] { #expect((try? await bus.broadcast(text, on: channel)) == 1) }
                }
                if seen.count == 3 { break }
            }
            return seen
        }
        #expect(received == [.subscribed, .message(channel: channel, payload: "one"), .message(channel: channel, payload: "two")])
        #expect(bus.isReachable)
        #expect(bus.health.kind == (kind == .memory ? "embedded" : "redis"))
        #expect(bus.health.circuit == "closed")
    }

    @Test("unacknowledged entries reduced to some fields: the same entries, in order, nil where a field is absent", arguments: BusKind.available)
    func projectedUnacknowledged(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = uniqueProject()
        let stream = Channels.signals(try ProjectName(project))
        try await bus.createGroup("g", on: stream, start: .newEntries)
        for i in 0..<6 { _ = try await bus.publish(envelope(project: project, story: "S-\(i)"), to: stream) }
        // Two read and acknowledged (one of them between the pending ones), two read and
        // pending, two not read.
        var options = ConsumerOptions(streams: [stream], group: "g", consumer: "c")
        options.batchSize = 4
        let read = try await bus.withConsumer(options) { deliveries in try await collect(deliveries, count: 4) }
        try await bus.acknowledge([read[0], read[2]])
        let names = ["story_id", "event_type", "correlation_id", "payload"]
        let rows = try await bus.unacknowledged(stream: stream, group: "g", count: 100, fields: names)
        let full = try await bus.unacknowledged(stream: stream, group: "g", count: 100)
        #expect(rows.map { $0[0] } == ["S-1", "S-3", "S-4", "S-5"])
        #expect(full.map { entry in entry.fields.first { $0.name == "story_id" }?.value } == ["S-1", "S-3", "S-4", "S-5"])
        #expect(full.map(\.id) == [read[1].id, read[3].id] + full.suffix(2).map(\.id))
        #expect(rows.allSatisfy { $0[1] == "gate.passed" && $0[2] == nil })
        #expect(rows.map { $0[3] } == full.map { entry in entry.fields.first { $0.name == "payload" }?.value })
        #expect(try await bus.unacknowledged(stream: stream, group: "g", count: 3, fields: names).count == 3)
        #expect(try await bus.unacknowledged(stream: "wave:signals:\(uniqueProject())", group: "g", count: 10, fields: names).isEmpty)
    }
}
