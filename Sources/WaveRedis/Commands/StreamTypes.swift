import NIOCore
import RESP

/// One stream entry: its id and its fields in order.
public struct StreamEntry: Sendable, Hashable, RESPTokenDecodable {
    /// The entry id, `<ms>-<seq>`.
    public var id: String
    /// The fields in the order they were written. Empty for an entry that was deleted while
    /// pending (Redis returns its id with no fields).
    public var fields: [(name: String, value: String)]
    /// Whether the entry was deleted while it was pending (read from a pending list).
    public var isDeleted: Bool

    /// Creates an entry.
    public init(id: String, fields: [(name: String, value: String)], isDeleted: Bool = false) {
        self.id = id
        self.fields = fields
        self.isDeleted = isDeleted
    }

    /// The value of the first field with this name.
    public subscript(field: String) -> String? {
        self.fields.first(where: { $0.name == field })?.value
    }

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        var cursor = RESPCursor(token)
        try self.init(from: &cursor)
    }

    /// Reads `[id, [field, value, …]]` (fields null for an entry deleted while pending).
    public init(from cursor: inout RESPCursor) throws(RESPDecodeError) {
        var probe = cursor
        guard try cursor.readArrayHeader() == 2 else {
            throw RESPDecodeError(.invalidValue, expected: "[id, fields]", token: probe.readToken() ?? .null)
        }
        self.id = try cursor.readString()
        guard let count = try cursor.readMapHeader() else {
            self.fields = []
            self.isDeleted = true
            return
        }
        self.isDeleted = false
        var fields: [(name: String, value: String)] = []
        fields.reserveCapacity(count)
        for _ in 0..<count {
            fields.append((try cursor.readString(), try cursor.readString()))
        }
        self.fields = fields
    }

    /// Reads an array of entries (null: none).
    public static func readList(from cursor: inout RESPCursor) throws(RESPDecodeError) -> [StreamEntry] {
        guard let count = try cursor.readArrayHeader() else { return [] }
        var entries: [StreamEntry] = []
        entries.reserveCapacity(count)
        for _ in 0..<count { entries.append(try StreamEntry(from: &cursor)) }
        return entries
    }

    public static func == (lhs: StreamEntry, rhs: StreamEntry) -> Bool {
        lhs.id == rhs.id && lhs.isDeleted == rhs.isDeleted && lhs.fields.elementsEqual(rhs.fields, by: { $0 == $1 })
    }

    public func hash(into hasher: inout Hasher) {
        hasher.combine(self.id)
        for field in self.fields {
            hasher.combine(field.name)
            hasher.combine(field.value)
        }
    }
}

/// Entries read from several streams (`XREAD`, `XREADGROUP`), in the order the server gave.
public struct StreamReadReply: Sendable, Hashable, RESPTokenDecodable {
    /// Each stream with its entries.
    public var streams: [(name: String, entries: [StreamEntry])]

    /// Every entry of every stream.
    public var allEntries: [StreamEntry] { self.streams.flatMap(\.entries) }

    /// The entries of one stream.
    public func entries(of stream: String) -> [StreamEntry] {
        self.streams.first(where: { $0.name == stream })?.entries ?? []
    }

    /// An empty reply (what a `BLOCK` that timed out returns).
    public static let empty = StreamReadReply(streams: [])

    init(streams: [(name: String, entries: [StreamEntry])]) {
        self.streams = streams
    }

