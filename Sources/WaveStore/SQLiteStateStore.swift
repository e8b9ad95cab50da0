import Dispatch
import Foundation
import WaveEngine
import WaveProtocol

/// SQLite behind the asynchronous ``StateStore`` contract.
///
/// Writes run on the store's own serial executor (``executor``), never on the event loop that
/// serves Redis: a transaction waiting for another process's write lock holds that executor and
/// nothing else. A call made on the executor runs at once (the orchestrator handles its signals
/// there, so the hot path costs no thread hop); a call made elsewhere is sent to it. Reads made
/// elsewhere run on a concurrent queue of their own (WAL readers never wait for the writer).
///
/// Time comes from the injected clock. ``base`` is the synchronous store, for the composition
/// root, its tools (migrations, the raw benchmark loops) and the store's own tests.
public final class SQLiteStateStore: StateStore {
    /// The synchronous store underneath.
    public let base: SQLiteStore
    let clock: @Sendable () -> WaveTimestamp
    /// Where writes run (and where a caller that makes many calls should run to save the hops).
    public let storeExecutor: StoreExecutor
    let readers = DispatchQueue(label: "wave.store.read", qos: .userInitiated, attributes: .concurrent)
    /// The leases this store's instance holds: what its writes are fenced with.
    public let leaseBook = LeaseBook()

    /// Wraps a store. `clock` gives every time the store writes (default: the system clock).
    public init(_ base: SQLiteStore, clock: @escaping @Sendable () -> WaveTimestamp = { WaveTimestamp.now() }) {
        self.base = base
        self.clock = clock
        self.storeExecutor = StoreExecutor()
    }

    public var executor: (any TaskExecutor)? { self.storeExecutor }
    public var engine: StoryEngine { self.base.engine }
    public var location: String { self.base.location.description }
    public func now() -> WaveTimestamp { self.clock() }

