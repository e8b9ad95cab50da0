import Dispatch
import Foundation
import WaveEngine
import WaveProtocol

/// SQLite behind the asynchronous ``StateStore`` contract.
///
/// Where the calls run is a choice (``Placement``): ``Placement/inline`` (the default) runs each
/// call on the caller's thread, as the synchronous store did; ``Placement/ownQueues`` runs writes
/// on one serial queue and reads on a concurrent queue of the store's own, so that a transaction
/// waiting for another process's write lock never holds the event loop that serves Redis. Measured
/// on this machine, the hop to the queues and back costs the latency bars (`wave bench latency`:
/// handler p99 0.59 → 3.2 ms, committed p99 1.8 → 6.5 ms) because the dispatcher does not yet
/// overlap one batch's commit with the next batch's handling; until it does, inline stays the
/// default (ARCHITECTURE.md, the runtime's shape).
///
/// Time comes from the injected clock. ``base`` is the synchronous store, for the composition
/// root, its tools (migrations, the raw benchmark loops) and the store's own tests.
public final class SQLiteStateStore: StateStore {
    /// The synchronous store underneath.
    public let base: SQLiteStore
    let clock: @Sendable () -> WaveTimestamp
    let placement: Placement
    let writer = DispatchQueue(label: "wave.store.write", qos: .userInitiated)
    let readers = DispatchQueue(label: "wave.store.read", qos: .userInitiated, attributes: .concurrent)

    /// Where the store's work runs.
    public enum Placement: String, Sendable, CaseIterable {
        /// On the caller's thread.
        case inline
        /// Writes on a serial queue of the store's own, reads on a concurrent one.
        case ownQueues = "own_queues"
    }

    /// Wraps a store. `clock` gives every time the store writes (default: the system clock).
    public init(_ base: SQLiteStore, placement: Placement = .inline, clock: @escaping @Sendable () -> WaveTimestamp = { WaveTimestamp.now() }) {
        self.base = base
        self.placement = placement
        self.clock = clock
    }

    public var engine: StoryEngine { self.base.engine }
    public var location: String { self.base.location.description }
    public func now() -> WaveTimestamp { self.clock() }

    /// Runs a write on the writer queue.
    func write<T: Sendable>(_ body: @escaping @Sendable (SQLiteStore, WaveTimestamp) throws -> T) async throws -> T {
        let (base, now) = (self.base, self.clock())
        if self.placement == .inline { return try body(base, now) }
        return try await withCheckedThrowingContinuation { continuation in
            self.writer.async { continuation.resume(with: Result { try body(base, now) }) }
        }
    }

    /// Runs a read on the reader queue.
    func read<T: Sendable>(_ body: @escaping @Sendable (SQLiteStore) throws -> T) async throws -> T {
        let base = self.base
        if self.placement == .inline { return try body(base) }
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
        try await self.write { try $0.startNextSession(project: project, now: $1) }
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

    // MARK: Applying messages

    public func apply(
        batch: [IncomingEvent], stopAtSessionChange: Bool, withdrawn: (@Sendable (IncomingEvent) -> Bool)?
    ) async throws
        -> [Result<ApplyResult, any Error>]
    {
        let results = try await self.write { store, now in
            try store.apply(batch: batch, now: now, stopAtSessionChange: stopAtSessionChange, withdrawn: withdrawn).map(SendableResult.init)
        }
        return results.map(\.result)
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
    /// This store behind the asynchronous ``StateStore`` contract (calls run inline).
    public var asStateStore: SQLiteStateStore { SQLiteStateStore(self) }
}
