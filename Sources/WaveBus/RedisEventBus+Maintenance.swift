import Logging
import Synchronization
import WaveProtocol
import WaveRedis

/// Counters a Redis bus keeps about what it saw.
public struct BusCounters: Sendable, Hashable {
    /// Entries dead-lettered by this bus.
    public var deadLettered = 0
    /// Pending entries whose stream entry was deleted before it was handled (`XAUTOCLAIM`'s
    /// deleted ids, and deleted entries met while re-reading pending ones).
    public var deletedWhilePending = 0
    /// Entries trimmed (by other publishers' `MAXLEN`) before a group read them, per
    /// `stream|group`.
    public var trimmedUnread: [String: Int] = [:]

    /// The total of ``trimmedUnread``.
    public var trimmedUnreadTotal: Int { self.trimmedUnread.values.reduce(0, +) }
    /// Entries that vanished with Redis (restarted without its data before they were read), per
    /// stream, as counted from the gaps in their senders' `seq` (see ``SenderSequences``).
    public var vanished: [String: Int] = [:]

    /// The total of ``vanished``.
    public var vanishedTotal: Int { self.vanished.values.reduce(0, +) }
}

/// What the bus remembers between inspections: counters and, per group, the last valid
/// `entries-read` (the group's logical position in the stream).
final class BusLedger: Sendable {
    struct State {
        var counters = BusCounters()
        var positions: [String: Int] = [:]
    }
    let state = Mutex(State())
}

extension RedisEventBus {
    /// The bus's counters so far.
    public var counters: BusCounters { self.ledger.state.withLock { $0.counters } }

    /// Looks at a group's position and counts entries that were trimmed before the group read
    /// them: when the group's last-delivered id is older than the stream's first entry, every
    /// entry between the group's last known position and the first surviving one was removed
    /// unread. Call it at consumer start, on the reclaim interval and at consumer stop (the bus
    /// does); the count is exact when the group's position was recorded before the gap formed.
    /// - Returns: the entries newly found trimmed unread.
    @discardableResult
    public func accountTrimming(stream: String, group: String) async throws -> Int {
        let groups = try await self.client.send(XInfoGroupsCommand(stream))
        guard let info = groups.first(where: { $0.name == group }) else { return 0 }
        let streamInfo = try await self.client.send(XInfoStreamCommand(stream))
        guard let added = streamInfo.entriesAdded else { return 0 }
        let key = "\(stream)|\(group)"
        // Entries removed from the stream so far occupy positions 1…removed.
        let removed = added - streamInfo.length
        // The group has read up to its last-delivered id; if that is older than the first entry
        // still in the stream, the entries in between were removed before the group read them.
        let oldest = streamInfo.length > 0 ? (streamInfo.recordedFirstEntryID ?? streamInfo.lastGeneratedID) : nil
        let gap =
            oldest.map {
                StreamPosition(info.lastDeliveredID) < StreamPosition($0) && StreamPosition(info.lastDeliveredID) < StreamPosition(streamInfo.lastGeneratedID)
            }
            ?? (StreamPosition(info.lastDeliveredID) < StreamPosition(streamInfo.lastGeneratedID))
        return self.ledger.state.withLock { state in
            let known = max(info.entriesRead ?? 0, state.positions[key] ?? 0)
            guard info.entriesRead != nil || state.positions[key] != nil else { return 0 }
            guard gap, removed > known else {
                state.positions[key] = known
                return 0
            }
            let trimmed = removed - known
            state.positions[key] = removed
            state.counters.trimmedUnread[key, default: 0] += trimmed
            self.logger.warning(
                "entries were trimmed before the group read them",
                metadata: ["wave.stream": "\(stream)", "wave.group": "\(group)", "wave.count": "\(trimmed)"]
            )
            return trimmed
        }
    }

