import AsyncAlgorithms
import WaveProtocol

/// Where a new consumer group starts reading.
public enum GroupStart: Sendable, Hashable {
    /// Only entries added after the group is created (`$`).
    case newEntries
    /// Every entry in the stream (`0`).
    case beginning
    /// Entries after this id (`<ms>-<seq>`); WIRE.md's rule for a new `orchestrator` group.
    case after(String)

    /// The id given to `XGROUP CREATE`.
    public var id: String {
        switch self {
        case .newEntries: "$"
        case .beginning: "0"
        case .after(let id): id
        }
    }
}

/// How a consumer reads.
public struct ConsumerOptions: Sendable {
    /// The streams to read.
    public var streams: [String]
    /// The consumer group (created with MKSTREAM at ``start`` if missing).
    public var group: String
    /// This consumer's name; keep it stable across restarts so that own pending entries are
    /// re-read.
    public var consumer: String
    /// Where the group starts if it has to be created. Default: new entries only.
    public var start: GroupStart = .newEntries
    /// Most entries per read. Default 128.
    public var batchSize = 128
    /// How long one blocking read waits before it is issued again (never 0). Default 2 s.
    public var blockTime: Duration = .seconds(2)
    /// Entries idle this long are claimed again, whoever holds them. Default 30 s.
    public var reclaimAfter: Duration = .seconds(30)
    /// How often the reclaimer looks (maintenance interval). Default: half of ``reclaimAfter``.
    public var reclaimInterval: Duration?
    /// Deliveries a handler gets; the next delivery dead-letters the entry. Default 5.
    public var maxDeliveries = 5
    /// Payload limits for decoding.
    public var limits = EnvelopeLimits.default
    /// What the streams hold: envelopes (signals, system events) or tasks. Default envelopes.
    public var entries = EntryKind.envelopes

    /// What a consumer's streams hold; an entry that does not decode as such is dead-lettered.
    public enum EntryKind: Sendable, Hashable {
        /// Envelopes (`WIRE.md`, The envelope): ``Delivery/envelope``.
        case envelopes
        /// Task entries (`WIRE.md`, Tasks): ``Delivery/task``.
        case tasks
    }

    /// Creates options.
    public init(streams: [String], group: String, consumer: String) {
        self.streams = streams
        self.group = group
        self.consumer = consumer
    }

    /// How often the reclaimer looks: ``reclaimInterval``, else half of ``reclaimAfter``.
    public var effectiveReclaimInterval: Duration { self.reclaimInterval ?? self.reclaimAfter / 2 }
}

/// One entry delivered to a consumer.
public struct Delivery: Sendable, Hashable {
    /// The stream it was read from.
    public var stream: String
    /// Its entry id.
    public var id: String
    /// The group that read it.
    public var group: String
    /// The consumer that holds it.
    public var consumer: String
    /// The decoded envelope (on a consumer of ``ConsumerOptions/EntryKind/envelopes``).
    public var envelope: Envelope?
    /// The decoded task (on a consumer of ``ConsumerOptions/EntryKind/tasks``).
    public var task: TaskEntry?
    /// How many times it has been delivered (1 the first time).
    public var deliveryCount: Int
    /// The raw fields.
    public var fields: [StreamField]
}

/// One consumer group as the bus sees it.
public struct BusGroupInfo: Sendable, Hashable {
    /// The stream.
    public var stream: String
    /// The group.
    public var group: String
    /// Consumers in the group.
    public var consumers: Int
    /// Entries delivered and not acknowledged.
    public var pending: Int
    /// Entries not yet delivered to the group, if known.
    public var lag: Int?
    /// Entries the group has read, if known.
    public var entriesRead: Int?
}

/// A raw entry of a stream, as `wave tail` shows it.
public struct BusEntry: Sendable, Hashable {
    /// The entry id.
    public var id: String
    /// Its fields.
    public var fields: [StreamField]
}

