import NIOCore
import RESP

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [~] n] id field value …`: the new entry's id, or `nil`
/// with `NOMKSTREAM` when the stream does not exist.
public struct XAddCommand: RedisCommand {
    public typealias Response = String?
    /// The stream.
    public var key: String
    /// The fields, in order.
    public var fields: [(name: String, value: String)]
    /// The id; `*` lets the server choose.
    public var id: String
    /// Do not create the stream.
    public var noMakeStream: Bool
    /// Trimming to apply.
    public var trim: StreamTrim?

    /// Creates the command.
    public init(_ key: String, fields: [(name: String, value: String)], id: String = "*", noMakeStream: Bool = false, trim: StreamTrim? = nil) {
        self.key = key
        self.fields = fields
        self.id = id
        self.noMakeStream = noMakeStream
        self.trim = trim
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XADD")
        arguments.append(self.key)
        if self.noMakeStream { arguments.append("NOMKSTREAM") }
        self.trim?.encode(into: &arguments)
        arguments.append(self.id)
        for field in self.fields {
            arguments.append(field.name)
            arguments.append(field.value)
        }
    }
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key… id…`.
public struct XReadCommand: RedisCommand {
    public typealias Response = StreamReadReply
    /// Streams and the id after which to read each.
    public var streams: [(key: String, after: String)]
    /// Most entries per stream.
    public var count: Int?
    /// How long to block waiting for entries; `nil` does not block.
    public var block: Duration?

    /// Creates the command.
    public init(streams: [(key: String, after: String)], count: Int? = nil, block: Duration? = nil) {
        self.streams = streams
        self.count = count
        self.block = block
    }

    public var blockingTimeout: Duration? { self.block }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XREAD")
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
        if let block {
            arguments.append("BLOCK")
            arguments.append(block.wholeMilliseconds)
        }
        arguments.append("STREAMS")
        for stream in self.streams { arguments.append(stream.key) }
        for stream in self.streams { arguments.append(stream.after) }
    }
}

/// `XREADGROUP GROUP g c [COUNT n] [BLOCK ms] [NOACK] STREAMS key… id…`. Use `>` for new
/// entries, or `0` to re-read this consumer's own pending entries.
public struct XReadGroupCommand: RedisCommand {
    public typealias Response = StreamReadReply
    /// The group.
    public var group: String
    /// This consumer's name.
    public var consumer: String
    /// Streams and the position for each (`>` or an id).
    public var streams: [(key: String, position: String)]
    /// Most entries per stream.
    public var count: Int?
    /// How long to block; `nil` does not block. Never 0 in Wave: a read always has a deadline.
    public var block: Duration?
    /// Do not add entries to the pending list.
    public var noAck: Bool

    /// Creates the command.
    public init(group: String, consumer: String, streams: [(key: String, position: String)], count: Int? = nil, block: Duration? = nil, noAck: Bool = false) {
        self.group = group
        self.consumer = consumer
        self.streams = streams
        self.count = count
        self.block = block
        self.noAck = noAck
    }

    public var blockingTimeout: Duration? { self.block }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XREADGROUP")
        arguments.append("GROUP")
        arguments.append(self.group)
        arguments.append(self.consumer)
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
        if let block {
            arguments.append("BLOCK")
            arguments.append(max(1, block.wholeMilliseconds))
        }
        if self.noAck { arguments.append("NOACK") }
        arguments.append("STREAMS")
        for stream in self.streams { arguments.append(stream.key) }
        for stream in self.streams { arguments.append(stream.position) }
    }
}

/// `XACK key group id…`: how many were acknowledged.
public struct XAckCommand: RedisCommand {
    public typealias Response = Int
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// The ids.
    public var ids: [String]
    /// Creates the command.
    public init(_ key: String, group: String, ids: [String]) {
        self.key = key
        self.group = group
        self.ids = ids
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XACK")
        arguments.append(self.key)
        arguments.append(self.group)
        arguments.append(contentsOf: self.ids)
    }
}

