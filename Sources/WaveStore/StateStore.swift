import Foundation
import WaveEngine
import WaveProtocol

/// The durable state of sessions, stories, checkpoints, stops and the runtime's bookkeeping, as
/// one asynchronous contract (`SCALE.md`, "One contract, two stores"): SQLite implements it now
/// (``SQLiteStateStore``), PostgreSQL will. The runtime, the CLI and the benchmarks see only this
/// protocol.
///
/// Guarantees every implementation gives: one transaction per applied message or batch, the
/// ledger (`message_id`) making a second application a no-op, optimistic concurrency on the
/// story's `version`, and time from one injected clock (``now()``).
public protocol StateStore: Sendable {
    /// The rules every story change goes through.
    var engine: StoryEngine { get }
    /// Where the state lives, for logs (`sqlite:/path`; never a password).
    var location: String { get }
    /// The store's clock: every time it writes comes from here, and the runtime asks it too.
    func now() -> WaveTimestamp
    /// Where the store's calls cost no thread hop (SQLite: its own serial executor), for the
    /// caller that makes most of them (the orchestrator's signal handling); `nil`: anywhere.
    var executor: (any TaskExecutor)? { get }

    // MARK: Sessions
    /// Creates a pending session with its stories (dependencies checked).
    @discardableResult func createSession(project: String, wave: Int, stories: [NewStory], budgetUSD: Double) async throws -> SessionRecord
    /// A session by id (with or without dashes).
    func session(id: String) async throws -> SessionRecord
    /// Sessions, newest first, optionally of one project.
    func sessions(project: String?) async throws -> [SessionRecord]
    /// Whether a session has a next step after one of its stories finished.
    func sessionHasNextStep(_ id: String) async throws -> Bool
    /// Starts the oldest pending session of a project unless one is in progress.
    @discardableResult func startNextSession(project: String) async throws -> SessionRecord?
    /// Starts ready stories up to the parallel limit; returns them with their effects.
    func startReadyStories(session id: String) async throws -> [(StoryRecord, StoryEffects)]
    /// Pauses a session.
    @discardableResult func pauseSession(_ id: String, messageID: String?) async throws -> SessionRecord
    /// Resumes a session.
    @discardableResult func resumeSession(_ id: String, messageID: String?) async throws -> SessionRecord
    /// Cancels a session and its unfinished stories.
    @discardableResult func cancelSession(_ id: String, reason: String, messageID: String?) async throws -> SessionRecord
    /// The in-progress sessions of a project.
    func sessionsInProgress(project: String) async throws -> [SessionRecord]
    /// The projects (keys) with a session that is not terminal.
    func liveProjects() async throws -> [String]
    /// When the oldest non-terminal session of a project was created.
    func oldestLiveSessionCreatedAt(project: String) async throws -> WaveTimestamp?

    // MARK: Stories
    /// The stories of a session.
    func stories(session id: String) async throws -> [StoryRecord]
    /// A story by business id (session, or project, to choose among several).
    func story(_ storyID: String, session: String?) async throws -> StoryRecord
    /// Checkpoints in order.
    func checkpoints(session id: String, story: String?) async throws -> [CheckpointRecord]

    // MARK: Applying messages
    /// Applies messages in one transaction, each as if alone (see `SQLiteStore.apply(batch:…)`).
    /// A result whose task was taken back (its timeout applied, or withdrawn by a stop) gets
    /// ``StoreError/Code/withdrawn`` and changes nothing.
    func apply(batch: [IncomingEvent], stopAtSessionChange: Bool) async throws -> [Result<ApplyResult, any Error>]
    /// Records tasks taken back by a stop, so that their late results are not applied (by this
    /// process or any other).
    func recordWithdrawals(_ tasks: [TaskEntry], reason: String) async throws

    // MARK: Operators
    /// Recovers a story.
    @discardableResult func recover(
        story storyID: String, session: String?, strategy: RecoveryStrategy, gate target: GateID?, by: String, messageID: String?
    ) async throws
        -> RecoveryOutcome
    /// Recovers every story of a session that the strategy applies to.
    @discardableResult func recover(session id: String, strategy: RecoveryStrategy, by: String) async throws -> [RecoveryOutcome]
    /// An operator's approval of a manual gate.
    @discardableResult func approve(story storyID: String, session: String?, gate: GateID, by: String, messageID: String) async throws -> ApplyResult
    /// Stories waiting at a manual gate.
    func awaitingApproval() async throws -> [StoryRecord]
    /// Escalations, newest first.
    func escalations(all: Bool) async throws -> [EscalationRecord]
    /// The escalations a message raised.
    func escalations(messageID: String) async throws -> [EscalationRecord]
    /// Acknowledges an escalation.
    func acknowledgeEscalation(_ id: String, by: String) async throws

