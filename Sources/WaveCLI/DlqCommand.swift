import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveOperations
import WaveProtocol
import WaveRedis

/// `wave dlq list | replay ID... | purge [--older-than DURATION] --project P`.
struct DlqCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "dlq",
        abstract: "Dead letters of a project: list them, replay them to their stream, purge them.",
        discussion: "Dead letters are never trimmed; only `wave dlq purge` removes them. Needs --redis.",
        subcommands: [DlqList.self, DlqReplay.self, DlqPurge.self]
    )
}

/// What every dlq subcommand takes.
struct DlqTarget: ParsableArguments {
    @Option(help: "The project.")
    var project: String

    func projectName() throws -> ProjectName {
        do { return try ProjectName(self.project) } catch { throw CLIError.badInput(error.message) }
    }
}

/// One dead letter as `--json` prints it.
struct DeadLetterJSON: Encodable {
    var id: String
    var event_type: String
    var story_id: String
    var message_id: String
    var error: String
    var source_stream: String
    var original_id: String
    var delivery_count: Int
    var failed_at: String

    init(id: String, letter: DeadLetter) {
        func field(_ name: String) -> String { letter.originalFields.first { $0.name == name }?.value ?? "" }
        self.id = id
        self.event_type = field("event_type")
        self.story_id = field("story_id")
        self.message_id = field("message_id")
        self.error = letter.error
        self.source_stream = letter.sourceStream
        self.original_id = letter.originalID
        self.delivery_count = letter.deliveryCount
        self.failed_at = letter.failedAt.description
    }
}

struct DlqList: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "list", abstract: "The dead letters, oldest first, with why each failed.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DlqTarget

    @Option(help: "At most this many.")
    var count = 100

    func validate() throws {
        guard self.count > 0 else { throw ValidationError("--count must be positive") }
    }

    func run() async throws {
        let project = try self.target.projectName()
        let stream = Channels.deadLetters(project)
        let (letters, size) = try await withRedisClient(self.global, "wave dlq list") { client in
            try await DeadLetterQueue(client: client, project: project).list(count: self.count)
        }
        let entries = letters.map { DeadLetterJSON(id: $0.id, letter: $0.letter) }
        if self.global.json {
            struct Output: Encodable {
                var project: String
                var stream: String
                var size: Int
                var entries: [DeadLetterJSON]
            }
            print(try JSONOutput.line(Output(project: self.target.project, stream: stream, size: size, entries: entries)))
            return
        }
        if entries.isEmpty { print("no dead letters in \(stream)") }
        for entry in entries {
            print("\(entry.id)  \(entry.event_type.isEmpty ? "?" : entry.event_type)  \(entry.story_id.isEmpty ? "-" : entry.story_id)  \(entry.error)")
            print(
                "    from \(entry.source_stream.isEmpty ? "?" : entry.source_stream) \(entry.original_id), \(entry.delivery_count) deliveries, at \(entry.failed_at), message_id \(entry.message_id)"
            )
        }
        if size > entries.count { print("(\(entries.count) of \(size); --count for more)") }
    }
}

struct DlqReplay: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Put dead letters back on their stream (original fields, same message_id), then delete them from the DLQ."
    )

    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DlqTarget

    @Argument(help: "Dead-letter entry ids (from `wave dlq list`).")
    var ids: [String]

    func validate() throws {
        guard !self.ids.isEmpty else { throw ValidationError("give at least one dead-letter id") }
    }

    func run() async throws {
        let project = try self.target.projectName()
        let replayed = try await withRedisClient(self.global, "wave dlq replay") { client in
            do {
                return try await DeadLetterQueue(client: client, project: project).replay(self.ids)
            } catch DeadLetterError.notFound(let id, let stream) {
                throw CLIError.badInput("no dead letter \(id) in \(stream) (see wave dlq list --project \(self.target.project))")
            }
        }
        if self.global.json {
            struct Output: Encodable { var replayed: [DeadLetterQueue.Replayed] }
            print(try JSONOutput.line(Output(replayed: replayed)))
        } else {
            for entry in replayed { print("replayed \(entry.id) to \(entry.stream) as \(entry.new_id)") }
        }
    }
}

struct DlqPurge: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "purge", abstract: "Delete dead letters: all of them, or those older than a duration.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var target: DlqTarget

    @Option(help: "Only entries older than this: 30s, 15m, 12h, 7d.")
    var olderThan: String?

    func validate() throws {
        if let olderThan = self.olderThan, DurationText.parse(olderThan) == nil {
            throw ValidationError("--older-than takes a number and a unit (s, m, h, d), like 7d, not \"\(olderThan)\"")
        }
    }

    func run() async throws {
        let project = try self.target.projectName()
        let stream = Channels.deadLetters(project)
        let purged = try await withRedisClient(self.global, "wave dlq purge") { client in
            try await DeadLetterQueue(client: client, project: project).purge(olderThan: self.olderThan.flatMap(DurationText.parse))
        }
        if self.global.json {
            print(try JSONOutput.line(["purged": purged]))
        } else {
            print("purged \(purged) dead letter\(purged == 1 ? "" : "s") from \(stream)")
        }
    }
}

/// Runs `body` with a Redis client (for commands that need --redis: dlq, agents), shut down afterwards.
func withRedisClient<T: Sendable>(_ global: GlobalOptions, _ command: String, _ body: (RedisClient) async throws -> T) async throws -> T {
    let configuration = try global.requireRedis(for: command)
    do {
        return try await RedisAccess.withClient(configuration, logger: Logger(label: "wave.cli"), body)
    } catch {
        throw CLIError.from(error)
    }
}
