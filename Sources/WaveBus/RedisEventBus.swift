import Logging
import RESP
import Synchronization
import WaveProtocol
import WaveRedis

/// The event bus over Redis Streams consumer groups.
///
/// A consumer reads on a connection of its own (blocking reads never delay other commands):
/// first its own pending entries from `0`, then new ones with `>`; a reclaimer claims every entry
/// idle past ``ConsumerOptions/reclaimAfter`` with `XAUTOCLAIM`, following the cursor, whoever
/// holds it. After a connection loss the consumer reconnects with backoff, recreates missing
/// groups and starts again with its own pending entries.
public struct RedisEventBus: EventBus {
    /// The client.
    public let client: RedisClient
    let logger: Logger
    let ledger = BusLedger()
    /// Attempts per publish when the connection fails (the first one included). Default 3.
    public var publishAttempts = 3

    /// Creates a bus over a client.
    public init(client: RedisClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    static func redisFields(_ fields: [StreamField]) -> [(name: String, value: String)] {
        fields.map { ($0.name, $0.value) }
    }

    // MARK: Publishing

    public func publish(_ envelope: Envelope, to stream: String) async throws -> String {
        let command = EnvelopeXAdd(stream: stream, envelope: envelope)
        return try await self.retryingPublish {
            guard let id = try await self.client.send(command) else { throw BusError.invalidArgument("XADD returned no id") }
            return id
        }
    }

    public func publish(batch: [(stream: String, envelope: Envelope)]) async throws -> [String] {
        let commands = batch.map { EnvelopeXAdd(stream: $0.stream, envelope: $0.envelope) }
        return try await self.retryingPublish {
            try await self.client.pipeline(batch: commands).map { result in
                guard let id = try result.get() else { throw BusError.invalidArgument("XADD returned no id") }
                return id
            }
        }
    }

    public func publish(fields: [StreamField], to stream: String) async throws -> String {
        let command = XAddCommand(stream, fields: Self.redisFields(fields))
        return try await self.retryingPublish {
            guard let id = try await self.client.send(command) else { throw BusError.invalidArgument("XADD returned no id") }
            return id
        }
    }

    public func publish(entries: [(stream: String, fields: [StreamField])]) async throws -> [String] {
        let commands = entries.map { XAddCommand($0.stream, fields: Self.redisFields($0.fields)) }
        return try await self.retryingPublish {
            try await self.client.pipeline(batch: commands).map { result in
                guard let id = try result.get() else { throw BusError.invalidArgument("XADD returned no id") }
                return id
            }
        }
    }

    /// Publishes, retrying after a connection failure with the reconnect backoff
    /// (``publishAttempts`` in all). A retry writes the very same fields, `message_id` included, so an entry that was
    /// in fact written before the connection broke is recognised downstream as a duplicate.
    private func retryingPublish<Result: Sendable>(_ publish: () async throws -> Result) async throws -> Result {
        var attempt = 0
        while true {
            do {
                return try await publish()
            } catch let error as RedisClientError where (error.isConnectionFailure || error.code == .connectionFailed) && attempt < self.publishAttempts - 1 {
                let delay = self.client.configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                self.logger.debug("publish failed; retrying with the same message ids", metadata: ["wave.error": "\(error)"])
                // sleep: backoff
                try await Task.sleep(for: delay)
            }
        }
    }

    // MARK: Groups

    public func createGroup(_ group: String, on stream: String, start: GroupStart) async throws {
        _ = try await self.client.send(XGroupCreateCommand(stream, group: group, startID: start.id))
    }

    @discardableResult
    public func deleteGroup(_ group: String, on stream: String) async throws -> Bool {
        do {
            return try await self.client.send(XGroupDestroyCommand(stream, group: group))
        } catch let error as RedisClientError where error.serverMessage?.contains("no such key") == true {
            return false
        }
    }

    public func groups(of stream: String) async throws -> [BusGroupInfo] {
        do {
            return try await self.client.send(XInfoGroupsCommand(stream)).map {
                BusGroupInfo(stream: stream, group: $0.name, consumers: $0.consumers, pending: $0.pending, lag: $0.lag, entriesRead: $0.entriesRead)
            }
        } catch let error as RedisClientError where error.serverMessage?.contains("no such key") == true {
            return []
        }
    }

    public func entries(of stream: String, count: Int) async throws -> [BusEntry] {
        let newest = try await self.client.send(XRangeCommand(stream, count: count, reverse: true))
        return newest.reversed().map { BusEntry(id: $0.id, fields: $0.fields.map { StreamField($0.name, $0.value) }) }
    }

    @discardableResult
    public func transferPending(stream: String, group: String, from: String?, to consumer: String) async throws -> Int {
        try await self.claimPending(stream: stream, group: group, heldBy: from, for: consumer, idle: nil)
    }

    @discardableResult
    public func releasePending(stream: String, group: String, consumer: String, idle: Duration) async throws -> Int {
        try await self.claimPending(stream: stream, group: group, heldBy: consumer, for: consumer, idle: idle)
    }

    /// Claims for `consumer`, a page of `XPENDING` at a time, the group's pending entries that
    /// `holder` holds (every consumer's: `nil`), with `JUSTID` (the entries change hands without
    /// counting as delivered again); `idle` sets how long they look idle. Entries `consumer`
    /// holds already are left alone unless `idle` is set. A missing stream or group: 0.
    private func claimPending(stream: String, group: String, heldBy holder: String?, for consumer: String, idle: Duration?) async throws -> Int {
        var claimed = 0
        var start = "-"
        while true {
            let page: [PendingEntry]
            do {
                page = try await self.client.send(XPendingCommand(stream, group: group, start: start, count: 1_000, consumer: holder))
            } catch let error as RedisClientError where error.serverMessage.map({ $0.contains("NOGROUP") || $0.contains("no such key") }) == true {
                return claimed
            }
            let ids = page.filter { idle != nil || $0.consumer != consumer }.map(\.id)
            if !ids.isEmpty {
                claimed += try await self.client.send(XClaimCommand(stream, group: group, consumer: consumer, ids: ids, idle: idle, justID: true)).ids.count
            }
            guard page.count == 1_000, let last = page.last else { return claimed }
            start = "(\(last.id)"
        }
    }

    /// A group's last-delivered id and its pending ids (oldest first); `nil` when the stream or
    /// the group does not exist.
    func unacknowledgedRange(stream: String, group: String, count: Int) async throws -> (lastDelivered: String, pending: [String])? {
        let info: StreamGroupInfo
        do {
            guard let found = try await self.client.send(XInfoGroupsCommand(stream)).first(where: { $0.name == group }) else { return nil }
            info = found
        } catch let error as RedisClientError where error.serverMessage?.contains("no such key") == true {
            return nil
        }
        let pending =
            info.pending > 0
            ? try await self.client.send(XPendingCommand(stream, group: group, count: max(count, info.pending))).map(\.id)
            : []
        return (info.lastDeliveredID, pending)
    }

    /// Selects, on the server, a group's unacknowledged entries in stream order: each pending id
    /// looked up by itself (an entry trimmed meanwhile is skipped), then the entries after the
    /// last delivered id. Nothing acknowledged is read or sent, however long the history between
    /// an old pending entry and the tail. `emit(entry)` adds one entry to `rows`.
    /// ARGV: last delivered id, most entries, then the script's own arguments, then the pending ids
    /// from index `first`.
    static func selectionScript(first: String, prelude: String, emit: String) -> String {
        """
        local last, count = ARGV[1], tonumber(ARGV[2])
        local rows = {}
        \(prelude)
        for i = \(first), #ARGV do
            if #rows >= count then break end
            local found = redis.call('XRANGE', KEYS[1], ARGV[i], ARGV[i])
            if found[1] then \(emit)(found[1]) end
        end
        if #rows < count then
            for _, entry in ipairs(redis.call('XRANGE', KEYS[1], '(' .. last, '+', 'COUNT', count - #rows)) do \(emit)(entry) end
        end
        return rows
        """
    }

    /// The unacknowledged entries whole, as `XRANGE` returns them.
    static let unacknowledgedScript = selectionScript(
        first: "3", prelude: "local function add(entry) rows[#rows + 1] = entry end", emit: "add")

    /// The unacknowledged entries reduced to the named fields, joined into one string per entry
    /// (unit separator between values, record separator for a missing one; the first field of a
    /// name wins), so that the reply is one bulk string per entry. ARGV[3] is the number of names.
    static let projectionScript = selectionScript(
        first: "4 + tonumber(ARGV[3])",
        prelude: """
            local nnames = tonumber(ARGV[3])
            local index = {}
            for i = 1, nnames do index[ARGV[3 + i]] = i end
            local function project(entry)
                local values = {}
                for i = 1, nnames do values[i] = '\\30' end
                local flat = entry[2]
                for j = #flat - 1, 1, -2 do
                    local i = index[flat[j]]
                    if i then values[i] = flat[j + 1] end
                end
                rows[#rows + 1] = table.concat(values, '\\31')
            end
            """,
        emit: "project")

    public func unacknowledged(stream: String, group: String, count: Int) async throws -> [BusEntry] {
        guard let range = try await self.unacknowledgedRange(stream: stream, group: group, count: count) else { return [] }
        let reply = try await self.client.send(
            EvalCommand(script: Self.unacknowledgedScript, keys: [stream], arguments: [range.lastDelivered, String(count)] + range.pending))
        var cursor = RESPCursor(reply)
        return try StreamEntry.readList(from: &cursor).map { BusEntry(id: $0.id, fields: $0.fields.map { StreamField($0.name, $0.value) }) }
    }

    public func unacknowledged(stream: String, group: String, count: Int, fields names: [String]) async throws -> [[String?]] {
        guard let range = try await self.unacknowledgedRange(stream: stream, group: group, count: count) else { return [] }
        let reply = try await self.client.send(
            EvalCommand(
                script: Self.projectionScript, keys: [stream],
                arguments: [range.lastDelivered, String(count), String(names.count)] + names + range.pending))
        let rows = try [String](fromRESP: reply)
        return rows.map { row in
            row.split(separator: "\u{1F}", omittingEmptySubsequences: false).map { $0 == "\u{1E}" ? nil : String($0) }
        }
    }

    public func length(of stream: String) async throws -> Int {
        try await self.client.send(XLenCommand(stream))
    }

    /// Re-claims an entry for its consumer only while it still holds it, in one step on the
    /// server (a script), so that an entry another consumer has just claimed is never taken back.
    static let renewScript = """
        local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[3], 1)
        if #pending == 1 and pending[1][2] == ARGV[2] then
            redis.call('XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0, ARGV[3], 'JUSTID')
            return 1
        end
        return 0
        """

    @discardableResult
    public func renew(_ delivery: Delivery) async throws -> Bool {
        let reply = try await self.client.send(
            EvalCommand(
                script: Self.renewScript, keys: [delivery.stream],
                arguments: [delivery.group, delivery.consumer, delivery.id]))
        return try Int(fromRESP: reply) == 1
    }

    public func pendingEntries(stream: String, group: String, count: Int) async throws -> [BusPendingEntry] {
        try await self.client.send(XPendingCommand(stream, group: group, count: count)).map {
            BusPendingEntry(id: $0.id, consumer: $0.consumer, idle: .milliseconds($0.idleMilliseconds), deliveryCount: $0.deliveryCount)
        }
    }

    // MARK: Acknowledging and dead letters

    public func acknowledge(_ deliveries: [Delivery]) async throws {
        // One XACK per (stream, group), in order of first appearance; a consumer reads few streams,
        // so a linear search beats hashing a key per delivery.
        var commands: [XAckCommand] = []
        for delivery in deliveries {
            if let index = commands.lastIndex(where: { $0.key == delivery.stream && $0.group == delivery.group }) {
                commands[index].ids.append(delivery.id)
            } else {
                var command = XAckCommand(delivery.stream, group: delivery.group, ids: [delivery.id])
                command.ids.reserveCapacity(deliveries.count)
                commands.append(command)
            }
        }
        guard !commands.isEmpty else { return }
        for result in try await self.client.pipeline(batch: commands) { _ = try result.get() }
    }

    public func deadLetter(_ delivery: Delivery, reason: String) async throws {
        try await self.writeDeadLetter(
            fields: delivery.fields, id: delivery.id, stream: delivery.stream, group: delivery.group, reason: reason, handlerRuns: delivery.deliveryCount)
    }

    /// Writes the dead letter, and only when that succeeded acknowledges the original.
    func writeDeadLetter(fields: [StreamField], id: String, stream: String, group: String, reason: String, handlerRuns: Int) async throws {
        let letter = DeadLetter(originalFields: fields, error: reason, originalID: id, sourceStream: stream, group: group, deliveryCount: handlerRuns)
        _ = try await self.publish(fields: letter.fields, to: deadLetterStream(for: stream))
        _ = try await self.client.send(XAckCommand(stream, group: group, ids: [id]))
        self.ledger.state.withLock { $0.counters.deadLettered += 1 }
        self.logger.warning(
            "dead-lettered an entry",
            metadata: ["wave.stream": "\(stream)", "wave.entry": "\(id)", "wave.reason": "\(reason.prefix(120))"]
        )
    }

    // MARK: Consuming

    public func withConsumer<Result: Sendable>(
        _ options: ConsumerOptions,
        _ body: (Deliveries) async throws -> Result
    ) async throws -> Result {
        for stream in options.streams {
            do {
                try await self.createGroup(options.group, on: stream, start: options.start)
                try await self.accountTrimming(stream: stream, group: options.group)
            } catch let error as RedisClientError where error.isConnectionFailure || error.code == .connectionFailed || error.code == .circuitOpen {
                // Redis is away: the read loop reconnects with backoff and creates the group
                // when its read says it is missing (NOGROUP), so consuming starts when Redis is back.
                self.logger.warning(
                    "Redis unreachable while joining the group; consuming starts when it is back",
                    metadata: [
                        "wave.stream": "\(stream)", "wave.group": "\(options.group)", "wave.error": "\(error)",
                    ])
            }
        }
        let (ownPendingReadOnce, ownPendingRead) = AsyncStream.makeStream(of: Void.self, bufferingPolicy: .bufferingNewest(1))
        let result = try await runConsumerLoops(
            read: { await self.readLoop(options, $0, ownPendingRead: ownPendingRead) },
            reclaim: { sink in
                // Reclaim only once this consumer has re-read its own pending entries: otherwise an
                // entry the reclaimer just claimed into this consumer's pending list would be read
                // again as its own and delivered twice.
                for await _ in ownPendingReadOnce { break }
                await self.reclaimLoop(options, sink)
            },
            body
        )
        // Remember where the group stands, so that entries trimmed while nobody reads are counted.
        for stream in options.streams { _ = try? await self.accountTrimming(stream: stream, group: options.group) }
        return result
    }

    private func readLoop(_ options: ConsumerOptions, _ sink: DeliverySink, ownPendingRead: AsyncStream<Void>.Continuation) async {
        defer { ownPendingRead.finish() }
        // The newest entry read per stream: where a group that Redis lost is created again.
        let lastSeen = Mutex<[String: String]>([:])
        // Each sender's numbering per stream: what vanished with Redis is counted from its gaps.
        let sequences = Mutex<[String: SenderSequences]>([:])
        var attempt = 0
        while !Task.isCancelled {
            do {
                try await self.client.withDedicatedConnection { connection in
                    attempt = 0
                    // Replies resume on the connection's event loop: no thread hop between a
                    // reply and its delivery.
                    try await withTaskExecutorPreference(EventLoopTaskExecutor(connection.eventLoop)) {
                        try await self.readOwnPending(options, connection, sink)
                        ownPendingRead.yield()
                        while !Task.isCancelled {
                            let reply = try await connection.send(
                                EnvelopeReadGroup(
                                    base:
                                        XReadGroupCommand(
                                            group: options.group, consumer: options.consumer,
                                            streams: options.streams.map { ($0, ">") }, count: options.batchSize, block: options.blockTime
                                        )
                                ))
                            var batch: [Delivery] = []
                            for (stream, entries) in reply {
                                if let last = entries.last { lastSeen.withLock { $0[stream] = last.id } }
                                batch.reserveCapacity(batch.count + entries.count)
                                for entry in entries {
                                    if let delivery = try await self.judge(stream: stream, entry: entry, deliveries: 1, options) { batch.append(delivery) }
                                }
                            }
                            self.noteSequences(batch, sequences)
                            await sink.send(batch)
                        }
                    }
                }
            } catch {
                if Task.isCancelled { return }
                if let error = error as? RedisClientError, error.serverErrorPrefix == "NOGROUP" {
                    // Created again after the newest entry this consumer read: a stream that
                    // Redis lost with it holds only entries added since (their ids come later),
                    // all of them read; a stream that kept its entries is read on from where we were.
                    // Never `$`, which would skip what was published while the group was missing.
                    let seen = lastSeen.withLock { $0 }
                    sequences.withLock { all in for stream in options.streams { all[stream, default: SenderSequences()].lost() } }
                    self.logger.warning(
                        "consumer group missing (Redis restarted empty or the group was deleted); creating it again after the last entry read",
                        metadata: ["wave.group": "\(options.group)", "wave.last_read": "\(seen)"])
                    for stream in options.streams {
                        try? await self.createGroup(options.group, on: stream, start: seen[stream].map { .after($0) } ?? .beginning)
                    }
                } else {
                    self.logger.debug("consumer read failed; reconnecting", metadata: ["wave.error": "\(error)"])
                }
                // Reconnect backoff, exponential with full jitter.
                let delay = self.client.configuration.reconnectBackoff.delay(attempt: attempt)
                attempt += 1
                // sleep: backoff
                do { try await Task.sleep(for: delay) } catch { return }
            }
        }
    }

    /// Notes the numbering of each new entry's sender; a gap that a loss of Redis left is
    /// counted and logged (one warning per sender and loss).
    private func noteSequences(_ batch: [Delivery], _ sequences: borrowing Mutex<[String: SenderSequences]>) {
        let gaps = sequences.withLock { all -> [(String, SenderSequences.Gap)] in
            var gaps: [(String, SenderSequences.Gap)] = []
            for delivery in batch {
                guard let envelope = delivery.envelope, let seq = envelope.seq else { continue }
                if let gap = all[delivery.stream, default: SenderSequences()].note(source: envelope.source, seq: seq) { gaps.append((delivery.stream, gap)) }
            }
            return gaps
        }
        for (stream, gap) in gaps {
            self.ledger.state.withLock { $0.counters.vanished[stream, default: 0] += gap.count }
            self.logger.warning(
                "entries vanished with Redis before they were read: the sender's seq \(gap.first)…\(gap.last) never arrived",
                metadata: [
                    "wave.stream": "\(stream)", "wave.source": "\(gap.source)", "wave.count": "\(gap.count)",
                ])
        }
    }

    private func readOwnPending(_ options: ConsumerOptions, _ connection: RedisConnection, _ sink: DeliverySink) async throws {
        for stream in options.streams {
            var after = "0"
            while true {
                let reply = try await connection.send(
                    EnvelopeReadGroup(
                        base:
                            XReadGroupCommand(group: options.group, consumer: options.consumer, streams: [(stream, after)], count: options.batchSize)
                    ))
                let entries = reply.first(where: { $0.stream == stream })?.entries ?? []
                guard let last = entries.last else { break }
                let counts = try await self.deliveryCounts(
                    stream: stream, options: options, from: entries[0].id, to: last.id, count: entries.count, consumer: options.consumer, connection: connection
                )
                var batch: [Delivery] = []
                for entry in entries {
                    if entry.isDeleted {
                        // Deleted while pending: nothing to deliver; drop it from the pending list.
                        self.ledger.state.withLock { $0.counters.deletedWhilePending += 1 }
                        _ = try await connection.send(XAckCommand(stream, group: options.group, ids: [entry.id]))
                        continue
                    }
                    if let delivery = try await self.judge(stream: stream, entry: entry, deliveries: counts[entry.id] ?? 1, options) { batch.append(delivery) }
                }
                await sink.send(batch)
                after = last.id
            }
        }
    }

    private func reclaimLoop(_ options: ConsumerOptions, _ sink: DeliverySink) async {
        while !Task.isCancelled {
            // Maintenance on the configured reclaim interval.
            // sleep: interval reclaimInterval
            do { try await Task.sleep(for: options.effectiveReclaimInterval) } catch { return }
            for stream in options.streams {
                do {
                    try await self.reclaim(stream: stream, options, sink)
                    try await self.accountTrimming(stream: stream, group: options.group)
                } catch {
                    self.logger.debug("reclaim failed", metadata: ["wave.stream": "\(stream)", "wave.error": "\(error)"])
                }
            }
        }
    }

    private func reclaim(stream: String, _ options: ConsumerOptions, _ sink: DeliverySink) async throws {
        var cursor = "0-0"
        repeat {
            let reply = try await self.client.send(
                XAutoClaimCommand(
                    stream, group: options.group, consumer: options.consumer, minIdle: options.reclaimAfter, start: cursor, count: options.batchSize)
            )
            if !reply.deletedIDs.isEmpty {
                self.ledger.state.withLock { $0.counters.deletedWhilePending += reply.deletedIDs.count }
                self.logger.warning(
                    "pending entries were deleted before they were handled",
                    metadata: ["wave.stream": "\(stream)", "wave.count": "\(reply.deletedIDs.count)"]
                )
            }
            if let first = reply.entries.first, let last = reply.entries.last {
                let counts = try await self.client.withConnection { connection in
                    try await self.deliveryCounts(
                        stream: stream, options: options, from: first.id, to: last.id, count: reply.entries.count, consumer: options.consumer,
                        connection: connection)
                }
                var batch: [Delivery] = []
                for entry in reply.entries {
                    if let delivery = try await self.judge(stream: stream, entry: entry, deliveries: counts[entry.id] ?? 2, options) { batch.append(delivery) }
                }
                await sink.send(batch)
            }
            cursor = reply.nextCursor
        } while cursor != "0-0" && !Task.isCancelled
    }

    private func deliveryCounts(
        stream: String, options: ConsumerOptions, from: String, to: String, count: Int, consumer: String, connection: RedisConnection
    ) async throws -> [String: Int] {
        let pending = try await connection.send(
            XPendingCommand(stream, group: options.group, start: from, end: to, count: max(count, 1) * 2, consumer: consumer))
        return Dictionary(pending.map { ($0.id, $0.deliveryCount) }, uniquingKeysWith: { a, _ in a })
    }

    /// ``judge(stream:entry:deliveries:_:)`` for an entry claimed with `XAUTOCLAIM`.
    private func judge(stream: String, entry: StreamEntry, deliveries: Int, _ options: ConsumerOptions) async throws -> Delivery? {
        try await self.judge(
            stream: stream, entry: BusReadEntry(id: entry.id, fields: entry.fields.map { StreamField($0.name, $0.value) }, isDeleted: entry.isDeleted),
            deliveries: deliveries, options)
    }

    /// The delivery for an entry, or `nil` when it was dead-lettered instead.
    private func judge(stream: String, entry: BusReadEntry, deliveries: Int, _ options: ConsumerOptions) async throws -> Delivery? {
        let fields = entry.fields
        switch Judgement.judge(fields: fields, stream: stream, id: entry.id, deliveryCount: deliveries, options: options) {
        case .deliver(let envelope, let task):
            return Delivery(
                stream: stream, id: entry.id, group: options.group, consumer: options.consumer,
                envelope: envelope, task: task, deliveryCount: deliveries, fields: fields)
        case .deadLetter(let reason, let runs):
            try await self.writeDeadLetter(fields: fields, id: entry.id, stream: stream, group: options.group, reason: reason, handlerRuns: runs)
            return nil
        }
    }
}

/// `XADD stream * field value …` written straight from an envelope (no intermediate arrays).
struct EnvelopeXAdd: RedisCommand {
    typealias Response = String?
    let stream: String
    let envelope: Envelope

    func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append("XADD")
        arguments.append(self.stream)
        arguments.append("*")
        self.envelope.forEachField { name, value in
            arguments.append(name)
            arguments.append(value)
        }
    }
}
