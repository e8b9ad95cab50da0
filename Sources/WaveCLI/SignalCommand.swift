import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveProtocol
import WaveRedis

/// `wave signal`: publishes one envelope, raw (the store is never read).
struct SignalCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "signal",
        abstract: "Publish one signal to a project's stream (core types to wave:signals:P, Wave's extension types to wave:system:P).",
        discussion:
            "Checks only the event type, that --payload is a JSON object within the size limit, and the project rule. --story, --session, --source and --seq are written verbatim."
    )

    @OptionGroup var global: GlobalOptions

    @Argument(help: "The event type, for example gate.passed.")
    var eventType: String

    @Option(help: "The project.")
    var project: String

    @Option(help: "The story id.")
    var story: String?

    @Option(help: "The session id.")
    var session: String?

    @Option(help: "The publisher's identity (an agent id such as BE-1).")
    var source = "wave-cli"

    @Option(help: "The payload: a JSON object.")
    var payload = "{}"

    @Option(help: "low, normal, high or critical.")
    var priority = "normal"

    @Option(help: "Sequence number per (story, source).")
    var seq: UInt64?

    func run() async throws {
        guard let type = EventType(rawValue: self.eventType) else {
            throw CLIError.badInput("unknown event type \"\(self.eventType)\" (declared: \(EventType.allCases.map(\.rawValue).joined(separator: ", ")))")
        }
        let name: ProjectName
        do { name = try ProjectName(self.project) } catch { throw CLIError.badInput(error.message) }
        guard let level = Priority(rawValue: self.priority.lowercased()) else {
            throw CLIError.badInput("--priority must be low, normal, high or critical, not \"\(self.priority)\"")
        }
        let limits = EnvelopeLimits.default
        guard self.payload.utf8.count <= limits.maxPayloadBytes else {
            throw CLIError.badInput("--payload has \(self.payload.utf8.count) bytes; the limit is \(limits.maxPayloadBytes)")
        }
        guard let json = JSONValue(jsonText: self.payload) else {
            throw CLIError.badInput("--payload is not JSON: \(self.payload.prefix(60))")
        }
        guard case .object(let object) = json else {
            throw CLIError.badInput("--payload must be a JSON object, like '{\"gate_id\":\"gate-1\",\"result\":\"pass\"}'")
        }
        let configuration = try self.global.requireRedis(for: "wave signal")
        let envelope = Envelope(
            eventType: type, payload: object, source: self.source, project: self.project, priority: level,
            sessionID: self.session, storyID: self.story, seq: self.seq
        )
        let stream = type.allowedOnSignalStreams ? Channels.signals(name) : Channels.system(name)
        let client = try RedisClient(configuration: configuration, logger: Logger(label: "wave.signal"))
        let bus = RedisEventBus(client: client, logger: Logger(label: "wave.signal"))
        let id: String
        do {
            id = try await bus.publish(envelope, to: stream)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        if self.global.json {
            print(try JSONOutput.line(["id": id, "message_id": envelope.messageID, "stream": stream]))
        } else {
            print("published \(type.rawValue) to \(stream) as \(id) (message_id \(envelope.messageID))")
        }
    }
}

/// `wave tail`: the newest entries of a stream, oldest first, read without consuming.
struct TailCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "tail",
        abstract: "Show the newest entries of a project's stream, oldest first (XREVRANGE: never takes an entry from a group)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The project.")
    var project: String

    @Option(help: "signals, system, dlq or tasks:ROLE.")
    var stream = "signals"

    @Option(help: "How many entries.")
    var count = 20

    func validate() throws {
        guard self.count > 0 else { throw ValidationError("--count must be positive") }
    }

    func run() async throws {
        let name: ProjectName
        do { name = try ProjectName(self.project) } catch { throw CLIError.badInput(error.message) }
        let key: String
        switch self.stream {
        case "signals": key = Channels.signals(name)
        case "system": key = Channels.system(name)
        case "dlq": key = Channels.deadLetters(name)
        case let other where other.hasPrefix("tasks:") && other.count > 6: key = Channels.tasks(name, String(other.dropFirst(6)))
        default: throw CLIError.badInput("--stream must be signals, system, dlq or tasks:ROLE, not \"\(self.stream)\"")
        }
        let configuration = try self.global.requireRedis(for: "wave tail")
        let client = try RedisClient(configuration: configuration, logger: Logger(label: "wave.tail"))
        let bus = RedisEventBus(client: client, logger: Logger(label: "wave.tail"))
        let entries: [BusEntry]
        do {
            entries = try await bus.entries(of: key, count: self.count)
        } catch {
            await client.shutdown()
            throw error
        }
        await client.shutdown()
        for entry in entries {
            if self.global.json {
                var fields: [String: String] = [:]
                for field in entry.fields where fields[field.name] == nil { fields[field.name] = field.value }
                print(try JSONOutput.line(TailLine(id: entry.id, fields: fields)))
            } else {
                let value = { (name: String) in entry.fields.first(where: { $0.name == name })?.value ?? "-" }
                if entry.fields.contains(where: { $0.name == "task_id" }) {
                    // A task entry (wave:tasks:{p}:{role}): what is asked of whom, and until when.
                    print(
                        "\(entry.id)  task \(value("action")) \(value("gate")) for \(value("role")) (attempt \(value("attempt")), \(value("priority")))  story=\(value("story_id"))  deadline=\(value("deadline"))"
                    )
                } else {
                    print("\(entry.id)  \(value("event_type"))  source=\(value("source"))  story=\(value("story_id"))  payload=\(value("payload").prefix(120))")
                }
            }
        }
        if !self.global.json, entries.isEmpty { print("(\(key) is empty)") }
    }

    struct TailLine: Encodable {
        var id: String
        var fields: [String: String]
    }
}
