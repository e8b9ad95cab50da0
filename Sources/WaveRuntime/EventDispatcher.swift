import Logging
import ServiceLifecycle
import Synchronization
import WaveBus
import WaveProtocol

/// Reads the orchestrator's streams as a member of their consumer groups and hands every entry to
/// the handlers registered for its event type, in order, then to the global handlers.
///
/// An entry is acknowledged once every handler has succeeded, dead-lettered when a handler says
/// it can never be applied, and left pending when a handler throws, so that the bus delivers it
/// again (its reclaimer, after ``ConsumerOptions/reclaimAfter``) and dead-letters it after
/// ``ConsumerOptions/maxDeliveries``. A declared type with no handler of its own is acknowledged
/// as a no-op and counted; an undeclared type never gets here (the bus dead-letters it).
///
/// As a `Service` it consumes until graceful shutdown: it stops reading, lets the read in hand
/// finish (handlers and acknowledgements), and returns.
public final class EventDispatcher: Service, Sendable {
    /// Counts of what the dispatcher did.
    public struct Counters: Sendable, Hashable {
        /// Entries acknowledged after their handlers ran.
        public var handled = 0
        /// Entries of a declared type with no handler, by type.
        public var unhandled: [String: Int] = [:]
        /// Handler errors (each leaves an entry pending).
        public var failures = 0
        /// Entries dead-lettered by a handler's decision.
        public var deadLettered = 0

        /// The total of ``unhandled``.
        public var unhandledTotal: Int { self.unhandled.values.reduce(0, +) }
    }

    let bus: any EventBus
    let registry: HandlerRegistry
    let consumers: [ConsumerOptions]
    let logger: Logger
    let counters = Mutex(Counters())
    let hooks: Hooks
    /// Each stream's kind and project, parsed once (the streams are few and fixed).
    let streamInfo = Mutex<[String: (kind: StreamKind, project: ProjectName?)?]>([:])

    /// Calls the dispatcher makes as it works (metrics, status, benchmarks, tests). Each runs on
    /// the dispatching task: keep it short.
    public struct Hooks: Sendable {
        /// Before the first handler of a signal runs.
        public var entered: (@Sendable (Signal) -> Void)?
        /// After a signal's handlers ran, their follow-ups (the tasks they dispatch) too, and its
        /// entry was settled (dead-lettered, or marked for acknowledgement or for delivery again);
        /// just before its read's acknowledgement.
        public var settled: (@Sendable (Signal, DispatchResult) -> Void)?
        /// After a read's acknowledgement returned, with the entries acknowledged.
        public var acknowledged: (@Sendable ([Delivery]) -> Void)?
        /// For a signal of a declared type that no handler takes, before it is settled (awaited:
        /// what it records is there when the entry is acknowledged).
        public var unhandled: (@Sendable (Signal) async -> Void)?

        /// Creates hooks.
        public init(
            entered: (@Sendable (Signal) -> Void)? = nil, settled: (@Sendable (Signal, DispatchResult) -> Void)? = nil,
            acknowledged: (@Sendable ([Delivery]) -> Void)? = nil
        ) {
            self.entered = entered
            self.settled = settled
            self.acknowledged = acknowledged
        }
    }

    /// Where handlers run: the event loop of the bus's connections, so that no thread hop sits
    /// between a reply and the code that waits for it (ARCHITECTURE.md); `nil`: the default executor.
    let executor: (any TaskExecutor)?
    /// How a consumer whose loop fails is started again.
    let supervision: SupervisionPolicy

    /// Creates a dispatcher.
    /// - Parameters:
    ///   - consumers: one consumer per group it reads (the shared `orchestrator` group on the
    ///     signal streams, the instance's own group on the system streams).
    ///   - hooks: calls made as it works.
    ///   - executor: where reads are handled (the bus client's event loop); `nil`: the default.
    ///   - supervision: how a consumer whose loop fails is started again.
    public init(
        bus: any EventBus, registry: HandlerRegistry, consumers: [ConsumerOptions], logger: Logger, hooks: Hooks = Hooks(),
        executor: (any TaskExecutor)? = nil, supervision: SupervisionPolicy = SupervisionPolicy()
    ) {
        self.supervision = supervision
        self.bus = bus
        self.registry = registry
        self.consumers = consumers
        self.logger = logger
        self.hooks = hooks
        self.executor = executor
    }

    /// What the dispatcher has done so far.
    public var snapshot: Counters { self.counters.withLock { $0 } }