    /// Reads a RESP3 map `{stream: entries}` or a RESP2 array `[[stream, entries], …]`; a null
    /// (a `BLOCK` that timed out) is an empty reply.
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        if token.isNull {
            self.streams = []
            return
        }
        var streams: [(name: String, entries: [StreamEntry])] = []
        var cursor = RESPCursor(token)
        if cursor.peekType() == .map {
            let count = try cursor.readMapHeader() ?? 0
            streams.reserveCapacity(count)
            for _ in 0..<count {
                streams.append((try cursor.readString(), try StreamEntry.readList(from: &cursor)))
            }
        } else {
            let count = try cursor.readArrayHeader() ?? 0
            streams.reserveCapacity(count)
            for _ in 0..<count {
                var probe = cursor
                guard try cursor.readArrayHeader() == 2 else {
                    throw RESPDecodeError(.invalidValue, expected: "[stream, entries]", token: probe.readToken() ?? .null)
                }
                streams.append((try cursor.readString(), try StreamEntry.readList(from: &cursor)))
            }
        }
        self.streams = streams
    }

    public static func == (lhs: StreamReadReply, rhs: StreamReadReply) -> Bool {
        lhs.streams.elementsEqual(rhs.streams, by: { $0.name == $1.name && $0.entries == $1.entries })
    }

    public func hash(into hasher: inout Hasher) {
        for stream in self.streams {
            hasher.combine(stream.name)
            hasher.combine(stream.entries)
        }
    }
}

/// Trimming applied by `XADD` or `XTRIM`.
public enum StreamTrim: Sendable, Hashable {
    /// `MAXLEN [~] n`: keep about (or exactly) the newest n entries. Wave never uses this on a
    /// stream a group consumes (it deletes unread entries); it exists for compatibility tests.
    case maxLength(Int, approximate: Bool)
    /// `MINID [~] id`: delete entries older than id.
    case minID(String, approximate: Bool)

    func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        switch self {
        case .maxLength(let count, let approximate):
            arguments.append("MAXLEN")
            if approximate { arguments.append("~") }
            arguments.append(count)
        case .minID(let id, let approximate):
            arguments.append("MINID")
            if approximate { arguments.append("~") }
            arguments.append(id)
        }
    }
}

/// A pending-entries summary (`XPENDING key group`).
public struct PendingSummary: Sendable, Hashable, RESPTokenDecodable {
    /// How many entries are pending.
    public var count: Int
    /// The oldest pending id.
    public var smallestID: String?
    /// The newest pending id.
    public var greatestID: String?
    /// Pending entries per consumer.
    public var consumers: [String: Int]

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        let parts = try token.elements()
        guard parts.count == 4 else { throw RESPDecodeError(.invalidValue, expected: "four elements", token: token) }
        self.count = try Int(fromRESP: parts[0])
        self.smallestID = try String?(fromRESP: parts[1])
        self.greatestID = try String?(fromRESP: parts[2])
        var consumers: [String: Int] = [:]
        if !parts[3].isNull {
            for consumer in try parts[3].elements() {
                let pair = try consumer.elements()
                guard pair.count == 2 else { throw RESPDecodeError(.invalidValue, expected: "[consumer, count]", token: consumer) }
                consumers[try String(fromRESP: pair[0])] = try Int(fromRESP: pair[1])
            }
        }
        self.consumers = consumers
    }
}

/// One pending entry (`XPENDING key group start end count`).
public struct PendingEntry: Sendable, Hashable, RESPTokenDecodable {
    /// The entry id.
    public var id: String
    /// The consumer that holds it.
    public var consumer: String
    /// Milliseconds since it was last delivered.
    public var idleMilliseconds: Int
    /// How many times it was delivered.
    public var deliveryCount: Int

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        let parts = try token.elements()
        guard parts.count == 4 else { throw RESPDecodeError(.invalidValue, expected: "four elements", token: token) }
        self.id = try String(fromRESP: parts[0])
        self.consumer = try String(fromRESP: parts[1])
        self.idleMilliseconds = try Int(fromRESP: parts[2])
        self.deliveryCount = try Int(fromRESP: parts[3])
    }
}

