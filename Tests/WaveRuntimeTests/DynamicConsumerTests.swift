import Foundation
import Synchronization
import Testing
import WaveBus
import WaveProtocol
import WaveTesting

@testable import WaveRuntime

/// Counts what a handler saw.
struct CountingHandler: EventHandler {
    let box: SeenBox
    var name: String { "counting" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        self.box.seen.withLock { $0.append(signal.envelope.messageID) }
        return .applied("counted")
    }
}

final class SeenBox: Sendable {
    let seen = Mutex<[String]>([])
    var count: Int { self.seen.withLock { $0.count } }
}

@Suite("Consumers started and stopped while the dispatcher runs (a project taken over, then lost)")
struct DynamicConsumerTests {
    @Test(
        "a started consumer handles its stream; stopped, it leaves new entries unread and nothing pending; started again, it goes on",
        arguments: BusKind.available)
    func startStopStart(kind: BusKind) async throws {
        let bus = try kind.makeBus()
        let project = try ProjectName("dyn-\(UUID().uuidString.prefix(6))")
        let stream = Channels.signals(project)
        try await bus.createGroup(Channels.orchestratorGroup, on: stream, start: .newEntries)
        let box = SeenBox()
        var registry = HandlerRegistry()
        registry.register(CountingHandler(box: box), for: .gatePassed)
        let acknowledged = Mutex(0)
        let dispatcher = EventDispatcher(
            bus: bus, registry: registry, consumers: [], logger: TestServers.logger,
            hooks: EventDispatcher.Hooks(acknowledged: { entries in acknowledged.withLock { $0 += entries.count } }))
        var options = ConsumerOptions(streams: [stream], group: Channels.orchestratorGroup, consumer: "taker")
        options.blockTime = .milliseconds(100)
        func publish(_ n: Int) async throws {
            for _ in 0..<n {
                _ = try await bus.publish(
                    Envelope(eventType: .gatePassed, payload: ["gate_id": "gate-1"], source: "BE-1", project: project.key, storyID: "S-1"), to: stream)
            }
        }
        let consumer = dispatcher.start(options)
        try await publish(5)
        try await eventually("five handled and acknowledged") { acknowledged.withLock { $0 } == 5 }
        await consumer.stop()
        try await publish(3)
        // Stopped: the new entries wait unread, none is pending with the stopped consumer.
        try await Task.sleep(for: .milliseconds(300))  // sleep: test-scaffolding (a stopped consumer must not read them)
        #expect(box.count == 5)
        let group = try #require(try await bus.groups(of: stream).first { $0.group == Channels.orchestratorGroup })
        #expect(group.pending == 0)
        #expect(group.lag == 3)
        let again = dispatcher.start(options)
        try await eventually("the three handled after the restart") { acknowledged.withLock { $0 } == 8 }
        await again.stop()
        #expect(Set(box.seen.withLock { $0 }).count == 8, "each entry handled once")
    }
}
