import Foundation
import Testing
import WaveTesting

/// A working directory with the reference's story JSON files (test scaffolding).
func cliFolder(_ name: String = #function) async throws -> URL {
    let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-cli-\(name.prefix(while: { $0 != "(" }))-\(UUID().uuidString.prefix(8))")
    try FileManager.default.createDirectory(at: folder.appendingPathComponent("stories"), withIntermediateDirectories: true)
    let one =
        #"{"id": "WAVE-1", "title": "Login form", "domain": "frontend", "priority": "P1", "wave": 1, "objective": {"as_a": "user", "i_want": "to log in", "so_that": "I shop"}, "acceptance_criteria": [{"id": "AC-1", "description": "ok"}, {"id": "AC-2", "description": "bad password"}], "files": {"create": [], "modify": [], "forbidden": []}, "safety": {"stop_conditions": [], "escalation_triggers": []}, "estimated_tokens": 5000, "dependencies": [], "agent_assignment": "FE-1"}"#
    let two = #"{"id": "WAVE-2", "title": "Session API", "domain": "backend", "dependencies": ["WAVE-1"], "agent_assignment": "BE-1"}"#
    try Data(one.utf8).write(to: folder.appendingPathComponent("stories/01.json"))
    try Data(two.utf8).write(to: folder.appendingPathComponent("stories/02.json"))
    try Data(#"[{"id": "A", "title": "a", "dependencies": ["B"]}, {"id": "B", "title": "b", "dependencies": ["A"]}]"#.utf8).write(
        to: folder.appendingPathComponent("cycle.json"))
    try Data(#"[{"id": "A", "title": "a", "dependencies": ["Z"]}]"#.utf8).write(to: folder.appendingPathComponent("unknown.json"))
    return folder
}

func json(_ text: String) async throws -> [String: Any] {
    let lines = text.split(whereSeparator: \.isNewline)
    #expect(lines.count == 1, "--json prints exactly one line: \(text)")
    return try #require(try JSONSerialization.jsonObject(with: Data(text.utf8)) as? [String: Any])
}

@Suite("wave session, story, approve, escalations and store (CLI)")
struct StoreCLITests {
    @Test("session create/list/show and story show print the SYSTEM.md --json keys; stdout carries only the JSON")
    func jsonShapes() async throws {
        let folder = try await cliFolder()
        let created = try await WaveBinary.run(
            ["session", "create", "--project", "shop", "--wave", "1", "--stories", "stories", "--budget", "0", "--json"], in: folder)
        #expect(created.status == 0, "\(created.stderr)")
        let session = try await json(created.stdout)
        let sessionKeys = ["id", "project", "wave", "status", "paused", "story_count", "stories_completed", "stories_failed", "budget_usd", "actual_cost_usd"]
        for key in sessionKeys { #expect(session[key] != nil, "session create: \(key)") }
        #expect(session["budget_usd"] as? Double == 0)
        #expect(session["story_count"] as? Int == 2)
        #expect(created.stderr.contains("warning: no running orchestrator was notified (no --redis)"))
        let id = try #require(session["id"] as? String)
        let list = try await json(try await WaveBinary.run(["session", "list", "--json"], in: folder).stdout)
        let sessions = try #require(list["sessions"] as? [[String: Any]])
        #expect(sessions.count == 1 && sessions[0]["id"] as? String == id)
        let shown = try await json(try await WaveBinary.run(["session", "show", id.replacingOccurrences(of: "-", with: ""), "--json"], in: folder).stdout)
        for key in sessionKeys { #expect(shown[key] != nil, "session show: \(key)") }
        let story = try await json(try await WaveBinary.run(["story", "show", "WAVE-1", "--json"], in: folder).stdout)
        for key in [
            "story_id", "session_id", "status", "current_gate", "retry_count", "acceptance_criteria_passed", "acceptance_criteria_total", "blocked_reason",
        ] {
            #expect(story.keys.contains(key), "story show: \(key)")
        }
        #expect(story["acceptance_criteria_total"] as? Int == 2)
        #expect(try await WaveBinary.run(["store", "migrate", "--dry-run"], in: folder).stdout.contains("up to date"))
    }

    @Test(
        "bad input exits 2 with one line naming the problem",
        arguments: [
            (["session", "create", "--project", "shop", "--wave", "1", "--stories", "cycle.json"], "dependency cycle: A → B → A"),
            (["session", "create", "--project", "shop", "--wave", "1", "--stories", "unknown.json"], "story A depends on Z, which is not in the session"),
            (["session", "create", "--project", "shop", "--wave", "1", "--stories", "missing.json"], "no file or folder at missing.json"),
            (["session", "create", "--project", "Bad Name!", "--wave", "1", "--stories", "stories"], "is not allowed"),
            (["story", "show", "NOPE"], "no story NOPE"),
            (["approve", "NOPE", "--gate", "gate-9"], "gate-9"),
            (["story", "recover", "NOPE", "--strategy", "sideways"], "--strategy must be one of"),
            (["session", "show", "0123"], "no session 0123"),
            (["session", "list", "--store", "postgres://db/wave"], "PostgreSQL StateStore, which is not built yet"),
        ])
    func badInput(arguments: [String], message: String) async throws {
        let folder = try await cliFolder()
        let result = try await WaveBinary.run(arguments, in: folder)
        #expect(result.status == 2, "\(arguments): \(result.stderr)")
        #expect(result.stdout.isEmpty)
        let lines = result.stderr.split(whereSeparator: \.isNewline).filter { !$0.contains(" info ") }
        #expect(lines.count == 1, "\(result.stderr)")
        #expect(lines.first?.contains(message) == true, "\(result.stderr)")
    }

    @Test("an operator's approval, an unblock and a recovery through the CLI change the store")
    func operations() async throws {
        let folder = try await cliFolder()
        let created = try await json(
            try await WaveBinary.run(["session", "create", "--project", "shop", "--wave", "1", "--stories", "stories", "--json"], in: folder).stdout)
        let id = try #require(created["id"] as? String)
        // A pending story in a pending session takes no approval.
        let early = try await WaveBinary.run(["approve", "WAVE-1", "--gate", "gate-0"], in: folder)
        #expect(early.status == 2 && early.stderr.contains("story_not_started"), "\(early.stderr)")
        #expect(try await WaveBinary.run(["session", "pause", id, "--json"], in: folder).stdout.contains("\"paused\":true"))
        #expect(try await WaveBinary.run(["session", "resume", id, "--json"], in: folder).stdout.contains("\"paused\":false"))
        let cancelled = try await json(try await WaveBinary.run(["session", "cancel", id, "--reason", "descoped", "--json"], in: folder).stdout)
        #expect(cancelled["status"] as? String == "cancelled")
        let story = try await json(try await WaveBinary.run(["story", "show", "WAVE-2", "--json"], in: folder).stdout)
        #expect(story["status"] as? String == "cancelled")
        let recover = try await WaveBinary.run(["story", "recover", "WAVE-2", "--strategy", "restart"], in: folder)
        #expect(recover.status == 2 && recover.stderr.contains("cannot be recovered"), "\(recover.stderr)")
        #expect(try await WaveBinary.run(["escalations", "list", "--json"], in: folder).stdout == "{\"escalations\":[]}\n")
    }
}
