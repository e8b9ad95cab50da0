import GRDB
import WaveProtocol

/// An entry waiting in the outbox (`wave_outbox`): what Wave meant to publish while Redis was away.
public struct OutboxEntry: Sendable, Hashable {
    /// Its place in the outbox: entries go out in this order.
    public var seq: Int64
    /// The stream it is for.
    public var stream: String
    /// Its fields, in order.
    public var fields: [StreamField]
    /// How many flushes tried it.
    public var attempts: Int
}

extension SQLiteStore {
    /// Keeps entries that could not be published, in order, in one transaction.
    public func enqueueOutbox(_ entries: [(stream: String, fields: [StreamField])], now: WaveTimestamp = .now()) throws {
        guard !entries.isEmpty else { return }
        try self.immediateWrite { db in
            for entry in entries {
                let messageID = entry.fields.first(where: { $0.name == "message_id" })?.value ?? ""
                let fields = JSONValue.array(entry.fields.map { .array([.string($0.name), .string($0.value)]) }).jsonText
                try db.execute(
                    cached: "INSERT INTO wave_outbox (stream, message_id, fields, created_at) VALUES (?, ?, ?, ?)",
                    arguments: [entry.stream, messageID, fields, Self.format(now)])
            }
        }
    }

    /// The oldest `limit` entries of the outbox, in order.
    public func outbox(limit: Int = 500) throws -> [OutboxEntry] {
        try self.pool.read { db in
            try Row.fetchAll(cached: db, sql: "SELECT seq, stream, fields, attempts FROM wave_outbox ORDER BY seq LIMIT ?", arguments: [limit]).map { row in
                let pairs = JSONValue(jsonText: row["fields"] as String)?.arrayValue ?? []
                let fields = pairs.compactMap { pair -> StreamField? in
                    guard let parts = pair.arrayValue, parts.count == 2, let name = parts[0].stringValue, let value = parts[1].stringValue else { return nil }
                    return StreamField(name, value)
                }
                return OutboxEntry(seq: row["seq"], stream: row["stream"], fields: fields, attempts: row["attempts"])
            }
        }
    }

    /// Removes entries that went out (every entry up to `seq`, the outbox being flushed in order).
    public func removeOutbox(through seq: Int64) throws {
        try self.immediateWrite { db in try db.execute(cached: "DELETE FROM wave_outbox WHERE seq <= ?", arguments: [seq]) }
    }

    /// Counts a failed flush of the entries up to `seq`.
    public func countOutboxAttempt(through seq: Int64) throws {
        try self.immediateWrite { db in try db.execute(cached: "UPDATE wave_outbox SET attempts = attempts + 1 WHERE seq <= ?", arguments: [seq]) }
    }

    /// How many entries wait in the outbox.
    public func outboxCount() throws -> Int {
        try self.pool.read { db in try Int.fetchOne(cached: db, sql: "SELECT COUNT(*) FROM wave_outbox") ?? 0 }
    }
}