    /// Runs the handlers of one signal and combines their outcomes. Stops at the first handler
    /// that throws (the signal is delivered again and every handler runs again).
    public func dispatch(_ signal: Signal) async -> DispatchResult {
        self.hooks.entered?(signal)
        let type = signal.envelope.eventType
        var result = DispatchResult(eventType: type)
        let handlers = self.registry.handlers(for: type)
        result.unhandled = !self.registry.handles(type)
        if result.unhandled { await self.hooks.unhandled?(signal) }
        for handler in handlers {
            do {
                result.outcomes.append((handler.name, try await handler.handle(signal)))
            } catch {
                result.error = error
                break
            }
        }
        return result
    }

    /// Consumes every configured group until graceful shutdown or cancellation.
    public func run() async throws {
        do {
            try await withTaskExecutorPreference(self.executor) {
                try await cancelWhenGracefulShutdown {
                    try await withThrowingDiscardingTaskGroup { group in
                        for options in self.consumers {
                            // Supervised: a consumer whose loop fails starts again after a
                            // backoff; only cancellation (graceful shutdown) ends it.
                            group.addTask {
                                await supervised("the consumer of \(options.group)", logger: self.logger, policy: self.supervision) {
                                    try await self.consume(options)
                                }
                            }
                        }
                    }
                }
            }
        } catch  where Task.isShuttingDownGracefully {
            // The shutdown cancelled a request in flight (a group being created, a read being
            // issued): that is the stop asked for, not a failure.
            self.logger.debug("consumers stopped by the graceful shutdown", metadata: ["wave.error": "\(error)"])
        }
    }

    /// A consumer started while the dispatcher runs (``start(_:)``): a project this instance
    /// took over.
    public final class DynamicConsumer: Sendable {
        let task: Task<Void, Never>

        init(task: Task<Void, Never>) { self.task = task }

        /// Stops reading; returns once the read in hand is handled and acknowledged (its entries
        /// are not left half done), as at graceful shutdown.
        public func stop() async {
            self.task.cancel()
            await self.task.value
        }
    }

    /// Starts consuming one more group and streams (supervised, as the configured consumers
    /// are) until ``DynamicConsumer/stop()``: how an instance starts serving a project whose
    /// lease it took, and stops when it loses it.
    public func start(_ options: ConsumerOptions) -> DynamicConsumer {
        DynamicConsumer(
            task: Task(executorPreference: self.executor) {
                await supervised("the consumer of \(options.group) on \(options.streams.joined(separator: ","))", logger: self.logger, policy: self.supervision)
                {
                    try await self.consume(options)
                }
            })
    }

    func consume(_ options: ConsumerOptions) async throws {
        self.logger.info(
            "consuming",
            metadata: [
                "wave.group": "\(options.group)", "wave.consumer": "\(options.consumer)", "wave.streams": "\(options.streams.joined(separator: ","))",
            ])
        try await self.bus.withConsumer(options) { deliveries in
            // A pipeline: while one read is handled (its transaction committing), the bus reads
            // the next one, and the previous one's tasks and acknowledgement are on their way.
            // What follows a read (its tasks, its `settled` hooks, its acknowledgement) runs in
            // read order, each read's acknowledgement after its own commit and tasks, as before.
            var following: Task<Void, Never>?
            var iterator = deliveries.makeAsyncIterator()
            var parked = ParkedSignals()
            while !Task.isCancelled, let batch = await iterator.nextBatch() {
                // A read in hand is finished even if shutdown begins meanwhile: its handlers and
                // acknowledgements run outside this task's cancellation.
                let (settled, stillParked) = await Task(executorPreference: self.executor) { [parked] in
                    var parked = parked
                    let read = await self.settle(batch, parked: &parked)
                    return (read, parked)
                }.value
                parked = stillParked
                guard !settled.isEmpty else { continue }
                following = Task(executorPreference: self.executor) { [following] in
                    await following?.value
                    await self.follow(settled)
                }
            }
            await following?.value
        }
    }

    /// Settles a read, then the parked signals its applied signals released (their stories moved
    /// on), again and again while some are released: a signal that came before the one it waits
    /// for (a take-over can bring a story's results out of order) applies as soon as its
    /// predecessor does, not after the reclaim delay. Parked signals stay pending in the group;
    /// those never released are delivered again by the reclaimer as any unacknowledged entry is.
    func settle(_ batch: [Delivery], parked: inout ParkedSignals) async -> SettledRead {
        parked.remove(batch)
        var read = await self.settle(batch)
        var fresh = read.results[...]
        while true {
            parked.park(fresh)
            let released = parked.release(after: fresh)
            guard !released.isEmpty else { break }
            let again = await self.settle(released)
            let start = read.results.count
            read.acknowledged += again.acknowledged
            read.followUps += again.followUps
            read.results += again.results
            fresh = read.results[start...]
        }
        return read
    }

