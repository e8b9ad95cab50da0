import Foundation
import WaveProtocol

/// The event bus in one process: the embedded default and the fast test path, with the same
/// semantics as Redis Streams consumer groups (entry ids, groups with a last-delivered id,
/// pending entries with owners and delivery counts, reclaiming idle entries, dead letters).
///
/// Consumers waiting for entries are resumed by the publish that adds them; nothing polls.
public actor InMemoryEventBus: EventBus {
    struct EntryID: Comparable, Hashable {
        var ms: UInt64
        var seq: UInt64
        init(ms: UInt64, seq: UInt64) {
            self.ms = ms
            self.seq = seq
        }
        init?(_ text: String) {
            let parts = text.split(separator: "-")
            guard let ms = UInt64(parts.first ?? ""), parts.count <= 2 else { return nil }
            self.ms = ms
            self.seq = parts.count == 2 ? UInt64(parts[1]) ?? 0 : 0
        }
        var text: String { "\(self.ms)-\(self.seq)" }
        static func < (a: EntryID, b: EntryID) -> Bool { (a.ms, a.seq) < (b.ms, b.seq) }
    }

    struct Pending {
        var consumer: String
        var deliveries: Int
        var lastDelivered: ContinuousClock.Instant
    }

    struct Group {
        var lastDelivered: EntryID
        var pending: [EntryID: Pending] = [:]
        var consumers: Set<String> = []
        var entriesRead = 0
    }

    struct Stream {
        var entries: [(id: EntryID, fields: [StreamField])] = []
        var lastID = EntryID(ms: 0, seq: 0)
        var groups: [String: Group] = [:]
    }

    private var streams: [String: Stream] = [:]
    private var values: [String: String] = [:]
    private var subscribers: [UUID: (channels: Set<String>, continuation: AsyncStream<BusChannelEvent>.Continuation)] = [:]
    private var waiters: [UUID: (streams: Set<String>, continuation: CheckedContinuation<Void, Never>)] = [:]

    /// Creates an empty bus.
    public init() {}

    // MARK: Publishing

    public func publish(_ envelope: Envelope, to stream: String) async throws -> String {
        self.append(envelope.fields, to: stream)
    }

    public func publish(batch: [(stream: String, envelope: Envelope)]) async throws -> [String] {
        batch.map { self.append($0.envelope.fields, to: $0.stream) }
    }

    public func publish(fields: [StreamField], to stream: String) async throws -> String {
        self.append(fields, to: stream)
    }

    public func publish(entries: [(stream: String, fields: [StreamField])]) async throws -> [String] {
        entries.map { self.append($0.fields, to: $0.stream) }
    }

    private func append(_ fields: [StreamField], to name: String) -> String {
        var stream = self.streams[name] ?? Stream()
        let now = UInt64(max(0, Date().timeIntervalSince1970 * 1000))
        let id = now > stream.lastID.ms ? EntryID(ms: now, seq: 0) : EntryID(ms: stream.lastID.ms, seq: stream.lastID.seq + 1)
        stream.entries.append((id, fields))
        stream.lastID = id
        self.streams[name] = stream
        self.wake(stream: name)
        return id.text
    }

    private func wake(stream: String) {
        for (token, waiter) in self.waiters where waiter.streams.contains(stream) {
            self.waiters[token] = nil
            waiter.continuation.resume()
        }
    }

    // MARK: Groups

    public func createGroup(_ group: String, on stream: String, start: GroupStart) async throws {
        var value = self.streams[stream] ?? Stream()
        guard value.groups[group] == nil else { return }
        let last: EntryID
        switch start {
        case .newEntries: last = value.lastID
        case .beginning: last = EntryID(ms: 0, seq: 0)
        case .after(let id):
            guard let parsed = EntryID(id) else { throw BusError.invalidArgument("\(id) is not a stream id") }
            last = parsed
        }
        value.groups[group] = Group(lastDelivered: last, entriesRead: value.entries.filter { $0.id <= last }.count)
        self.streams[stream] = value
    }

    @discardableResult
    public func deleteGroup(_ group: String, on stream: String) async throws -> Bool {
        self.streams[stream]?.groups.removeValue(forKey: group) != nil
    }

    public func groups(of stream: String) async throws -> [BusGroupInfo] {
        guard let value = self.streams[stream] else { return [] }
        return value.groups.map { name, group in
            BusGroupInfo(
                stream: stream, group: name, consumers: group.consumers.count, pending: group.pending.count,
                lag: value.entries.filter { $0.id > group.lastDelivered }.count, entriesRead: group.entriesRead
            )
        }.sorted { $0.group < $1.group }
    }

    public func entries(of stream: String, count: Int) async throws -> [BusEntry] {
        guard let value = self.streams[stream] else { return [] }
        return value.entries.suffix(max(0, count)).map { BusEntry(id: $0.id.text, fields: $0.fields) }
    }

    public func length(of stream: String) async throws -> Int {
        self.streams[stream]?.entries.count ?? 0
    }

    public func pendingEntries(stream: String, group: String, count: Int) async throws -> [BusPendingEntry] {
        guard let pending = self.streams[stream]?.groups[group]?.pending else { return [] }
        let now = ContinuousClock.now
        return pending.sorted { $0.key < $1.key }.prefix(max(0, count)).map {
            BusPendingEntry(id: $0.key.text, consumer: $0.value.consumer, idle: now - $0.value.lastDelivered, deliveryCount: $0.value.deliveries)
        }
    }

    @discardableResult
    public func transferPending(stream: String, group: String, from: String?, to consumer: String) async throws -> Int {
        guard var info = self.streams[stream]?.groups[group] else { return 0 }
        var moved = 0
        for (id, entry) in info.pending where entry.consumer != consumer && (from == nil || entry.consumer == from) {
            info.pending[id]?.consumer = consumer
            moved += 1
        }
        info.consumers.insert(consumer)
        self.streams[stream]?.groups[group] = info
        return moved
    }

    @discardableResult
    public func releasePending(stream: String, group: String, consumer: String, idle: Duration) async throws -> Int {
        guard var info = self.streams[stream]?.groups[group] else { return 0 }
        let then = ContinuousClock.now - idle
        var marked = 0
        for (id, entry) in info.pending where entry.consumer == consumer {
            info.pending[id]?.lastDelivered = then
            marked += 1
        }
        self.streams[stream]?.groups[group] = info
        return marked
    }

    public func unacknowledged(stream: String, group: String, count: Int) async throws -> [BusEntry] {
        guard let state = self.streams[stream], let info = state.groups[group] else { return [] }
        return state.entries.filter { info.pending[$0.id] != nil || info.lastDelivered < $0.id }.prefix(max(0, count))
            .map { BusEntry(id: $0.id.text, fields: $0.fields) }
    }

    // MARK: Maintenance, keys, channels (the same contract as Redis)

    @discardableResult
    public func trimAcknowledged(stream: String, keep: Int) async throws -> Int {
        guard var value = self.streams[stream], !value.groups.isEmpty else { return 0 }
        // The oldest entry some group still needs: its oldest pending entry, else the first
        // entry after its last-delivered id.
        var safe: EntryID? = nil
        for group in value.groups.values {
            let needed = group.pending.keys.min() ?? value.entries.first { $0.id > group.lastDelivered }?.id
            guard let needed else { continue }
            if safe == nil || needed < safe! { safe = needed }
        }
        let below = safe.map { safe in value.entries.prefix { $0.id < safe }.count } ?? value.entries.count
        let removable = max(0, below - max(1, keep))
        guard removable > 0 else { return 0 }
        value.entries.removeFirst(removable)
        self.streams[stream] = value
        return removable
    }

    public func value(of key: String) async throws -> String? { self.values[key] }

    public func setValue(_ value: String, for key: String) async throws { self.values[key] = value }

    public func deleteValues(_ keys: [String]) async throws {
        for key in keys { self.values[key] = nil }
    }

    @discardableResult
    public func broadcast(_ message: String, on channel: String) async throws -> Int {
        let receivers = self.subscribers.values.filter { $0.channels.contains(channel) }
        for receiver in receivers { receiver.continuation.yield(.message(channel: channel, payload: message)) }
        return receivers.count
    }

    public nonisolated func withSubscription<Result: Sendable>(
        channels: [String], _ body: (AsyncStream<BusChannelEvent>) async throws -> Result
    ) async throws -> Result {
        let (stream, continuation) = AsyncStream.makeStream(of: BusChannelEvent.self, bufferingPolicy: .bufferingNewest(10_000))
        let id = UUID()
        await self.subscribe(id, channels: Set(channels), continuation)
        continuation.yield(.subscribed)
        do {
            let result = try await body(stream)
            await self.unsubscribe(id)
            return result
        } catch {
            await self.unsubscribe(id)
            throw error
        }
    }

    private func subscribe(_ id: UUID, channels: Set<String>, _ continuation: AsyncStream<BusChannelEvent>.Continuation) {
        self.subscribers[id] = (channels, continuation)
    }

    private func unsubscribe(_ id: UUID) {
        self.subscribers.removeValue(forKey: id)?.continuation.finish()
    }

    /// Memory is never away: the sequence ends at once.
    public nonisolated func reachableAgain() -> AsyncStream<Void> { AsyncStream { $0.finish() } }

    public nonisolated var isReachable: Bool { true }

    public nonisolated var health: BusHealth { BusHealth(kind: "embedded") }

    public func unacknowledged(stream: String, group: String, count: Int, fields names: [String]) async throws -> [[String?]] {
        try await self.unacknowledged(stream: stream, group: group, count: count).map { entry in
            names.map { name in entry.fields.first { $0.name == name }?.value }
        }
    }

    // MARK: Acknowledging and dead letters

    public func acknowledge(_ deliveries: [Delivery]) async throws {
        for delivery in deliveries {
            guard let id = EntryID(delivery.id) else { continue }
            self.streams[delivery.stream]?.groups[delivery.group]?.pending[id] = nil
        }
    }

    @discardableResult
    public func renew(_ delivery: Delivery) async throws -> Bool {
        guard let id = EntryID(delivery.id), var pending = self.streams[delivery.stream]?.groups[delivery.group]?.pending[id],
            pending.consumer == delivery.consumer
        else { return false }
        pending.lastDelivered = ContinuousClock.now
        self.streams[delivery.stream]?.groups[delivery.group]?.pending[id] = pending
        return true
    }

    public func deadLetter(_ delivery: Delivery, reason: String) async throws {
        self.writeDeadLetter(
            fields: delivery.fields, id: delivery.id, stream: delivery.stream, group: delivery.group, reason: reason, handlerRuns: delivery.deliveryCount)
        try await self.acknowledge([delivery])
    }

    private func writeDeadLetter(fields: [StreamField], id: String, stream: String, group: String, reason: String, handlerRuns: Int) {
        let letter = DeadLetter(originalFields: fields, error: reason, originalID: id, sourceStream: stream, group: group, deliveryCount: handlerRuns)
        _ = self.append(letter.fields, to: deadLetterStream(for: stream))
    }

    // MARK: Consuming

    public nonisolated func withConsumer<Result: Sendable>(
        _ options: ConsumerOptions,
        _ body: (Deliveries) async throws -> Result
    ) async throws -> Result {
        for stream in options.streams { try await self.createGroup(options.group, on: stream, start: options.start) }
        return try await runConsumerLoops(
            read: { await self.readLoop(options, $0) },
            reclaim: { await self.reclaimLoop(options, $0) },
            body
        )
    }

    private func readLoop(_ options: ConsumerOptions, _ sink: DeliverySink) async {
        // Own pending entries first (a restarted consumer re-reads what it held).
        await sink.send(self.takeOwnPending(options).compactMap { self.judge($0, options) })
        while !Task.isCancelled {
            let batch = self.takeNew(options)
            if batch.isEmpty {
                await self.waitForEntries(on: Set(options.streams))
                continue
            }
            await sink.send(batch.compactMap { self.judge($0, options) })
            // Let other consumers of the group take their turn, as a round trip to Redis would.
            await Task.yield()
        }
    }

    private func reclaimLoop(_ options: ConsumerOptions, _ sink: DeliverySink) async {
        while !Task.isCancelled {
            // Maintenance on the configured reclaim interval.
            // sleep: interval reclaimInterval
            do { try await Task.sleep(for: options.effectiveReclaimInterval) } catch { return }
            await sink.send(self.reclaimIdle(options, now: .now).compactMap { self.judge($0, options) })
        }
    }

    private struct Raw {
        var stream: String
        var id: EntryID
        var fields: [StreamField]
        var deliveries: Int
    }

    /// The delivery for an entry, or `nil` when it was dead-lettered instead.
    private func judge(_ raw: Raw, _ options: ConsumerOptions) -> Delivery? {
        switch Judgement.judge(fields: raw.fields, stream: raw.stream, id: raw.id.text, deliveryCount: raw.deliveries, options: options) {
        case .deliver(let envelope, let task):
            return Delivery(
                stream: raw.stream, id: raw.id.text, group: options.group, consumer: options.consumer,
                envelope: envelope, task: task, deliveryCount: raw.deliveries, fields: raw.fields)
        case .deadLetter(let reason, let runs):
            self.writeDeadLetter(fields: raw.fields, id: raw.id.text, stream: raw.stream, group: options.group, reason: reason, handlerRuns: runs)
            self.streams[raw.stream]?.groups[options.group]?.pending[raw.id] = nil
            return nil
        }
    }

    private func takeOwnPending(_ options: ConsumerOptions) -> [Raw] {
        var result: [Raw] = []
        for name in options.streams {
            guard var stream = self.streams[name], var group = stream.groups[options.group] else { continue }
            group.consumers.insert(options.consumer)
            for entry in stream.entries where group.pending[entry.id]?.consumer == options.consumer {
                group.pending[entry.id]!.deliveries += 1
                group.pending[entry.id]!.lastDelivered = .now
                result.append(Raw(stream: name, id: entry.id, fields: entry.fields, deliveries: group.pending[entry.id]!.deliveries))
            }
            stream.groups[options.group] = group
            self.streams[name] = stream
        }
        return result
    }

    private func takeNew(_ options: ConsumerOptions) -> [Raw] {
        var result: [Raw] = []
        for name in options.streams {
            guard var stream = self.streams[name], var group = stream.groups[options.group] else { continue }
            group.consumers.insert(options.consumer)
            for entry in stream.entries where entry.id > group.lastDelivered {
                if result.count >= options.batchSize { break }
                group.lastDelivered = entry.id
                group.entriesRead += 1
                group.pending[entry.id] = Pending(consumer: options.consumer, deliveries: 1, lastDelivered: .now)
                result.append(Raw(stream: name, id: entry.id, fields: entry.fields, deliveries: 1))
            }
            stream.groups[options.group] = group
            self.streams[name] = stream
        }
        return result
    }

    private func reclaimIdle(_ options: ConsumerOptions, now: ContinuousClock.Instant) -> [Raw] {
        var result: [Raw] = []
        for name in options.streams {
            guard var stream = self.streams[name], var group = stream.groups[options.group] else { continue }
            for entry in stream.entries {
                guard let pending = group.pending[entry.id], now - pending.lastDelivered >= options.reclaimAfter else { continue }
                let deliveries = pending.deliveries + 1
                group.pending[entry.id] = Pending(consumer: options.consumer, deliveries: deliveries, lastDelivered: now)
                result.append(Raw(stream: name, id: entry.id, fields: entry.fields, deliveries: deliveries))
            }
            stream.groups[options.group] = group
            self.streams[name] = stream
        }
        return result
    }

    private func waitForEntries(on streams: Set<String>) async {
        let token = UUID()
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                if Task.isCancelled {
                    continuation.resume()
                } else {
                    self.waiters[token] = (streams, continuation)
                }
            }
        } onCancel: {
            Task { await self.cancelWait(token) }
        }
    }

    private func cancelWait(_ token: UUID) {
        self.waiters.removeValue(forKey: token)?.continuation.resume()
    }
}

/// A bus operation could not be done.
public struct BusError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public var description: String

    static func invalidArgument(_ text: String) -> BusError { BusError(description: text) }
}
