import Foundation
import Logging
import Testing
import WaveOperations
import WaveProtocol
import WaveRedis
import WaveStore
import WaveTesting

@Suite("Settings: defaults < file < environment < flags, and a bad file named with its key")
struct SettingsTests {
    func file(_ text: String) throws -> String {
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("wave-settings-\(UUID().uuidString.prefix(8)).json").path
        try text.write(toFile: path, atomically: true, encoding: .utf8)
        return path
    }

    @Test("each later source wins, and each value says where it came from")
    func precedence() throws {
        let path = try self.file(#"{"redis": "redis://file:1", "store": "sqlite:/tmp/file.sqlite", "projects": ["a"], "orchestrator": {"batch_size": 64}}"#)
        let defaults = try Settings.load(config: nil, redis: nil, store: nil, environment: [:])
        #expect(defaults.redis.value == nil && defaults.store.source == .default && defaults.batchSize == 128)
        let fromFile = try Settings.load(config: path, redis: nil, store: nil, environment: [:])
        #expect(fromFile.redis.value == "redis://file:1" && fromFile.redis.source == .file && fromFile.batchSize == 64 && fromFile.file == path)
        let environment = ["WAVE_CONFIG": path, "WAVE_REDIS_URL": "redis://env:2", "WAVE_PROJECTS": "b, c"]
        let fromEnvironment = try Settings.load(config: nil, redis: nil, store: nil, environment: environment)
        #expect(fromEnvironment.redis.value == "redis://env:2" && fromEnvironment.redis.source == .env)
        #expect(fromEnvironment.projects.value == ["b", "c"] && fromEnvironment.store.source == .file)
        let fromFlags = try Settings.load(config: nil, redis: "redis://flag:3", store: "sqlite:/tmp/flag.sqlite", environment: environment)
        #expect(fromFlags.redis.value == "redis://flag:3" && fromFlags.redis.source == .flag && fromFlags.store.source == .flag)
        #expect(fromFlags.batchSize == 64, "a value no later source sets stays the file's")
    }

    @Test("the store: --store, then WAVE_STORE, then the reference's DATABASE_URL, then its POSTGRES_* variables, then the file; shown masked")
    func storePrecedence() throws {
        let pg = "postgres://wave:secret@db:5432/wave?sslmode=disable"
        #expect(try Settings.load(config: nil, redis: nil, store: nil, environment: [:]).store.value == "sqlite:.wave/wave.sqlite")
        let fromURL = try Settings.load(config: nil, redis: nil, store: nil, environment: ["DATABASE_URL": pg, "POSTGRES_HOST": "other"])
        #expect(fromURL.store.value == pg && fromURL.store.source == .env)
        #expect(fromURL.maskedStore == "postgres://wave:***@db:5432/wave?sslmode=disable")
        let fromParts = try Settings.load(config: nil, redis: nil, store: nil, environment: ["POSTGRES_HOST": "pg", "POSTGRES_PASSWORD": "p w"])
        #expect(try PostgresURL(url: fromParts.store.value) == PostgresURL(host: "pg", user: "wave", password: "p w", database: "wave"))
        let waveStore = try Settings.load(config: nil, redis: nil, store: nil, environment: ["WAVE_STORE": "sqlite:a.sqlite", "DATABASE_URL": pg])
        #expect(waveStore.store.value == "sqlite:a.sqlite")
        let flag = try Settings.load(config: nil, redis: nil, store: "sqlite:b.sqlite", environment: ["WAVE_STORE": "sqlite:a.sqlite", "DATABASE_URL": pg])
        #expect(flag.store.value == "sqlite:b.sqlite" && flag.store.source == .flag)
    }

    @Test("an unknown key or a value of the wrong type is an error naming the file and the key")
    func badFiles() throws {
        let unknown = try self.file(#"{"redis": "redis://x:1", "colour": "blue"}"#)
        #expect(throws: ConfigurationError.self) { try Settings.load(config: unknown, redis: nil, store: nil, environment: [:]) }
        do {
            _ = try Settings.load(config: unknown, redis: nil, store: nil, environment: [:])
        } catch {
            #expect(error.message.contains(unknown) && error.message.contains("\"colour\""), "\(error.message)")
        }
        let wrongType = try self.file(#"{"orchestrator": {"batch_size": "many"}}"#)
        do {
            _ = try Settings.load(config: wrongType, redis: nil, store: nil, environment: [:])
            Issue.record("a string batch size is refused")
        } catch {
            #expect(error.message.contains("orchestrator.batch_size") && error.message.contains("whole number"), "\(error.message)")
        }
        #expect(throws: ConfigurationError.self) { try Settings.load(config: "/nonexistent/wave.json", redis: nil, store: nil, environment: [:]) }
    }

    @Test("leases: on by default (TTL 5 s, renewed each second), turned off or retimed by the file; a renewal not inside the TTL is refused")
    func leases() throws {
        let defaults = try Settings.load(config: nil, redis: nil, store: nil, environment: [:])
        #expect(defaults.leases && defaults.leaseTTLMilliseconds == 5_000 && defaults.leaseRenewMilliseconds == 1_000)
        let tuned = try Settings.load(
            config: try self.file(#"{"orchestrator": {"leases": false, "lease_ttl_ms": 3000, "lease_renew_ms": 500}}"#), redis: nil, store: nil,
            environment: [:])
        #expect(!tuned.leases && tuned.leaseTTLMilliseconds == 3_000 && tuned.leaseRenewMilliseconds == 500)
        let renewal = try self.file(#"{"orchestrator": {"lease_ttl_ms": 1000, "lease_renew_ms": 1000}}"#)
        do {
            _ = try Settings.load(config: renewal, redis: nil, store: nil, environment: [:])
            Issue.record("a renewal as long as the TTL is refused")
        } catch {
            #expect(error.message.contains("orchestrator.lease_renew_ms") && error.message.contains("less than orchestrator.lease_ttl_ms"), "\(error.message)")
        }
        let word = try self.file(#"{"orchestrator": {"leases": "yes"}}"#)
        do {
            _ = try Settings.load(config: word, redis: nil, store: nil, environment: [:])
            Issue.record("a string for leases is refused")
        } catch {
            #expect(error.message.contains("orchestrator.leases") && error.message.contains("true or false"), "\(error.message)")
        }
    }
}

@Suite("The story-file format: a story, an array, {stories: […]}, or a folder of them in name order")
struct StoryFileTests {
    @Test("every shape loads, in order; a bad file is named")
    func shapes() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("wave-stories-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        func story(_ id: String) -> String { #"{"id": "\#(id)", "title": "Story \#(id)", "domain": "backend"}"# }
        try story("A-1").write(to: folder.appendingPathComponent("1.json"), atomically: true, encoding: .utf8)
        try "[\(story("B-1")), \(story("B-2"))]".write(to: folder.appendingPathComponent("2.json"), atomically: true, encoding: .utf8)
        try #"{"stories": [\#(story("C-1"))]}"#.write(to: folder.appendingPathComponent("3.json"), atomically: true, encoding: .utf8)
        try "not json".write(to: folder.appendingPathComponent("notes.txt"), atomically: true, encoding: .utf8)
        #expect(try StoryFile.load(from: folder.path).map(\.id) == ["A-1", "B-1", "B-2", "C-1"])
        #expect(try StoryFile.load(from: folder.appendingPathComponent("2.json").path).map(\.id) == ["B-1", "B-2"])
        let bad = folder.appendingPathComponent("4.json")
        try "{not json".write(to: bad, atomically: true, encoding: .utf8)
        do {
            _ = try StoryFile.load(from: folder.path)
            Issue.record("a folder with a broken file is refused")
        } catch {
            #expect(error.message.contains(bad.path) && error.message.contains("not JSON"), "\(error.message)")
        }
        #expect(throws: StoryFileError.self) { try StoryFile.load(from: folder.appendingPathComponent("missing").path) }
    }
}

@Suite("Dead letters: listed, replayed to their stream with their message id, purged (Redis)", .enabled(if: TestServers.available(TestServers.plain)))
struct DeadLetterQueueTests {
    @Test("replay puts the original fields back on the source stream and removes the letter; an unknown id is refused; purge by age and in full")
    func replayAndPurge() async throws {
        let client = try TestServers.client(try TestServers.require(TestServers.plain, "WAVE_TEST_REDIS_URL"))
        let project = try ProjectName("DlqOps-\(UUID().uuidString.prefix(6))")
        let queue = DeadLetterQueue(client: client, project: project)
        let source = Channels.signals(project)
        for n in 1...3 {
            let letter = DeadLetter(
                originalFields: [StreamField("event_type", "gate.passed"), StreamField("message_id", "m-\(n)")], error: "unknown_story: S-\(n)",
                originalID: "1-\(n)", sourceStream: n == 3 ? "" : source, group: "orchestrator", deliveryCount: 1)
            _ = try await client.send(XAddCommand(queue.stream, fields: letter.fields.map { ($0.name, $0.value) }))
        }
        let (entries, size) = try await queue.list(count: 2)
        #expect(size == 3 && entries.count == 2 && entries[0].letter.error == "unknown_story: S-1")
        let replayed = try await queue.replay([entries[0].id])
        #expect(replayed.count == 1 && replayed[0].stream == source)
        let back = try await client.send(XRangeCommand(source, count: 10))
        #expect(back.count == 1 && back[0].fields.contains { $0.name == "message_id" && $0.value == "m-1" })
        #expect(!back[0].fields.contains { $0.name.hasPrefix("dlq_") }, "only the original fields go back")
        #expect(try await queue.list(count: 10).size == 2)
        await #expect(throws: DeadLetterError.self) { try await queue.replay(["0-1"]) }
        #expect(try await queue.purge(olderThan: .seconds(3_600)) == 0, "nothing is an hour old")
        #expect(try await queue.purge() == 2)
        #expect(try await queue.list(count: 10).size == 0)
        _ = try await client.send(DelCommand(keys: [source]))
        await client.shutdown()
    }

    @Test("durations as operators write them")
    func durations() {
        #expect(DurationText.parse("30s") == .seconds(30) && DurationText.parse("15m") == .seconds(900))
        #expect(DurationText.parse("12h") == .seconds(43_200) && DurationText.parse("7d") == .seconds(604_800))
        #expect(DurationText.parse("7") == nil && DurationText.parse("-1s") == nil && DurationText.parse("1w") == nil)
    }
}

@Suite("Reaching Redis: the wait at start gives up with a clear error after its limit")
struct RedisAccessTests {
    @Test("nothing listens: RedisUnreachable names the address, after the limit and not long after")
    func unreachable() async throws {
        var configuration = try RedisConfiguration(url: "redis://127.0.0.1:1")
        configuration.connectTimeout = .milliseconds(200)
        let client = try RedisClient(configuration: configuration, logger: Logger(label: "test"))
        let start = ContinuousClock.now
        do {
            try await RedisAccess.awaitRedis(client, limit: .milliseconds(300), logger: Logger(label: "test"))
            Issue.record("port 1 answered")
        } catch let error as RedisUnreachable {
            #expect(error.description.contains("127.0.0.1:1") && error.description.contains("redis-server"), "\(error)")
        }
        #expect(ContinuousClock.now - start < .seconds(5), "gave up after the limit")
        await client.shutdown()
    }
}