    /// Signals whose handler said they wait for an earlier signal of the same story
    /// (``WaitsForEarlierSignal``), by stream and story; at most ``limit``, the oldest given up
    /// first (they stay pending and are reclaimed).
    struct ParkedSignals: Sendable {
        static let limit = 10_000
        var byStory: [String: [Delivery]] = [:]
        var count = 0

        static func key(_ signal: Signal) -> String? {
            signal.envelope.storyIDForRouting.map { "\(signal.delivery.stream)\u{1F}\($0)" }
        }

        /// Forgets parked copies of entries delivered again.
        mutating func remove(_ batch: [Delivery]) {
            guard self.count > 0 else { return }
            let ids = Set(batch.map(\.id))
            for (key, deliveries) in self.byStory {
                let kept = deliveries.filter { !ids.contains($0.id) }
                self.count -= deliveries.count - kept.count
                self.byStory[key] = kept.isEmpty ? nil : kept
            }
        }

        mutating func park(_ results: ArraySlice<(Signal, DispatchResult)>) {
            for (signal, result) in results {
                guard let error = result.error as? any WaitsForEarlierSignal, error.waitsForEarlierSignal, let key = Self.key(signal) else { continue }
                if self.count >= Self.limit, let oldest = self.byStory.keys.first {
                    self.count -= self.byStory.removeValue(forKey: oldest)?.count ?? 0
                }
                self.byStory[key, default: []].append(signal.delivery)
                self.count += 1
            }
        }

        /// The parked signals of the stories these results applied a signal to.
        mutating func release(after results: ArraySlice<(Signal, DispatchResult)>) -> [Delivery] {
            guard self.count > 0 else { return [] }
            var released: [Delivery] = []
            for (signal, result) in results {
                guard case .acknowledge = result.disposition, result.error == nil, let key = Self.key(signal),
                    let waiting = self.byStory.removeValue(forKey: key)
                else { continue }
                self.count -= waiting.count
                released += waiting
            }
            return released
        }
    }

    /// A read whose handlers ran: what is left to do, in read order.
    struct SettledRead: Sendable {
        /// The entries whose handlers succeeded, to be acknowledged.
        var acknowledged: [Delivery] = []
        /// The handlers' follow-ups (the tasks their results dispatch).
        var followUps: [@Sendable () async -> Void] = []
        /// Every signal of the read with its result, for the `settled` hook.
        var results: [(Signal, DispatchResult)] = []

        var isEmpty: Bool { self.results.isEmpty && self.followUps.isEmpty }
    }

    /// Finishes a settled read: its follow-ups, its `settled` hooks, its acknowledgement.
    func follow(_ read: SettledRead) async {
        for followUp in read.followUps { await followUp() }
        if let settled = self.hooks.settled {
            for (signal, result) in read.results { settled(signal, result) }
        }
        if !read.acknowledged.isEmpty { await self.acknowledge(read.acknowledged) }
    }

    /// Acknowledges the entries of a read whose handlers succeeded, in one call.
    func acknowledge(_ acknowledged: [Delivery]) async {
        do {
            try await self.bus.acknowledge(acknowledged)
            self.hooks.acknowledged?(acknowledged)
        } catch {
            // Not lost: the entries stay pending, are delivered again, and the ledger makes their
            // second application a no-op.
            self.logger.warning(
                "acknowledgement failed; the entries will be delivered again",
                metadata: [
                    "wave.count": "\(acknowledged.count)", "wave.error": "\(error)",
                ])
        }
    }

    /// Dispatches a read and settles every entry: a dead letter for each one a handler refused,
    /// nothing for failures; returns the entries whose handlers succeeded, to be acknowledged
    /// after the handlers' follow-ups. Consecutive entries whose only handler is the same
    /// ``BatchEventHandler`` go to it at once.
    func settle(_ batch: [Delivery]) async -> SettledRead {
        var read = SettledRead()
        read.acknowledged.reserveCapacity(batch.count)
        read.results.reserveCapacity(batch.count)
        var failed: [(Signal, String)] = []
        defer { self.logFailures(failed) }
        var index = 0
        while index < batch.count {
            let delivery = batch[index]
            guard let signal = await self.signal(of: delivery) else {
                index += 1
                continue
            }
            if let batcher = self.registry.batchHandler(for: signal.envelope.eventType) {
                // The run: this entry and the following ones with the same batch handler.
                var run = [signal]
                var next = index + 1
                while next < batch.count, let envelope = batch[next].envelope, let info = self.info(of: batch[next].stream),
                    let other = self.registry.batchHandler(for: envelope.eventType), other.name == batcher.name
                {
                    run.append(Signal(delivery: batch[next], envelope: envelope, kind: info.kind, project: info.project))
                    next += 1
                }
                for member in run { self.hooks.entered?(member) }
                let handled = await batcher.handle(batch: run)
                if let followUp = handled.followUp { read.followUps.append(followUp) }
                for (member, outcome) in zip(run, handled.results) {
                    var result = DispatchResult(eventType: member.envelope.eventType)
                    switch outcome {
                    case .success(let value): result.outcomes = [(batcher.name, value)]
                    case .failure(let error): result.error = error
                    }
                    if await self.finish(member, result, failed: &failed) { read.acknowledged.append(member.delivery) }
                    read.results.append((member, result))
                }
                index = next
                continue
            }
            let result = await self.dispatch(signal)
            if await self.finish(signal, result, failed: &failed) { read.acknowledged.append(delivery) }
            read.results.append((signal, result))
            index += 1
        }
        return read
    }

