import Foundation
import GRDB
import Testing
import WaveProtocol
import WaveRedis
import WaveTesting

/// AC-06: what the Python reference left behind keeps going under Wave, through `wave run`.
@Suite("AC-06: the reference's sessions and signals continue under wave run", .enabled(if: TestServers.serverBinary != nil || TestServers.isCI))
struct BackwardCompatibilityTests {
    /// A signal exactly as the reference's agents write it: no `seq`, no `schema_version`, a naive
    /// timestamp, a random per-process `session_id`, `gate.passed` even for a failure.
    static func referenceSignal(story: String, source: String, gate: Int, result: String, extra: String = "") -> XAddCommand {
        XAddCommand(
            "wave:signals:shop",
            fields: [
                ("event_type", "gate.passed"),
                ("payload", #"{"gate_id": "gate-\#(gate)", "result": "\#(result)"\#(extra)}"#),
                ("source", source), ("project", "shop"), ("priority", "normal"),
                ("message_id", UUID().uuidString.lowercased()), ("timestamp", "2026-01-27T17:07:26.123456"),
                ("session_id", UUID().uuidString.lowercased()), ("story_id", story),
            ])
    }

    /// `wave story show ID --json`, or nothing while the store is busy (the orchestrator migrating it).
    static func story(_ id: String, _ store: String, _ folder: URL) async throws -> [String: Any] {
        let output = try await WaveBinary.run(["story", "show", id, "--store", store, "--json"], in: folder)
        return (try? JSONSerialization.jsonObject(with: Data(output.stdout.utf8)) as? [String: Any]) ?? [:]
    }

    @Test("wave run --store sqlite:THEIR_DB adopts the reference's database and drives its stories with signals in the reference's format")
    func continueUnderWave() async throws {
        let server = try RedisServerProcess()
        try await server.start()
        defer { server.stop() }
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-ac06-\(UUID().uuidString.prefix(8))")
        let path = folder.appendingPathComponent("reference.db").path
        try makeReferenceDatabase(at: path)
        let store = "sqlite:\(path)"
        let orchestrator = try WaveBinary.start(["run", "--project", "shop", "--redis", server.url, "--store", store, "--consumer", "ac06"], in: folder)
        let client = try TestServers.client(server.url)
        // The orchestrator adopted the database and resumed: S-1 at gate-3 (the gate after its
        // newest passed checkpoint), S-2 started.
        do {
            try await eventually("S-2 started") { try await Self.story("S-2", store, folder)["status"] as? String == "in_progress" }
        } catch {
            orchestrator.terminate()
            Issue.record("the orchestrator said: \(await orchestrator.wait(limit: .seconds(10)).stderr.suffix(2_000))")
            throw error
        }
        #expect(try await Self.story("S-1", store, folder)["current_gate"] as? String == "gate-3")

        _ = try await client.send(
            Self.referenceSignal(story: "S-1", source: "BE-1", gate: 3, result: "pass", extra: #", "tests_passing": true, "coverage": 88"#))
        try await eventually("S-1 passed gate-3") { try await Self.story("S-1", store, folder)["current_gate"] as? String == "gate-4" }
        // The reference's QA reports a failure as gate.passed with result fail: a failure, back to develop.
        _ = try await client.send(Self.referenceSignal(story: "S-1", source: "QA-1", gate: 4, result: "fail"))
        try await eventually("QA's failure sent S-1 back to gate-1") { try await Self.story("S-1", store, folder)["current_gate"] as? String == "gate-1" }
        for (gate, source) in [(1, "BE-1"), (2, "BE-1"), (3, "BE-1"), (4, "QA-1"), (5, "PM-1"), (6, "CTO-1"), (7, "CTO-1")] {
            let extra = gate == 2 ? #", "build_success": true"# : gate == 3 ? #", "tests_passing": true, "coverage": 90"# : ""
            _ = try await client.send(Self.referenceSignal(story: "S-1", source: source, gate: gate, result: "pass", extra: extra))
        }
        try await eventually("S-1 completes") { try await Self.story("S-1", store, folder)["status"] as? String == "complete" }
        orchestrator.terminate()
        let exit = await orchestrator.wait(limit: .seconds(30))
        #expect(exit.status == 0, "\(exit.stderr.suffix(2_000))")
        await client.shutdown()

        // Wave wrote only what the reference's constraints allow, in its own columns' meanings.
        let queue = try DatabaseQueue(path: path)
        try await queue.read { db in
            #expect(
                try String.fetchAll(db, sql: "SELECT DISTINCT status FROM wave_sessions").allSatisfy {
                    ["pending", "in_progress", "completed", "failed", "cancelled"].contains($0)
                })
            #expect(
                try String.fetchAll(db, sql: "SELECT DISTINCT checkpoint_type FROM wave_checkpoints")
                    .allSatisfy { ["gate", "story_start", "story_complete", "agent_handoff", "error", "manual"].contains($0) })
            #expect(
                try String.fetchAll(db, sql: "SELECT id FROM wave_story_executions").allSatisfy { $0.count == 32 && !$0.contains("-") },
                "UUIDs as 32 hex digits")
            let gates = try String.fetchAll(
                db, sql: "SELECT checkpoint_name FROM wave_checkpoints WHERE story_id = 'S-1' AND checkpoint_type = 'gate' ORDER BY seq")
            #expect(gates.filter { $0.hasPrefix("gate-4") } == ["gate-4: failed", "gate-4: passed"], "\(gates)")
            let metadata = try String.fetchOne(db, sql: "SELECT metadata FROM wave_story_executions WHERE story_id = 'S-1'") ?? ""
            #expect(
                metadata.contains(#""current_gate":"gate-7""#) || metadata.contains(#""current_gate": "gate-7""#),
                "metadata.current_gate kept up to date: \(metadata)")
        }
    }
}
