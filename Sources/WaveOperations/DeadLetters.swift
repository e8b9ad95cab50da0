import WaveProtocol
import WaveRedis

/// A project's dead letters (`wave:dlq:{project}`): listed, replayed to their stream, purged.
/// Dead letters are never trimmed by Wave's maintenance; only ``purge(olderThan:)`` removes them.
public struct DeadLetterQueue: Sendable {
    /// The client the operations use.
    public let client: RedisClient
    /// The project.
    public let project: ProjectName

    /// The queue of `project` through `client`.
    public init(client: RedisClient, project: ProjectName) {
        self.client = client
        self.project = project
    }

    /// The stream that holds the dead letters.
    public var stream: String { Channels.deadLetters(self.project) }

    /// The oldest `count` dead letters with their entry ids, and how many there are in all.
    public func list(count: Int) async throws -> (entries: [(id: String, letter: DeadLetter)], size: Int) {
        let entries = try await self.client.send(XRangeCommand(self.stream, count: count))
        let size = try await self.client.send(XLenCommand(self.stream))
        return (entries.map { ($0.id, DeadLetter(decoding: $0.fields.map { StreamField($0.name, $0.value) })) }, size)
    }

    /// One dead letter put back on its stream.
    public struct Replayed: Sendable, Hashable, Encodable {
        /// Its id in the dead-letter stream (deleted from there).
        public var id: String
        /// Its new id on the stream it went back to.
        public var new_id: String
        /// The stream it went back to.
        public var stream: String
    }

    /// Puts dead letters back on the stream they came from (their original fields, the same
    /// `message_id`, so the ledger still knows them), then deletes them from the queue. A dead
    /// letter the reference wrote does not say its stream: it goes to the project's signals.
    /// - Throws: ``DeadLetterError/notFound(id:stream:)`` for an id not in the queue (the ones
    ///   before it are replayed).
    public func replay(_ ids: [String]) async throws -> [Replayed] {
        var replayed: [Replayed] = []
        for id in ids {
            guard let entry = try await self.client.send(XRangeCommand(self.stream, start: id, end: id, count: 1)).first else {
                throw DeadLetterError.notFound(id: id, stream: self.stream)
            }
            let letter = DeadLetter(decoding: entry.fields.map { StreamField($0.name, $0.value) })
            let destination = letter.sourceStream.isEmpty ? Channels.signals(self.project) : letter.sourceStream
            guard let newID = try await self.client.send(XAddCommand(destination, fields: letter.originalFields.map { ($0.name, $0.value) })) else {
                throw DeadLetterError.notWritten(stream: destination)
            }
            _ = try await self.client.send(XDelCommand(self.stream, ids: [entry.id]))
            replayed.append(Replayed(id: entry.id, new_id: newID, stream: destination))
        }
        return replayed
    }

    /// Deletes every dead letter, or (with `olderThan`) those older than that, by the time in
    /// their entry ids; returns how many went.
    public func purge(olderThan: Duration? = nil, now: WaveTimestamp = .now()) async throws -> Int {
        guard let olderThan else {
            let size = try await self.client.send(XLenCommand(self.stream))
            _ = try await self.client.send(DelCommand(keys: [self.stream]))
            return size
        }
        let cutoff = now.millisecondsSinceEpoch - olderThan.components.seconds * 1_000 - olderThan.components.attoseconds / 1_000_000_000_000_000
        return try await self.client.send(XTrimCommand(self.stream, trim: .minID("\(max(0, cutoff))-0", approximate: false)))
    }

}

/// Durations as operators write them: `30s`, `15m`, `12h`, `7d`.
public enum DurationText {
    /// The duration `text` says; `nil` for anything else.
    public static func parse(_ text: String) -> Duration? {
        guard let unit = text.last, let number = Int64(text.dropLast()), number >= 0, number < 1_000_000_000 else { return nil }
        switch unit {
        case "s": return .seconds(number)
        case "m": return .seconds(number * 60)
        case "h": return .seconds(number * 3_600)
        case "d": return .seconds(number * 86_400)
        default: return nil
        }
    }
}

/// A dead-letter operation that could not be done.
public enum DeadLetterError: Error, Sendable, CustomStringConvertible {
    /// No dead letter has this id.
    case notFound(id: String, stream: String)
    /// Redis returned no id for the entry written back.
    case notWritten(stream: String)

    public var description: String {
        switch self {
        case .notFound(let id, let stream): "no dead letter \(id) in \(stream)"
        case .notWritten(let stream): "XADD to \(stream) returned no id"
        }
    }
}