    /// Deletes acknowledged history with `XTRIM MINID`: never an entry that some group has not
    /// read or not acknowledged, and never the newest `keep` entries below that point (kept for
    /// inspection, default 10 000). Streams without groups are left alone.
    /// - Returns: how many entries were deleted.
    @discardableResult
    public func trimAcknowledged(stream: String, keep: Int = 10_000) async throws -> Int {
        let groups = try await self.client.send(XInfoGroupsCommand(stream))
        guard !groups.isEmpty else { return 0 }
        // The oldest entry some group still needs: its oldest pending entry, else the first entry
        // after its last-delivered id.
        var safe: String? = nil
        for group in groups {
            let summary = try await self.client.send(XPendingSummaryCommand(stream, group: group.name))
            let needed: String?
            if let oldestPending = summary.smallestID {
                needed = oldestPending
            } else {
                needed = try await self.client.send(XRangeCommand(stream, start: "(\(group.lastDeliveredID)", count: 1)).first?.id
            }
            guard let needed else { continue }  // this group needs nothing that exists
            if safe == nil || StreamPosition(needed) < StreamPosition(safe!) { safe = needed }
        }
        // Everything before `safe` is acknowledged by every group; keep the newest `keep` of it.
        let keep = max(1, keep)
        let newest = try await self.client.send(
            XRangeCommand(stream, start: "-", end: safe.map { "(\($0)" } ?? "+", count: keep + 1, reverse: true)
        )
        guard newest.count > keep else { return 0 }
        let trimmed = try await self.client.send(XTrimCommand(stream, trim: .minID(newest[keep - 1].id, approximate: false)))
        if trimmed > 0 {
            self.logger.debug("trimmed acknowledged entries", metadata: ["wave.stream": "\(stream)", "wave.count": "\(trimmed)"])
        }
        return trimmed
    }
}

/// Orders stream ids numerically.
struct StreamPosition: Comparable {
    let ms: UInt64
    let seq: UInt64
    init(_ text: String) {
        let parts = text.split(separator: "-")
        self.ms = UInt64(parts.first ?? "") ?? 0
        self.seq = parts.count > 1 ? UInt64(parts[1]) ?? 0 : 0
    }
    static func < (a: StreamPosition, b: StreamPosition) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
}

extension RedisEventBus {
    public func value(of key: String) async throws -> String? {
        try await self.client.send(GetCommand(key))
    }

    public func setValue(_ value: String, for key: String) async throws {
        _ = try await self.client.send(SetCommand(key, value: value))
    }

    public func deleteValues(_ keys: [String]) async throws {
        guard !keys.isEmpty else { return }
        _ = try await self.client.send(DelCommand(keys: keys))
    }

    @discardableResult
    public func broadcast(_ message: String, on channel: String) async throws -> Int {
        try await self.client.send(PublishCommand(channel: channel, message: message))
    }

    public func withSubscription<Result: Sendable>(
        channels: [String], _ body: (AsyncStream<BusChannelEvent>) async throws -> Result
    ) async throws -> Result {
        try await self.client.withSubscription(channels: channels) { events in
            let mapped = AsyncStream<BusChannelEvent> { continuation in
                let task = Task {
                    for await event in events {
                        switch event {
                        case .subscribed: continuation.yield(.subscribed)
                        case .message(let channel, let payload, _): continuation.yield(.message(channel: channel, payload: payload))
                        }
                    }
                    continuation.finish()
                }
                continuation.onTermination = { _ in task.cancel() }
            }
            return try await body(mapped)
        }
    }

    public func reachableAgain() -> AsyncStream<Void> {
        let transitions = self.client.breaker.transitions()
        return AsyncStream { continuation in
            let task = Task {
                for await transition in transitions where transition.to == .closed { continuation.yield() }
                continuation.finish()
            }
            continuation.onTermination = { _ in task.cancel() }
        }
    }

    public var isReachable: Bool { self.client.breaker.state == .closed }

    public var health: BusHealth {
        let counters = self.counters
        return BusHealth(
            kind: "redis", circuit: self.client.breaker.state.rawValue, trimmedUnread: counters.trimmedUnreadTotal, vanished: counters.vanishedTotal)
    }
}
