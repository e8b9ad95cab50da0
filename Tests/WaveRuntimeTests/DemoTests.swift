import Foundation
import Testing
import WaveEngine
import WaveStore
import WaveTesting

@Suite("wave demo")
struct DemoTests {
    @Test("the demo runs to completion (small, seeded) and its summary agrees with the store")
    func demoAgreesWithStore() async throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-demo-test-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        let path = folder.appendingPathComponent("demo.sqlite").path
        let run = try await WaveBinary.run(["demo", "--count", "4", "--seed", "7", "--work-ms", "20", "--json", "--store", "sqlite:\(path)"])
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        let summary = try await json(run.stdout)
        for key in [
            "session_id", "status", "stories", "complete", "failed", "gates_passed", "retries", "escalations", "wall_seconds", "signals", "latency_p50_ms",
            "latency_p99_ms",
        ] {
            #expect(summary[key] != nil, "summary: \(key)")
        }
        let store = try SQLiteStore(location: StoreLocation(path: path), logger: TestServers.logger)
        let sessionID = try #require(summary["session_id"] as? String)
        let session = try store.session(id: sessionID)
        let stories = try store.stories(session: sessionID)
        #expect(session.status == .completed && summary["status"] as? String == "completed")
        #expect(summary["complete"] as? Int == stories.filter { $0.state.status == .complete }.count)
        #expect(summary["complete"] as? Int == 4)
        #expect(summary["retries"] as? Int == stories.reduce(0) { $0 + $1.state.totalRetries })
        #expect(summary["escalations"] as? Int == (try store.escalations(all: true).filter { $0.sessionID == session.id }.count))
        // The scripted turns happened: S-2's agent error was retried, S-1 looped back from QA, S-3 was blocked.
        #expect(try store.story("S-2", session: sessionID).state.totalRetries == 1)
        let names = try store.checkpoints(session: sessionID, story: "S-1").filter { $0.type == "gate" }.map(\.name)
        let failedAt = try #require(names.firstIndex(of: "gate-4: failed"), "QA failed S-1 once")
        #expect(names[failedAt + 1].hasPrefix("gate-1: passed"), "and it went back to development")
        #expect(try store.escalations(all: true).contains { $0.storyID == "S-3" && $0.kind == "blocked" })
        #expect(try store.stopHistory().contains { $0.clearedAt != nil }, "an emergency stop was set and cleared")
        #expect((summary["signals"] as? Int ?? 0) > 0)
    }

    @Test("the demo runs over Redis too", .enabled(if: TestServers.available(TestServers.plain)))
    func demoOverRedis() async throws {
        let url = try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL")
        let run = try await WaveBinary.run(["demo", "--count", "2", "--work-ms", "10", "--json", "--redis", url])
        #expect(run.status == 0, "\(run.stderr.suffix(2_000))")
        await #expect(try json(run.stdout)["complete"] as? Int == 2)
    }

    @Test("bad demo arguments exit 2 with one line")
    func badArguments() async throws {
        let run = try await WaveBinary.run(["demo", "--count", "0"])
        #expect(run.status == 2)
        #expect(run.stderr.split(whereSeparator: \.isNewline).count == 1)
    }
}
