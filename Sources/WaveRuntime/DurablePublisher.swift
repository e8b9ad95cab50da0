import Logging
import Synchronization
import WaveBus
import WaveProtocol
import WaveRedis
import WaveStore

/// Wave's own publishing (tasks, notices, cancellations) with the store's outbox behind it
/// (issue: nothing lost while Redis is down).
///
/// An entry goes to the bus; when Redis cannot be reached (the bus's own retries spent, or the
/// circuit breaker open) it is kept in the outbox (`wave_outbox`) instead, and so is every entry
/// after it until the outbox is empty again, so that order holds. The outbox is flushed in order
/// when the breaker closes (Redis answers again), at start and at a graceful stop; each entry
/// keeps its `message_id`, so a copy that did reach Redis before the connection broke is a
/// duplicate that consumers recognise. One warning when the outage begins, one line when the
/// outbox is empty again: never one per message.
public final class DurablePublisher: Sendable {
    struct State {
        /// Entries wait in the outbox: new ones queue behind them (`nil`: not looked yet).
        var parked: Bool? = nil
        var flushing = false
        var kept = 0
        var flushed = 0
    }

    let bus: any EventBus
    let store: any StateStore
    let logger: Logger
    let state: Mutex<State>
    /// Held while entries go into the outbox or come out of it, so that none overtakes another.
    let order = AsyncLock()

    /// Creates a publisher; entries left in the outbox by an earlier run go out first (``flush()``
    /// at start finds them).
    public init(bus: any EventBus, store: any StateStore, logger: Logger) {
        self.bus = bus
        self.store = store
        self.logger = logger
        self.state = Mutex(State())
    }

    /// Entries kept in the outbox and entries flushed from it, since start.
    public var totals: (kept: Int, flushed: Int) { self.state.withLock { ($0.kept, $0.flushed) } }

    /// Whether entries wait in the outbox, as far as this publisher has looked (`false` before
    /// its first look; see ``lookForWaitingEntries()``).
    public var isParked: Bool { self.state.withLock { $0.parked ?? false } }

    /// Looks in the store, the first time, whether entries left by an earlier run wait in the
    /// outbox (new entries then queue behind them); returns ``isParked``.
    @discardableResult
    public func lookForWaitingEntries() async throws -> Bool {
        try await self.order.withLock {
            if self.state.withLock({ $0.parked }) == nil {
                let waiting = try await self.store.outboxCount() > 0
                self.state.withLock { $0.parked = $0.parked ?? waiting }
            }
            return self.isParked
        }
    }

    /// Publishes entries, or keeps them in the outbox when Redis is away or older entries wait
    /// there. Returns `true` when they are on their streams now, `false` when they wait.
    /// - Throws: only when neither the bus nor the outbox took them (the store failed).
    @discardableResult
    public func publish(entries: [(stream: String, fields: [StreamField])]) async throws -> Bool {
        guard !entries.isEmpty else { return true }
        if self.state.withLock({ $0.parked }) != false, try await self.keepIfParked(entries) {
            if self.breakerClosed { Task { await self.flush() } }
            return false
        }
        do {
            _ = try await self.bus.publish(entries: entries)
            return true
        } catch  where Self.isUnavailable(error) {
            let first = try await self.order.withLock {
                try await self.store.enqueueOutbox(entries.map { OutboxDraft(stream: $0.stream, fields: $0.fields) })
                return self.state.withLock { state -> Bool in
                    state.kept += entries.count
                    defer { state.parked = true }
                    return state.parked != true
                }
            }
            if first {
                self.logger.warning(
                    "Redis unavailable: Wave's own entries are kept in the outbox and go out in order when it is back",
                    metadata: ["wave.error": "\(error)"])
            }
            return false
        }
    }

    /// Keeps the entries in the outbox if entries already wait there (under the order lock, so
    /// that no entry can overtake the flush).
    func keepIfParked(_ entries: [(stream: String, fields: [StreamField])]) async throws -> Bool {
        try await self.lookForWaitingEntries()
        return try await self.order.withLock {
            guard self.isParked else { return false }
            try await self.store.enqueueOutbox(entries.map { OutboxDraft(stream: $0.stream, fields: $0.fields) })
            self.state.withLock { $0.kept += entries.count }
            return true
        }
    }

    /// Sends what waits in the outbox, oldest first, in batches; stops at the first failure.
    public func flush() async {
        guard
            self.state.withLock({ state in
                if state.flushing || state.parked == false { return false }
                state.flushing = true
                return true
            })
        else { return }
        defer { self.state.withLock { $0.flushing = false } }
        var sent = 0
        while true {
            let batch: [OutboxEntry]
            do { batch = try await self.store.outbox(limit: 500) } catch {
                self.logger.error("the outbox cannot be read", metadata: ["wave.error": "\(error)"])
                return
            }
            guard let last = batch.last else {
                // Empty: new entries go straight to the bus again, unless one slipped in meanwhile.
                let done = await self.order.withLock { () async -> Bool in
                    guard ((try? await self.store.outboxCount()) ?? 1) == 0 else { return false }
                    self.state.withLock { $0.parked = false }
                    return true
                }
                if done {
                    if sent > 0 { self.logger.info("outbox flushed: \(sent) entries published in order") }
                    return
                }
                continue
            }
            do {
                _ = try await self.bus.publish(entries: batch.map { ($0.stream, $0.fields) })
                try await self.store.removeOutbox(through: last.seq)
                sent += batch.count
                self.state.withLock { $0.flushed += batch.count }
            } catch {
                try? await self.store.countOutboxAttempt(through: last.seq)
                self.logger.debug("outbox flush interrupted; it goes on when Redis is back", metadata: ["wave.error": "\(error)"])
                return
            }
        }
    }

    /// Flushes at start and every time Redis answers again (the client's breaker closes), until
    /// cancelled.
    public func run() async {
        // Subscribed before the first flush: Redis answering again while that flush fails (or
        // before it starts) is a transition this loop must not miss, or the outbox would wait
        // for the next outage to end.
        let again = self.bus.reachableAgain()
        await self.flush()
        for await _ in again {
            await self.flush()
        }
    }

    var breakerClosed: Bool { self.bus.isReachable }

    /// Errors that mean Redis cannot be reached now (not a refusal of the entry).
    static func isUnavailable(_ error: any Error) -> Bool {
        guard let error = error as? RedisClientError else { return false }
        return error.isConnectionFailure || error.code == .connectionFailed || error.code == .circuitOpen || error.code == .timeout
    }
}