    // MARK: Emergency stops
    /// Records a stop (or returns the one already active for the scope).
    @discardableResult func recordStop(scope: StopScope, reason: String, by: String, source: String, messageID: String?) async throws -> EmergencyStopRecord
    /// Clears the active stop of a scope.
    @discardableResult func clearStop(
        scope: StopScope, by: String, reason: String?, onlySource: String?, messageID: String?
    ) async throws -> EmergencyStopRecord?
    /// Every active stop, oldest first.
    func activeStops() async throws -> [EmergencyStopRecord]
    /// Every stop and clear, newest first.
    func stopHistory(limit: Int) async throws -> [StopHistoryEntry]

    // MARK: The runtime's bookkeeping
    /// Every working story with its current gate's tasks.
    func inFlightStories() async throws -> [InFlightStory]
    /// Deletes ledger entries past their retention as of `now` (the store's clock, or a later
    /// time a test or an operator gives).
    @discardableResult func pruneLedger(now: WaveTimestamp) async throws -> Int
    /// Deletes old checkpoints of finished stories.
    @discardableResult func pruneCheckpoints(olderThan cutoff: WaveTimestamp) async throws -> Int
    /// Adds to a counter.
    func bump(_ name: String, by amount: Int) async throws
    /// Counters whose name starts with `prefix`.
    func counters(prefix: String) async throws -> [String: Int]
    /// Whether a message id is in the ledger.
    func isApplied(messageID: String) async throws -> Bool
    /// Ledger entries of a session, by outcome.
    func processedMessages(session id: String) async throws -> [String: Int]
    /// Ledger entries of a project's sessions, by outcome.
    func processedMessages(project: String) async throws -> [String: Int]
    /// Sessions by status.
    func sessionCounts() async throws -> [String: Int]
    /// Records an orchestrator instance's state.
    func recordOrchestrator(_ record: OrchestratorRecord) async throws
    /// The instances recorded.
    func orchestrators() async throws -> [OrchestratorRecord]
    /// The migrations applied, in order.
    func appliedMigrations() async throws -> [String]

    // MARK: Project leases (SCALE.md, several orchestrators)
    /// Takes or renews `owner`'s lease on `project` for `ttl` (a lease taken from another
    /// instance or after it lapsed gets the next epoch); `nil` while another instance holds it.
    /// From then on this store fences its writes for the projects it holds leases on: a
    /// transaction that writes for a project under an epoch that is no longer current, or for a
    /// project it holds no lease on, fails with ``StoreError/Code/leaseLost`` and writes nothing.
    func acquireLease(project: String, owner: String, ttl: Duration) async throws -> ProjectLease?
    /// Renews `owner`'s live leases; returns those it still holds (the others are lost).
    func renewLeases(owner: String, ttl: Duration) async throws -> [ProjectLease]
    /// Gives a lease up at once (a clean hand-over).
    func releaseLease(project: String, owner: String) async throws
    /// Every project's lease.
    func leases() async throws -> [ProjectLease]

    // MARK: The outbox
    /// Keeps entries that could not be published, in order.
    func enqueueOutbox(_ entries: [OutboxDraft]) async throws
    /// The oldest entries waiting.
    func outbox(limit: Int) async throws -> [OutboxEntry]
    /// Removes entries up to and including `seq`.
    func removeOutbox(through seq: Int64) async throws
    /// Counts a failed attempt for entries up to `seq`.
    func countOutboxAttempt(through seq: Int64) async throws
    /// How many entries wait.
    func outboxCount() async throws -> Int
}

/// One line of the stop audit (``StateStore/stopHistory(limit:)``).
public struct StopHistoryEntry: Sendable, Hashable {
    /// The stop.
    public var stop: EmergencyStopRecord
    /// When it was cleared, if it was.
    public var clearedAt: WaveTimestamp?
    /// Who cleared it.
    public var clearedBy: String?
}

/// An entry to keep in the outbox (``StateStore/enqueueOutbox(_:)``).
public struct OutboxDraft: Sendable, Hashable {
    /// The stream it goes to.
    public var stream: String
    /// Its fields, in order.
    public var fields: [StreamField]

    /// Creates a draft.
    public init(stream: String, fields: [StreamField]) {
        self.stream = stream
        self.fields = fields
    }
}

extension StateStore {
    /// Sessions of every project, newest first.
    public func sessions() async throws -> [SessionRecord] { try await self.sessions(project: nil) }
    /// A story by business id.
    public func story(_ storyID: String) async throws -> StoryRecord { try await self.story(storyID, session: nil) }
    /// Applies one message in one transaction.
    public func apply(_ incoming: IncomingEvent) async throws -> ApplyResult {
        try await self.apply(batch: [incoming], stopAtSessionChange: false)[0].get()
    }
    /// Adds one to a counter.
    public func bump(_ name: String) async throws { try await self.bump(name, by: 1) }
}