    /// Runs a write on the store's executor, with the clock read when it starts.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteStore, WaveTimestamp) throws -> T) async throws -> T {
        let (base, clock) = (self.base, self.clock)
        return try await self.storeExecutor.run { try body(base, clock()) }
    }

    /// Runs a read: at once on the store's executor, else on the reader queue.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteStore) throws -> T) async throws -> T {
        let base = self.base
        if self.storeExecutor.isCurrent { return try body(base) }
        return try await withCheckedThrowingContinuation { continuation in
            self.readers.async { continuation.resume(with: Result { try body(base) }) }
        }
    }

    // MARK: Sessions

    public func createSession(project: String, wave: Int, stories: [NewStory], budgetUSD: Double) async throws -> SessionRecord {
        try await self.write { try $0.createSession(project: project, wave: wave, stories: stories, budgetUSD: budgetUSD, now: $1) }
    }
    public func session(id: String) async throws -> SessionRecord { try await self.read { try $0.session(id: id) } }
    public func sessions(project: String?) async throws -> [SessionRecord] { try await self.read { try $0.sessions(project: project) } }
    public func sessionHasNextStep(_ id: String) async throws -> Bool { try await self.read { try $0.sessionHasNextStep(id) } }
    public func startNextSession(project: String) async throws -> SessionRecord? {
        let fence = self.leaseBook.fence
        return try await self.write { try $0.startNextSession(project: project, now: $1, fence: fence) }
    }
    public func startReadyStories(session id: String) async throws -> [(StoryRecord, StoryEffects)] {
        try await self.write { try $0.startReadyStories(session: id, now: $1) }
    }
    public func pauseSession(_ id: String, messageID: String?) async throws -> SessionRecord {
        try await self.write { try $0.pauseSession(id, messageID: messageID, now: $1) }
    }
    public func resumeSession(_ id: String, messageID: String?) async throws -> SessionRecord {
        try await self.write { try $0.resumeSession(id, messageID: messageID, now: $1) }
    }
    public func cancelSession(_ id: String, reason: String, messageID: String?) async throws -> SessionRecord {
        try await self.write { try $0.cancelSession(id, reason: reason, messageID: messageID, now: $1) }
    }
    public func sessionsInProgress(project: String) async throws -> [SessionRecord] { try await self.read { try $0.sessionsInProgress(project: project) } }
    public func liveProjects() async throws -> [String] { try await self.read { try $0.liveProjects() } }
    public func oldestLiveSessionCreatedAt(project: String) async throws -> WaveTimestamp? {
        try await self.read { try $0.oldestLiveSessionCreatedAt(project: project) }
    }

    // MARK: Stories

    public func stories(session id: String) async throws -> [StoryRecord] { try await self.read { try $0.stories(session: id) } }
    public func story(_ storyID: String, session: String?) async throws -> StoryRecord { try await self.read { try $0.story(storyID, session: session) } }
    public func checkpoints(session id: String, story: String?) async throws -> [CheckpointRecord] {
        try await self.read { try $0.checkpoints(session: id, story: story) }
    }

    // MARK: Project leases

    public func acquireLease(project: String, owner: String, ttl: Duration) async throws -> ProjectLease? {
        let lease = try await self.write { try $0.acquireLease(project: project, owner: owner, ttl: ttl, now: $1) }
        if let lease { self.leaseBook.hold(lease) } else { self.leaseBook.drop(SQLiteStore.projectKey(project)) }
        return lease
    }

    public func renewLeases(owner: String, ttl: Duration) async throws -> [ProjectLease] {
        let renewed = try await self.write { try $0.renewLeases(owner: owner, ttl: ttl, now: $1) }
        let kept = Set(renewed.map(\.project))
        for project in self.leaseBook.held.keys where !kept.contains(project) { self.leaseBook.drop(project) }
        for lease in renewed { self.leaseBook.hold(lease) }
        return renewed
    }

    public func releaseLease(project: String, owner: String) async throws {
        self.leaseBook.drop(SQLiteStore.projectKey(project))
        try await self.write { try $0.releaseLease(project: project, owner: owner, now: $1) }
    }

    public func leases() async throws -> [ProjectLease] { try await self.read { try $0.leases() } }

    // MARK: Applying messages

    public func apply(batch: [IncomingEvent], stopAtSessionChange: Bool) async throws -> [Result<ApplyResult, any Error>] {
        let fence = self.leaseBook.fence
        let results = try await self.write { store, now in
            try store.apply(batch: batch, now: now, stopAtSessionChange: stopAtSessionChange, fence: fence).map(SendableResult.init)
        }
        return results.map(\.result)
    }

    public func recordWithdrawals(_ tasks: [TaskEntry], reason: String) async throws {
        guard !tasks.isEmpty else { return }  // a stop with no task out costs no transaction
        try await self.write { try $0.recordWithdrawals(tasks, reason: reason, now: $1) }
    }

    // MARK: Operators

    public func recover(
        story storyID: String, session: String?, strategy: RecoveryStrategy, gate target: GateID?, by: String, messageID: String?
    ) async throws
        -> RecoveryOutcome
    {
        try await self.write { try $0.recover(story: storyID, session: session, strategy: strategy, gate: target, by: by, messageID: messageID, now: $1) }
    }
    public func recover(session id: String, strategy: RecoveryStrategy, by: String) async throws -> [RecoveryOutcome] {
        try await self.write { try $0.recover(session: id, strategy: strategy, by: by, now: $1) }
    }
    public func approve(story storyID: String, session: String?, gate: GateID, by: String, messageID: String) async throws -> ApplyResult {
        try await self.write { try $0.approve(story: storyID, session: session, gate: gate, by: by, messageID: messageID, now: $1) }
    }
    public func awaitingApproval() async throws -> [StoryRecord] { try await self.read { try $0.awaitingApproval() } }
    public func escalations(all: Bool) async throws -> [EscalationRecord] { try await self.read { try $0.escalations(all: all) } }
    public func escalations(messageID: String) async throws -> [EscalationRecord] { try await self.read { try $0.escalations(messageID: messageID) } }
    public func acknowledgeEscalation(_ id: String, by: String) async throws {
        try await self.write { try $0.acknowledgeEscalation(id, by: by, now: $1) }
    }

    // MARK: Emergency stops

    public func recordStop(scope: StopScope, reason: String, by: String, source: String, messageID: String?) async throws -> EmergencyStopRecord {
        try await self.write { try $0.recordStop(scope: scope, reason: reason, by: by, source: source, messageID: messageID, now: $1) }
    }
    public func clearStop(scope: StopScope, by: String, reason: String?, onlySource: String?, messageID: String?) async throws -> EmergencyStopRecord? {
        try await self.write { try $0.clearStop(scope: scope, by: by, reason: reason, onlySource: onlySource, messageID: messageID, now: $1) }
    }
    public func activeStops() async throws -> [EmergencyStopRecord] { try await self.read { try $0.activeStops() } }
    public func stopHistory(limit: Int) async throws -> [StopHistoryEntry] {
        try await self.read { try $0.stopHistory(limit: limit).map { StopHistoryEntry(stop: $0.stop, clearedAt: $0.clearedAt, clearedBy: $0.clearedBy) } }
    }

    // MARK: The runtime's bookkeeping

    public func inFlightStories() async throws -> [InFlightStory] {
        let now = self.clock()
        return try await self.read { try $0.inFlightStories(now: now) }
    }
    public func pruneLedger(now: WaveTimestamp) async throws -> Int { try await self.write { store, _ in try store.pruneLedger(now: now) } }
    public func pruneCheckpoints(olderThan cutoff: WaveTimestamp) async throws -> Int {
        try await self.write { store, _ in try store.pruneCheckpoints(olderThan: cutoff) }
    }
    public func bump(_ name: String, by amount: Int) async throws { try await self.write { store, _ in try store.bump(name, by: amount) } }
    public func counters(prefix: String) async throws -> [String: Int] { try await self.read { try $0.counters(prefix: prefix) } }
    public func isApplied(messageID: String) async throws -> Bool { try await self.read { try $0.isApplied(messageID: messageID) } }
    public func processedMessages(session id: String) async throws -> [String: Int] { try await self.read { try $0.processedMessages(session: id) } }
    public func processedMessages(project: String) async throws -> [String: Int] { try await self.read { try $0.processedMessages(project: project) } }
    public func sessionCounts() async throws -> [String: Int] { try await self.read { try $0.sessionCounts() } }
    public func recordOrchestrator(_ record: OrchestratorRecord) async throws { try await self.write { store, _ in try store.recordOrchestrator(record) } }
    public func orchestrators() async throws -> [OrchestratorRecord] { try await self.read { try $0.orchestrators() } }
    public func appliedMigrations() async throws -> [String] { try await self.read { try $0.appliedMigrations() } }

    // MARK: The outbox

    public func enqueueOutbox(_ entries: [OutboxDraft]) async throws {
        try await self.write { try $0.enqueueOutbox(entries.map { ($0.stream, $0.fields) }, now: $1) }
    }
    public func outbox(limit: Int) async throws -> [OutboxEntry] { try await self.read { try $0.outbox(limit: limit) } }
    public func removeOutbox(through seq: Int64) async throws { try await self.write { store, _ in try store.removeOutbox(through: seq) } }
    public func countOutboxAttempt(through seq: Int64) async throws { try await self.write { store, _ in try store.countOutboxAttempt(through: seq) } }
    public func outboxCount() async throws -> Int { try await self.read { try $0.outboxCount() } }
}

/// A result whose error crosses a thread (errors are `Sendable`; `Result` with `any Error` is).
struct SendableResult: Sendable {
    let result: Result<ApplyResult, any Error>
}

extension SQLiteStore {
    /// This store behind the asynchronous ``StateStore`` contract.
    public var asStateStore: SQLiteStateStore { SQLiteStateStore(self) }
}