/// `XGROUP CREATE key group id [MKSTREAM] [ENTRIESREAD n]`: `true` when created, `false` when
/// the group already existed (`BUSYGROUP` counts as success).
public struct XGroupCreateCommand: RedisCommand {
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// Where the group starts: `$` (new entries only), `0` (everything), or an id.
    public var startID: String
    /// Create the stream if it does not exist.
    public var makeStream: Bool
    /// Entries already read, for an accurate lag (Redis ≥ 7.0).
    public var entriesRead: Int?

    /// Creates the command.
    public init(_ key: String, group: String, startID: String = "$", makeStream: Bool = true, entriesRead: Int? = nil) {
        self.key = key
        self.group = group
        self.startID = startID
        self.makeStream = makeStream
        self.entriesRead = entriesRead
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XGROUP")
        arguments.append("CREATE")
        arguments.append(self.key)
        arguments.append(self.group)
        arguments.append(self.startID)
        if self.makeStream { arguments.append("MKSTREAM") }
        if let entriesRead {
            arguments.append("ENTRIESREAD")
            arguments.append(entriesRead)
        }
    }

    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> Bool {
        _ = try OKResponse(fromRESP: token)
        return true
    }

    public func response(forError message: String) -> Bool? {
        message.hasPrefix("BUSYGROUP") ? false : nil
    }
}

/// `XGROUP DESTROY key group`: whether the group existed.
public struct XGroupDestroyCommand: RedisCommand {
    public typealias Response = Bool
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// Creates the command.
    public init(_ key: String, group: String) {
        self.key = key
        self.group = group
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.appendGroupCommand("DESTROY", self.key, self.group)
    }
}

/// `XGROUP CREATECONSUMER key group consumer`: whether it was created.
public struct XGroupCreateConsumerCommand: RedisCommand {
    public typealias Response = Bool
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// The consumer.
    public var consumer: String
    /// Creates the command.
    public init(_ key: String, group: String, consumer: String) {
        self.key = key
        self.group = group
        self.consumer = consumer
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.appendGroupCommand("CREATECONSUMER", self.key, self.group, self.consumer)
    }
}

/// `XGROUP DELCONSUMER key group consumer`: how many pending entries it held (they are lost to
/// the group's pending list, so claim them first).
public struct XGroupDelConsumerCommand: RedisCommand {
    public typealias Response = Int
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// The consumer.
    public var consumer: String
    /// Creates the command.
    public init(_ key: String, group: String, consumer: String) {
        self.key = key
        self.group = group
        self.consumer = consumer
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.appendGroupCommand("DELCONSUMER", self.key, self.group, self.consumer)
    }
}

/// `XAUTOCLAIM key group consumer min-idle start [COUNT n] [JUSTID]`.
public struct XAutoClaimCommand: RedisCommand {
    public typealias Response = AutoClaimReply
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// The consumer that takes the entries.
    public var consumer: String
    /// Only entries idle at least this long.
    public var minIdle: Duration
    /// Where the scan starts (`0-0`, then the previous reply's cursor).
    public var start: String
    /// Most entries to examine.
    public var count: Int?
    /// Return ids only, without incrementing delivery counts.
    public var justID: Bool

    /// Creates the command.
    public init(_ key: String, group: String, consumer: String, minIdle: Duration, start: String = "0-0", count: Int? = nil, justID: Bool = false) {
        self.key = key
        self.group = group
        self.consumer = consumer
        self.minIdle = minIdle
        self.start = start
        self.count = count
        self.justID = justID
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XAUTOCLAIM")
        arguments.append(self.key)
        arguments.append(self.group)
        arguments.append(self.consumer)
        arguments.append(self.minIdle.wholeMilliseconds)
        arguments.append(self.start)
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
        if self.justID { arguments.append("JUSTID") }
    }

    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> AutoClaimReply {
        let parts = try token.elements()
        guard parts.count >= 2 else { throw RESPDecodeError(.invalidValue, expected: "[cursor, entries, deleted]", token: token) }
        let cursor = try String(fromRESP: parts[0])
        var entries: [StreamEntry] = []
        var ids: [String] = []
        if self.justID {
            ids = try [String](fromRESP: parts[1])
        } else {
            var entriesCursor = RESPCursor(parts[1])
            entries = try StreamEntry.readList(from: &entriesCursor)
            ids = entries.map(\.id)
        }
        let deleted = parts.count > 2 ? try [String](fromRESP: parts[2]) : []
        return AutoClaimReply(nextCursor: cursor, entries: entries, ids: ids, deletedIDs: deleted)
    }
}