/// One consumer group (`XINFO GROUPS`).
public struct StreamGroupInfo: Sendable, Hashable, RESPTokenDecodable {
    /// The group's name.
    public var name: String
    /// Consumers in the group.
    public var consumers: Int
    /// Entries delivered and not yet acknowledged.
    public var pending: Int
    /// The last id delivered to the group.
    public var lastDeliveredID: String
    /// How many entries the group has read (Redis ≥ 7.0; `nil` when unknown).
    public var entriesRead: Int?
    /// Entries not yet delivered to the group (`nil` when Redis cannot tell, for example after
    /// entries were deleted or trimmed).
    public var lag: Int?

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        var name: String?
        var lastDelivered: String?
        self.consumers = 0
        self.pending = 0
        for (key, value) in try token.pairs() {
            switch key.stringValue {
            case "name": name = try String(fromRESP: value)
            case "consumers": self.consumers = try Int(fromRESP: value)
            case "pending": self.pending = try Int(fromRESP: value)
            case "last-delivered-id": lastDelivered = try String(fromRESP: value)
            case "entries-read": self.entriesRead = try Int?(fromRESP: value)
            case "lag": self.lag = try Int?(fromRESP: value)
            default: break
            }
        }
        guard let name, let lastDelivered else { throw RESPDecodeError(.invalidValue, expected: "a group description", token: token) }
        self.name = name
        self.lastDeliveredID = lastDelivered
    }
}

/// A stream's description (`XINFO STREAM`).
public struct StreamInfo: Sendable, Hashable, RESPTokenDecodable {
    /// Entries in the stream.
    public var length: Int
    /// The id of the newest entry ever added.
    public var lastGeneratedID: String
    /// The largest id ever deleted (trimmed or `XDEL`), `0-0` if none (Redis ≥ 7.0).
    public var maxDeletedEntryID: String?
    /// Entries ever added (Redis ≥ 7.0).
    public var entriesAdded: Int?
    /// The id of the oldest entry still in the stream (Redis ≥ 7.0).
    public var recordedFirstEntryID: String?
    /// Consumer groups.
    public var groups: Int
    /// The oldest entry.
    public var firstEntry: StreamEntry?
    /// The newest entry.
    public var lastEntry: StreamEntry?

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        var last: String?
        self.length = 0
        self.groups = 0
        for (key, value) in try token.pairs() {
            switch key.stringValue {
            case "length": self.length = try Int(fromRESP: value)
            case "last-generated-id": last = try String(fromRESP: value)
            case "max-deleted-entry-id": self.maxDeletedEntryID = try String?(fromRESP: value)
            case "entries-added": self.entriesAdded = try Int?(fromRESP: value)
            case "recorded-first-entry-id": self.recordedFirstEntryID = try String?(fromRESP: value)
            case "groups": self.groups = try Int(fromRESP: value)
            case "first-entry": self.firstEntry = try StreamEntry?(fromRESP: value)
            case "last-entry": self.lastEntry = try StreamEntry?(fromRESP: value)
            default: break
            }
        }
        guard let last else { throw RESPDecodeError(.invalidValue, expected: "a stream description", token: token) }
        self.lastGeneratedID = last
    }
}

/// One consumer of a group (`XINFO CONSUMERS`).
public struct StreamConsumerInfo: Sendable, Hashable, RESPTokenDecodable {
    /// The consumer's name.
    public var name: String
    /// Entries it holds unacknowledged.
    public var pending: Int
    /// Milliseconds since its last attempted interaction.
    public var idleMilliseconds: Int
    /// Milliseconds since its last successful interaction (Redis ≥ 7.2), if reported.
    public var inactiveMilliseconds: Int?

    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        var name: String?
        self.pending = 0
        self.idleMilliseconds = 0
        for (key, value) in try token.pairs() {
            switch key.stringValue {
            case "name": name = try String(fromRESP: value)
            case "pending": self.pending = try Int(fromRESP: value)
            case "idle": self.idleMilliseconds = try Int(fromRESP: value)
            case "inactive": self.inactiveMilliseconds = try Int?(fromRESP: value)
            default: break
            }
        }
        guard let name else { throw RESPDecodeError(.invalidValue, expected: "a consumer description", token: token) }
        self.name = name
    }
}

/// The reply of `XAUTOCLAIM`.
public struct AutoClaimReply: Sendable, Hashable {
    /// Where the next call continues; `0-0` when the scan is complete.
    public var nextCursor: String
    /// The claimed entries (empty with `JUSTID`).
    public var entries: [StreamEntry]
    /// The claimed ids (with `JUSTID`, or the ids of `entries`).
    public var ids: [String]
    /// Ids that were pending but whose entries no longer exist; Redis removed them from the
    /// pending list (Redis ≥ 7.0).
    public var deletedIDs: [String]
}
