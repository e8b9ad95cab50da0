import Foundation
import Testing
import WaveTesting

@Suite("wave config show: defaults < file < environment < flags, secrets masked")
struct ConfigCLITests {
    static func file(_ text: String) async throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wave-config-\(UUID().uuidString.prefix(8)).json").path
        try Data(text.utf8).write(to: URL(fileURLWithPath: path))
        return path
    }

    @Test("each value comes from the strongest source that sets it, and the password never shows")
    func precedence() async throws {
        let path = try await Self.file(
            #"{"redis": "redis://alice:s3cret@127.0.0.1:6399", "store": "sqlite:/tmp/from-file.sqlite", "projects": ["shop"], "consumer": "from-file", "orchestrator": {"batch_size": 64}, "engine": {"max_retries": 2}}"#
        )
        let run = try await WaveBinary.run(
            ["config", "show", "--json", "--config", path, "--store", "sqlite:/tmp/from-flag.sqlite"], environment: ["WAVE_CONSUMER": "from-env"])
        #expect(run.status == 0, "\(run.stderr)")
        #expect(!run.stdout.contains("s3cret"))
        let config = try await json(run.stdout)
        #expect(config["redis"] as? String == "redis://alice:***@127.0.0.1:6399" && config["redis_source"] as? String == "file")
        #expect(config["store"] as? String == "sqlite:/tmp/from-flag.sqlite" && config["store_source"] as? String == "flag")
        #expect(config["consumer"] as? String == "from-env" && config["consumer_source"] as? String == "env")
        #expect(config["projects"] as? [String] == ["shop"])
        #expect(config["batch_size"] as? Int == 64)
        #expect(config["max_retries"] as? [Int] == Array(repeating: 2, count: 8))
        #expect(config["max_deliveries"] as? Int == 5, "a default")
    }

    @Test(
        "a bad configuration file is an error naming the key, for every command",
        arguments: [
            (#"{"orchestra": {}}"#, "unknown key \"orchestra\""),
            (#"{"redis": 5}"#, "\"redis\" must be"),
            (#"{"engine": {"parallel_limit": 0}}"#, "\"engine.parallel_limit\" must be"),
            ("not json", "is not a JSON object"),
        ])
    func badFile(text: String, message: String) async throws {
        let path = try await Self.file(text)
        for command in [["config", "show"], ["session", "list"]] {
            let run = try await WaveBinary.run(command + ["--config", path])
            #expect(run.status == 2, "\(command): \(run.stderr)")
            #expect(run.stderr.contains(message), "\(command): \(run.stderr)")
        }
    }
}