/// `XCLAIM key group consumer min-idle id… [IDLE ms] [RETRYCOUNT n] [FORCE] [JUSTID]`.
/// The reply holds the claimed entries (or only their ids with `JUSTID`).
public struct XClaimCommand: RedisCommand {
    /// Claimed entries, or ids with `JUSTID`.
    public struct Response: Sendable, Hashable {
        /// The claimed entries (empty with `JUSTID`).
        public var entries: [StreamEntry]
        /// The claimed ids.
        public var ids: [String]
    }
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// The consumer that takes the entries.
    public var consumer: String
    /// Only entries idle at least this long (zero: any).
    public var minIdle: Duration
    /// The ids.
    public var ids: [String]
    /// Set the idle time instead of resetting it to zero.
    public var idle: Duration?
    /// Set the delivery count.
    public var retryCount: Int?
    /// Create pending entries that do not exist.
    public var force: Bool
    /// Return ids only and do not increment delivery counts (what a heartbeat uses).
    public var justID: Bool

    /// Creates the command.
    public init(
        _ key: String, group: String, consumer: String, minIdle: Duration = .zero, ids: [String], idle: Duration? = nil, retryCount: Int? = nil,
        force: Bool = false, justID: Bool = false
    ) {
        self.key = key
        self.group = group
        self.consumer = consumer
        self.minIdle = minIdle
        self.ids = ids
        self.idle = idle
        self.retryCount = retryCount
        self.force = force
        self.justID = justID
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XCLAIM")
        arguments.append(self.key)
        arguments.append(self.group)
        arguments.append(self.consumer)
        arguments.append(self.minIdle.wholeMilliseconds)
        arguments.append(contentsOf: self.ids)
        if let idle {
            arguments.append("IDLE")
            arguments.append(idle.wholeMilliseconds)
        }
        if let retryCount {
            arguments.append("RETRYCOUNT")
            arguments.append(retryCount)
        }
        if self.force { arguments.append("FORCE") }
        if self.justID { arguments.append("JUSTID") }
    }

    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> Response {
        if self.justID { return Response(entries: [], ids: try [String](fromRESP: token)) }
        var cursor = RESPCursor(token)
        let entries = try StreamEntry.readList(from: &cursor)
        return Response(entries: entries, ids: entries.map(\.id))
    }
}

/// `XPENDING key group`: the summary of a group's pending entries.
public struct XPendingSummaryCommand: RedisCommand {
    public typealias Response = PendingSummary
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// Creates the command.
    public init(_ key: String, group: String) {
        self.key = key
        self.group = group
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XPENDING")
        arguments.append(self.key)
        arguments.append(self.group)
    }
}

/// `XPENDING key group [IDLE ms] start end count [consumer]`: pending entries in detail.
public struct XPendingCommand: RedisCommand {
    public typealias Response = [PendingEntry]
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// Only entries idle at least this long.
    public var minIdle: Duration?
    /// The first id (`-` for the oldest).
    public var start: String
    /// The last id (`+` for the newest).
    public var end: String
    /// Most entries.
    public var count: Int
    /// Only this consumer's entries.
    public var consumer: String?

    /// Creates the command.
    public init(_ key: String, group: String, minIdle: Duration? = nil, start: String = "-", end: String = "+", count: Int, consumer: String? = nil) {
        self.key = key
        self.group = group
        self.minIdle = minIdle
        self.start = start
        self.end = end
        self.count = count
        self.consumer = consumer
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XPENDING")
        arguments.append(self.key)
        arguments.append(self.group)
        if let minIdle {
            arguments.append("IDLE")
            arguments.append(minIdle.wholeMilliseconds)
        }
        arguments.append(self.start)
        arguments.append(self.end)
        arguments.append(self.count)
        if let consumer { arguments.append(consumer) }
    }
}

