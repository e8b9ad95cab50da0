import ArgumentParser
import Foundation
import Logging
import WaveBus
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

    func stream() throws -> (ProjectName, String) {
        do {
            let name = try ProjectName(self.project)
            return (name, Channels.deadLetters(name))
        } catch {
            throw CLIError.badInput(error.message)
        }
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
        let (_, stream) = try self.target.stream()
        let (letters, size) = try await withRedisClient(self.global, "wave dlq list") { client in
            (try await client.send(XRangeCommand(stream, count: self.count)), try await client.send(XLenCommand(stream)))
        }
        let entries = letters.map { DeadLetterJSON(id: $0.id, letter: DeadLetter(decoding: $0.fields.map { StreamField($0.name, $0.value) })) }
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
        let (project, stream) = try self.target.stream()
        struct Replayed: Encodable {
            var id: String
            var new_id: String
            var stream: String
        }
        let replayed: [Replayed] = try await withRedisClient(self.global, "wave dlq replay") { client in
            var replayed: [Replayed] = []
            for id in self.ids {
                guard let entry = try await client.send(XRangeCommand(stream, start: id, end: id, count: 1)).first else {
                    throw CLIError.badInput("no dead letter \(id) in \(stream) (see wave dlq list --project \(self.target.project))")
                }
                let letter = DeadLetter(decoding: entry.fields.map { StreamField($0.name, $0.value) })
                // The reference's dead letters do not say where they came from: its signals stream.
                let destination = letter.sourceStream.isEmpty ? Channels.signals(project) : letter.sourceStream
                guard let newID = try await client.send(XAddCommand(destination, fields: letter.originalFields.map { ($0.name, $0.value) })) else {
                    throw CLIError(exitCode: 1, message: "XADD to \(destination) returned no id")
                }
                _ = try await client.send(XDelCommand(stream, ids: [entry.id]))
                replayed.append(Replayed(id: entry.id, new_id: newID, stream: destination))
            }
            return replayed
        }
        if self.global.json {
            struct Output: Encodable { var replayed: [Replayed] }
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
        if let olderThan = self.olderThan, Self.duration(olderThan) == nil {
            throw ValidationError("--older-than takes a number and a unit (s, m, h, d), like 7d, not \"\(olderThan)\"")
        }
    }

    /// `30s`, `15m`, `12h`, `7d` in milliseconds.
    static func duration(_ text: String) -> Int64? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number >= 0 else { return nil }
        switch unit {
        case "s": return number * 1_000
        case "m": return number * 60_000
        case "h": return number * 3_600_000
        case "d": return number * 86_400_000
        default: return nil
        }
    }

    func run() async throws {
        let (_, stream) = try self.target.stream()
        let purged: Int = try await withRedisClient(self.global, "wave dlq purge") { client in
            guard let olderThan = self.olderThan.flatMap(Self.duration) else {
                let size = try await client.send(XLenCommand(stream))
                _ = try await client.send(DelCommand(keys: [stream]))
                return size
            }
            // Entry ids start with their time in milliseconds: everything below the cutoff goes.
            let cutoff = WaveTimestamp.now().millisecondsSinceEpoch - olderThan
            return try await client.send(XTrimCommand(stream, trim: .minID("\(max(0, cutoff))-0", approximate: false)))
        }
        if self.global.json {
            print(try JSONOutput.line(["purged": purged]))
        } else {
            print("purged \(purged) dead letter\(purged == 1 ? "" : "s") from \(stream)")
        }
    }
}

/// Runs `body` with a Redis client (for commands that need --redis: dlq, agents), shut down afterwards.
func withRedisClient<T>(_ global: GlobalOptions, _ command: String, _ body: (RedisClient) async throws -> T) async throws -> T {
    let configuration = try global.requireRedis(for: command)
    let client = try RedisClient(configuration: configuration, logger: Logger(label: "wave.dlq"))
    do {
        let result = try await body(client)
        await client.shutdown()
        return result
    } catch let error as CLIError {
        await client.shutdown()
        throw error
    } catch {
        await client.shutdown()
        throw CLIError.from(error)
    }
}