/// The messaging layer: publish envelopes to streams, consume them as a member of a consumer
/// group, acknowledge, dead-letter. Implemented over Redis Streams (``RedisEventBus``) and in
/// memory with the same semantics (``InMemoryEventBus``).
///
/// Delivery is at least once: an entry stays pending until it is acknowledged, is re-read by its
/// consumer after a restart, and is claimed again by any consumer of the group once it has been
/// idle for ``ConsumerOptions/reclaimAfter``. Entries that cannot be decoded are dead-lettered at
/// once; an entry delivered more than ``ConsumerOptions/maxDeliveries`` times is dead-lettered
/// instead of delivered. A dead letter is written before the original is acknowledged.
public protocol EventBus: Sendable {
    /// Publishes an envelope; returns the entry id.
    func publish(_ envelope: Envelope, to stream: String) async throws -> String
    /// Publishes several envelopes in one round trip (pipelined); returns their ids in order.
    func publish(batch: [(stream: String, envelope: Envelope)]) async throws -> [String]
    /// Publishes raw fields (for tools and tests that must write what the reference writes).
    func publish(fields: [StreamField], to stream: String) async throws -> String
    /// Publishes several raw entries in one round trip (pipelined; task entries); returns their
    /// ids in order.
    func publish(entries: [(stream: String, fields: [StreamField])]) async throws -> [String]
    /// Creates a group (and the stream) unless it exists.
    func createGroup(_ group: String, on stream: String, start: GroupStart) async throws
    /// Deletes a group; `false` if it did not exist.
    @discardableResult func deleteGroup(_ group: String, on stream: String) async throws -> Bool
    /// Runs `body` with the deliveries of a consumer; stops reading when `body` returns.
    func withConsumer<Result: Sendable>(
        _ options: ConsumerOptions,
        _ body: (Deliveries) async throws -> Result
    ) async throws -> Result
    /// Acknowledges deliveries (pipelined).
    func acknowledge(_ deliveries: [Delivery]) async throws
    /// Claims a delivery again for its own consumer (`XCLAIM … JUSTID`), which resets its idle
    /// time: an agent's heartbeat, so that only a task whose agent stopped heartbeating is
    /// reclaimed by another. Returns `false` when the entry is no longer pending for it (another
    /// consumer took it, or it was acknowledged).
    @discardableResult func renew(_ delivery: Delivery) async throws -> Bool
    /// Dead-letters a delivery with a reason, then acknowledges it.
    func deadLetter(_ delivery: Delivery, reason: String) async throws
    /// The groups of a stream.
    func groups(of stream: String) async throws -> [BusGroupInfo]
    /// Entries of a stream without consuming them: the newest `count`, oldest first.
    func entries(of stream: String, count: Int) async throws -> [BusEntry]
    /// How many entries a stream holds (0 for a stream that does not exist).
    func length(of stream: String) async throws -> Int
    /// A group's pending entries (delivered, not acknowledged), oldest first, at most `count`.
    func pendingEntries(stream: String, group: String, count: Int) async throws -> [BusPendingEntry]
    /// Moves a group's pending entries to `consumer` without delivering them again (their
    /// delivery counts unchanged): every other consumer's (`from` nil), or one consumer's. How a
    /// project's new owner takes over what its old owner held in hand, and how an instance that
    /// lost a project hands its leftovers to the new owner. The consumer reads them first when it
    /// next reads its own pending entries.
    /// - Returns: how many entries moved.
    @discardableResult func transferPending(stream: String, group: String, from: String?, to consumer: String) async throws -> Int
    /// Marks a consumer's pending entries as idle for `idle` (delivery counts unchanged), so that
    /// the group's next reclaim (``ConsumerOptions/reclaimAfter`` no longer than `idle`) gives them
    /// to the consumer that reclaims: how an instance that lost a project leaves what it read
    /// meanwhile to the project's new owner at once, without knowing who that is.
    /// - Returns: how many entries were marked.
    @discardableResult func releasePending(stream: String, group: String, consumer: String, idle: Duration) async throws -> Int
    /// Entries the group has not acknowledged: pending ones and those not yet delivered, oldest
    /// first, at most `count` (what is still to be done by the group's consumers).
    func unacknowledged(stream: String, group: String, count: Int) async throws -> [BusEntry]
    /// The same entries as ``unacknowledged(stream:group:count:)``, reduced to the values of the
    /// named fields (`nil` where an entry has none), in order: a cheap look over a long backlog
    /// (a restart reads which results wait before it dispatches anything again). Redis builds
    /// the rows on the server, so a backlog of thousands costs one short string per entry.
    func unacknowledged(stream: String, group: String, count: Int, fields: [String]) async throws -> [[String?]]