    /// The signal of a delivery; a delivery from a stream the orchestrator does not read (a
    /// misconfigured consumer) is dead-lettered with the reason.
    func signal(of delivery: Delivery) async -> Signal? {
        guard let info = self.info(of: delivery.stream), let envelope = delivery.envelope else {
            try? await self.bus.deadLetter(delivery, reason: "not_a_signal: \(delivery.stream) is not a stream the orchestrator reads")
            return nil
        }
        return Signal(delivery: delivery, envelope: envelope, kind: info.kind, project: info.project)
    }

    /// The kind and project of a stream, parsed the first time it is seen.
    func info(of stream: String) -> (kind: StreamKind, project: ProjectName?)? {
        if let known = self.streamInfo.withLock({ $0[stream] }) { return known }
        let info = StreamKind(stream: stream).map { (kind: $0, project: Self.project(of: stream)) }
        self.streamInfo.withLock { $0[stream] = .some(info) }
        return info
    }

    /// One line for the entries of a read whose handlers failed (a store that cannot write fails
    /// a whole read the same way): how many, the first entry and the distinct errors.
    func logFailures(_ failed: [(Signal, String)]) {
        guard let (first, _) = failed.first else { return }
        var errors: [String] = []
        for (_, error) in failed where !errors.contains(error) { errors.append(error) }
        self.logger.warning(
            "\(failed.count == 1 ? "a handler" : "handlers of \(failed.count) entries") failed; left pending, delivered again",
            metadata: Self.metadata(
                first,
                [
                    "wave.count": "\(failed.count)", "wave.error": "\(errors.prefix(3).joined(separator: " | "))",
                    "wave.delivery": "\(first.delivery.deliveryCount)",
                ]))
    }

    /// Settles one entry by its result; returns whether it is to be acknowledged. A failure is
    /// added to `failed` (logged once per read).
    func finish(_ signal: Signal, _ result: DispatchResult, failed: inout [(Signal, String)]) async -> Bool {
        switch result.disposition {
        case .acknowledge:
            self.counters.withLock { counters in
                counters.handled += 1
                if result.unhandled { counters.unhandled[result.eventType.rawValue, default: 0] += 1 }
            }
            return true
        case .deadLetter(let reason):
            do {
                try await self.bus.deadLetter(signal.delivery, reason: reason)
                self.counters.withLock { $0.deadLettered += 1 }
                self.logger.warning("dead-lettered", metadata: Self.metadata(signal, ["wave.reason": "\(reason)"]))
            } catch {
                self.logger.error("could not dead-letter; the entry stays pending", metadata: Self.metadata(signal, ["wave.error": "\(error)"]))
            }
            return false
        case .retry:
            self.counters.withLock { $0.failures += 1 }
            failed.append((signal, result.error.map { String(describing: $0) } ?? ""))
            return false
        }
    }

    /// The project of a `wave:{kind}:{project}` stream; `nil` for `wave:system:global`.
    static func project(of stream: String) -> ProjectName? {
        guard stream != Channels.systemGlobal else { return nil }
        let parts = stream.split(separator: ":", maxSplits: 2)
        guard parts.count == 3 else { return nil }
        return try? ProjectName(String(parts[2]))
    }

    static func metadata(_ signal: Signal, _ extra: Logger.Metadata) -> Logger.Metadata {
        var metadata: Logger.Metadata = [
            "wave.stream": "\(signal.delivery.stream)", "wave.entry": "\(signal.delivery.id)",
            "wave.event": "\(signal.envelope.eventType.rawValue)", "wave.message_id": "\(signal.envelope.messageID)",
        ]
        if let story = signal.envelope.storyIDForRouting { metadata["wave.story"] = "\(story)" }
        metadata.merge(extra) { _, new in new }
        return metadata
    }
}
