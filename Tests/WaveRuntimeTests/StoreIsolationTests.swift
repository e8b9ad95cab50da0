import Foundation
import Logging
import Synchronization
import Testing
import WaveBus
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore
import WaveTesting

@Suite("The store off the event loop: another process's lock, a store that cannot write (Redis)", .enabled(if: TestServers.available(TestServers.plain)))
struct StoreIsolationTests {
    @Test("another process holds SQLite's write lock for 2 s: PINGs and an emergency stop's halt are not delayed; the signal waits, then applies once")
    func writeLockHeldElsewhere() async throws {
        let h = try Harness.make(.redis, asDeployed: true)
        let redis = try #require(h.bus as? RedisEventBus)
        let session = try h.session([backend("K-1")])
        try await h.running {
            try await h.passGateZero("K-1")
            let holder = try LockHolder(path: h.directory.appendingPathComponent("wave.sqlite").path)
            let locked = ContinuousClock.now
            _ = try await h.bus.publish(
                Envelope(
                    eventType: .gatePassed, payload: ["gate_id": "gate-1", "result": "pass"], source: "BE-1", project: h.project.key,
                    messageID: "lock-gate-1", storyID: "K-1"), to: Channels.signals(h.project))
            // While the lock is held: the orchestrator's client answers at once, every time.
            var slowest = Duration.zero
            for _ in 0..<5 {
                let start = ContinuousClock.now
                _ = try await redis.client.send(PingCommand())
                slowest = max(slowest, ContinuousClock.now - start)
                // sleep: test-scaffolding (PINGs spread over the lock)
                try await Task.sleep(for: .milliseconds(100))
            }
            #expect(slowest < .milliseconds(250), "a PING waited \(slowest) while SQLite's lock was held elsewhere")
            #expect(try h.story("K-1").state.currentGate.number == 1, "the signal waits for the lock")
            // An emergency stop halts dispatch while the signal still waits for the lock.
            let stop = Envelope(
                eventType: .systemEmergencyStop, payload: ["reason": "lock drill"], source: "ops", project: h.project.key, messageID: "lock-stop")
            _ = try await h.bus.publish(stop, to: Channels.system(h.project))
            try await eventually("the orchestrator halted", deadline: .seconds(1)) { h.orchestrator.tasks.isHalted(project: h.project.key) }
            let halted = ContinuousClock.now - locked
            #expect(halted < .seconds(2), "halted \(halted) after the lock was taken: before it was released")
            #expect(try h.story("K-1").state.currentGate.number == 1, "halted while the signal still waited")
            // sleep: test-scaffolding (the lock is held for 2 s in all)
            try await Task.sleep(until: locked + .seconds(2))
            try holder.release()
            let results = try await h.settledResults("lock-gate-1")
            #expect(results.count == 1 && results[0].error == nil, "applied once the lock is free: \(results)")
            #expect(try h.story("K-1").state.currentGate.number == 2)
            #expect(try h.gateCheckpoints("K-1", session: session).filter { $0.gate == "gate-1" }.count == 1)
            #expect(try await h.tasks("be").map(\.gate.number) == [1], "nothing dispatched under the stop")
        }
    }

    @Test(
        "a store that cannot write (its busy timeout passes): the read stays unacknowledged, one line is logged, and the signal applies once the store can write"
    )
    func storeCannotWrite() async throws {
        let lines = LogLines()
        var logger = Logger(label: "store-full") { _ in lines }
        logger.logLevel = .warning
        let h = try Harness.make(
            .redis, asDeployed: true, logger: logger,
            configure: {
                $0.reclaimAfter = .milliseconds(300)
                $0.maxDeliveries = 1_000
            })
        let session = try h.session([backend("F-1")])
        try await h.running {
            try await h.passGateZero("F-1")
            // Another process holds the write lock past the store's busy timeout (5 s).
            let holder = try LockHolder(path: h.directory.appendingPathComponent("wave.sqlite").path)
            let failed = try await h.signal(
                .gatePassed, story: "F-1", from: "BE-1", payload: ["gate_id": "gate-1", "result": "pass"], messageID: "full-gate-1")
            #expect(failed.first?.error != nil, "the write failed: \(failed)")
            #expect(try h.story("F-1").state.currentGate.number == 1)
            let pending = try await h.bus.pendingEntries(stream: Channels.signals(h.project), group: Channels.orchestratorGroup, count: 10)
            #expect(pending.count == 1, "the read stays unacknowledged: \(pending)")
            let warnings = lines.matching("left pending")
            #expect(warnings.count >= 1 && warnings.allSatisfy { $0.contains("locked") }, "one line naming the error per failed read: \(warnings)")
            #expect(warnings.count == h.orchestrator.dispatcher.snapshot.failures, "one line per failed read, not more")
            try holder.release()
            let applied = try await within(.seconds(10), "applied again") {
                while true {
                    let results = try await h.settledResults("full-gate-1", count: h.orchestrator.dispatcher.snapshot.failures + 1)
                    if results.last?.error == nil { return results }
                }
            }
            #expect(applied.last?.outcomes.first.map { "\($0.outcome)" }?.contains("applied") == true, "\(applied)")
            #expect(try h.story("F-1").state.currentGate.number == 2, "the orchestrator kept running and applied it")
            #expect(try h.gateCheckpoints("F-1", session: session).filter { $0.gate == "gate-1" }.count == 1)
            try await h.gate(2, story: "F-1", from: "BE-1")
            #expect(try h.story("F-1").state.currentGate.number == 3)
        }
    }
}

/// Another process (the `sqlite3` shell) holding SQLite's write lock in a transaction.
final class LockHolder: Sendable {
    let process: Process
    let input: Pipe

    init(path: String) throws {
        let process = Process()
        let input = Pipe()
        let output = Pipe()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["sqlite3", path]
        process.standardInput = input
        process.standardOutput = output
        try process.run()
        input.fileHandleForWriting.write(Data("BEGIN IMMEDIATE;\nSELECT 'locked';\n".utf8))
        // The shell answers once it holds the lock (a blocking read of its first line).
        let answer = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
        guard answer.contains("locked") else { throw HarnessError(description: "sqlite3 did not take the lock: \(answer)") }
        self.process = process
        self.input = input
    }

    func release() throws {
        self.input.fileHandleForWriting.write(Data("COMMIT;\n.quit\n".utf8))
        try self.input.fileHandleForWriting.close()
        self.process.waitUntilExit()
    }
}

/// Log lines kept for a test to read.
final class LogLines: LogHandler, Sendable {
    let lines = Mutex<[String]>([])
    var metadata: Logger.Metadata {
        get { [:] }
        set {}
    }
    var logLevel: Logger.Level {
        get { .warning }
        set {}
    }
    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { nil }
        set {}
    }

    func log(event: LogEvent) {
        let text = "\(event.message) \((event.metadata ?? [:]).map { "\($0)=\($1)" }.sorted().joined(separator: " "))"
        self.lines.withLock { $0.append(text) }
    }

    func matching(_ text: String) -> [String] { self.lines.withLock { $0.filter { $0.contains(text) } } }
}