    // MARK: What the orchestrator needs beyond streams (both buses, same contract)

    /// Deletes acknowledged history: never an entry some group has not read or acknowledged, and
    /// never the newest `keep` entries below that point. Streams without groups are left alone.
    /// - Returns: how many entries were deleted.
    @discardableResult func trimAcknowledged(stream: String, keep: Int) async throws -> Int
    /// A string key (the emergency-stop keys), `nil` when absent.
    func value(of key: String) async throws -> String?
    /// Sets a string key without expiry.
    func setValue(_ value: String, for key: String) async throws
    /// Deletes keys.
    func deleteValues(_ keys: [String]) async throws
    /// Publishes a message on a pub/sub channel (the reference's `wave:emergency`); returns how
    /// many subscribers received it.
    @discardableResult func broadcast(_ message: String, on channel: String) async throws -> Int
    /// Runs `body` with the messages of pub/sub channels. The sequence yields
    /// ``BusChannelEvent/subscribed`` first and again after every re-subscription (a reconnect),
    /// so that the caller can re-read what it may have missed; it ends when `body` returns.
    func withSubscription<Result: Sendable>(
        channels: [String], _ body: (AsyncStream<BusChannelEvent>) async throws -> Result
    ) async throws -> Result
    /// Each time the bus can be reached again after it could not (Redis back, its breaker
    /// closed), one element; the sequence ends at once on a bus that is never away.
    func reachableAgain() -> AsyncStream<Void>
    /// Whether the bus can be reached now, as far as it knows.
    var isReachable: Bool { get }
    /// Its counters and connection state, for `wave status`.
    var health: BusHealth { get }
}

/// An event of a pub/sub subscription (``EventBus/withSubscription(channels:_:)``).
public enum BusChannelEvent: Sendable, Hashable {
    /// Every channel is subscribed (the first time, or again after a reconnect).
    case subscribed
    /// A message on a channel.
    case message(channel: String, payload: String)
}

/// A bus's counters and connection state (``EventBus/health``).
public struct BusHealth: Sendable, Hashable {
    /// `redis` or `embedded`.
    public var kind: String
    /// `closed`, `open` or `half_open` (the Redis client's breaker; `closed` in memory).
    public var circuit: String
    /// Entries trimmed from a stream before a group read them (other publishers' `MAXLEN`).
    public var trimmedUnread: Int
    /// Entries that vanished with Redis before they were read, counted from senders' `seq` gaps.
    public var vanished: Int

    /// Creates a health record.
    public init(kind: String, circuit: String = "closed", trimmedUnread: Int = 0, vanished: Int = 0) {
        self.kind = kind
        self.circuit = circuit
        self.trimmedUnread = trimmedUnread
        self.vanished = vanished
    }
}

/// One pending entry of a group.
public struct BusPendingEntry: Sendable, Hashable {
    /// The entry id.
    public var id: String
    /// The consumer that holds it.
    public var consumer: String
    /// Time since it was last delivered.
    public var idle: Duration
    /// How many times it was delivered.
    public var deliveryCount: Int
}

/// The dead-letter stream for a source stream: `wave:{kind}:{project}…` → `wave:dlq:{project}`.
public func deadLetterStream(for stream: String) -> String {
    let parts = stream.split(separator: ":", maxSplits: 3, omittingEmptySubsequences: false)
    guard parts.count >= 3, parts[0] == "wave" else { return "wave:dlq:\(stream)" }
    return "wave:dlq:\(parts[2])"
}