/// `XINFO GROUPS key`.
public struct XInfoGroupsCommand: RedisCommand {
    public typealias Response = [StreamGroupInfo]
    /// The stream.
    public var key: String
    /// Creates the command.
    public init(_ key: String) { self.key = key }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XINFO")
        arguments.append("GROUPS")
        arguments.append(self.key)
    }
}

/// `XINFO STREAM key`.
public struct XInfoStreamCommand: RedisCommand {
    public typealias Response = StreamInfo
    /// The stream.
    public var key: String
    /// Creates the command.
    public init(_ key: String) { self.key = key }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XINFO")
        arguments.append("STREAM")
        arguments.append(self.key)
    }
}

/// `XINFO CONSUMERS key group`.
public struct XInfoConsumersCommand: RedisCommand {
    public typealias Response = [StreamConsumerInfo]
    /// The stream.
    public var key: String
    /// The group.
    public var group: String
    /// Creates the command.
    public init(_ key: String, group: String) {
        self.key = key
        self.group = group
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XINFO")
        arguments.append("CONSUMERS")
        arguments.append(self.key)
        arguments.append(self.group)
    }
}

/// `XRANGE key start end [COUNT n]` (oldest first) or `XREVRANGE key end start [COUNT n]`
/// (newest first).
public struct XRangeCommand: RedisCommand {
    public typealias Response = [StreamEntry]
    /// The stream.
    public var key: String
    /// The lower id (`-` for the oldest); exclusive with a `(` prefix.
    public var start: String
    /// The upper id (`+` for the newest).
    public var end: String
    /// Most entries.
    public var count: Int?
    /// Newest first (`XREVRANGE`).
    public var reverse: Bool

    /// Creates the command.
    public init(_ key: String, start: String = "-", end: String = "+", count: Int? = nil, reverse: Bool = false) {
        self.key = key
        self.start = start
        self.end = end
        self.count = count
        self.reverse = reverse
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append(self.reverse ? "XREVRANGE" : "XRANGE")
        arguments.append(self.key)
        if self.reverse {
            arguments.append(self.end)
            arguments.append(self.start)
        } else {
            arguments.append(self.start)
            arguments.append(self.end)
        }
        if let count {
            arguments.append("COUNT")
            arguments.append(count)
        }
    }

    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> [StreamEntry] {
        // One cursor over the whole reply: each byte read once (a recovery scan reads thousands).
        var cursor = RESPCursor(token)
        return try StreamEntry.readList(from: &cursor)
    }
}

/// `XLEN key`.
public struct XLenCommand: RedisCommand {
    public typealias Response = Int
    /// The stream.
    public var key: String
    /// Creates the command.
    public init(_ key: String) { self.key = key }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XLEN")
        arguments.append(self.key)
    }
}

/// `XTRIM key MAXLEN|MINID [~] threshold`: how many entries were deleted.
public struct XTrimCommand: RedisCommand {
    public typealias Response = Int
    /// The stream.
    public var key: String
    /// The rule.
    public var trim: StreamTrim
    /// Creates the command.
    public init(_ key: String, trim: StreamTrim) {
        self.key = key
        self.trim = trim
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XTRIM")
        arguments.append(self.key)
        self.trim.encode(into: &arguments)
    }
}

/// `XDEL key id…`: how many entries were deleted.
public struct XDelCommand: RedisCommand {
    public typealias Response = Int
    /// The stream.
    public var key: String
    /// The ids.
    public var ids: [String]
    /// Creates the command.
    public init(_ key: String, ids: [String]) {
        self.key = key
        self.ids = ids
    }
    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XDEL")
        arguments.append(self.key)
        arguments.append(contentsOf: self.ids)
    }
}

extension Duration {
    /// The duration in whole milliseconds, rounded down.
    public var wholeMilliseconds: Int {
        Int(self.components.seconds) * 1000 + Int(self.components.attoseconds / 1_000_000_000_000_000)
    }
}

extension RESPCommandEncoder.Arguments {
    /// `XGROUP SUBCOMMAND key group [consumer]`.
    mutating func appendGroupCommand(_ subcommand: String, _ key: String, _ group: String, _ consumer: String? = nil) {
        self.append("XGROUP")
        self.append(subcommand)
        self.append(key)
        self.append(group)
        if let consumer { self.append(consumer) }
    }
}