/// What happens to an entry read from a stream: delivered, or dead-lettered with a reason.
enum Judgement: Sendable {
    case deliver(Envelope?, TaskEntry?)
    case deadLetter(reason: String, handlerRuns: Int)

    static func judge(fields: [StreamField], stream: String, id: String, deliveryCount: Int, options: ConsumerOptions) -> Judgement {
        var envelope: Envelope?
        var task: TaskEntry?
        do {
            switch options.entries {
            case .envelopes: envelope = try Envelope(decoding: fields, stream: stream, entryID: id, limits: options.limits)
            case .tasks: task = try TaskEntry(decoding: fields)
            }
        } catch let error as EnvelopeDecodingError {
            return .deadLetter(reason: error.dlqError, handlerRuns: max(0, deliveryCount - 1))
        } catch {
            return .deadLetter(reason: "invalid_task: \(error)", handlerRuns: max(0, deliveryCount - 1))
        }
        if deliveryCount > options.maxDeliveries {
            return .deadLetter(
                reason: "max_deliveries: the handler did not succeed in \(options.maxDeliveries) deliveries",
                handlerRuns: options.maxDeliveries
            )
        }
        return .deliver(envelope, task)
    }
}

/// The deliveries of one consumer, in the order they were read.
///
/// The reader hands over whole reads (up to ``ConsumerOptions/batchSize`` entries) and does not
/// read again until the previous one has been taken, so a slow handler holds back reading instead
/// of piling entries up in memory, where they would sit idle and be reclaimed while still queued.
/// Iterate it with `for await`, one delivery at a time, or take a read at once with
/// ``AsyncIterator/nextBatch()``.
public struct Deliveries: AsyncSequence, Sendable {
    public typealias Element = Delivery
    let channel: AsyncChannel<[Delivery]>

    public func makeAsyncIterator() -> AsyncIterator {
        AsyncIterator(base: self.channel.makeAsyncIterator())
    }

    /// Iterates deliveries, taking one read from the consumer at a time.
    public struct AsyncIterator: AsyncIteratorProtocol {
        var base: AsyncChannel<[Delivery]>.Iterator
        var buffer: [Delivery] = []
        var index = 0

        /// The next delivery; `nil` once the consumer has stopped.
        public mutating func next() async -> Delivery? {
            while self.index == self.buffer.count {
                guard let batch = await self.base.next() else { return nil }
                self.buffer = batch
                self.index = 0
            }
            defer { self.index += 1 }
            return self.buffer[self.index]
        }

        /// The rest of the current read, or the next read whole; `nil` once the consumer has
        /// stopped. Never empty.
        public mutating func nextBatch() async -> [Delivery]? {
            if self.index < self.buffer.count {
                defer {
                    self.buffer = []
                    self.index = 0
                }
                return Array(self.buffer[self.index...])
            }
            while true {
                guard let batch = await self.base.next() else { return nil }
                if !batch.isEmpty { return batch }
            }
        }
    }
}

/// Where a consumer's loops hand over what they read.
struct DeliverySink: Sendable {
    let channel: AsyncChannel<[Delivery]>

    /// Hands over one read; returns when the consumer has taken it (or stopped).
    func send(_ batch: [Delivery]) async {
        guard !batch.isEmpty else { return }
        await self.channel.send(batch)
    }
}

/// Runs a consumer's read loop and reclaimer as child tasks feeding one sequence of deliveries,
/// runs `body` with it, and stops both loops when `body` returns.
func runConsumerLoops<Result: Sendable>(
    read: @escaping @Sendable (DeliverySink) async -> Void,
    reclaim: @escaping @Sendable (DeliverySink) async -> Void,
    _ body: (Deliveries) async throws -> Result
) async throws -> Result {
    let channel = AsyncChannel<[Delivery]>()
    let sink = DeliverySink(channel: channel)
    return try await withThrowingTaskGroup(of: Void.self) { group in
        group.addTask { await read(sink) }
        group.addTask { await reclaim(sink) }
        defer {
            group.cancelAll()
            channel.finish()
        }
        return try await body(Deliveries(channel: channel))
    }
}
