import WaveEngine
import WaveProtocol

/// The orchestrator's durable state: what every store backend provides. ``SQLiteStore`` is the
/// embedded default; a PostgreSQL store (for teams running several orchestrators) implements the
/// same operations with the same guarantees: one transaction per applied message, the ledger
/// making a second application a no-op, optimistic concurrency on the story's `version`.
public protocol StateStore: Sendable {
    /// The rules every story change goes through.
    var engine: StoryEngine { get }

    // Sessions
    /// Creates a pending session with its stories (dependencies checked).
    func createSession(project: String, wave: Int, stories: [NewStory], budgetUSD: Double, now: WaveTimestamp) throws -> SessionRecord
    /// A session by id (with or without dashes).
    func session(id: String) throws -> SessionRecord
    /// Sessions, newest first.
    func sessions(project: String?) throws -> [SessionRecord]
    /// Starts the oldest pending session of a project unless one is in progress.
    func startNextSession(project: String, now: WaveTimestamp) throws -> SessionRecord?
    /// Starts ready stories up to the parallel limit; returns them with their tasks.
    func startReadyStories(session id: String, now: WaveTimestamp) throws -> [(StoryRecord, StoryEffects)]
    /// Pauses a session.
    func pauseSession(_ id: String, messageID: String?, now: WaveTimestamp) throws -> SessionRecord
    /// Resumes a session.
    func resumeSession(_ id: String, messageID: String?, now: WaveTimestamp) throws -> SessionRecord
    /// Cancels a session and its unfinished stories.
    func cancelSession(_ id: String, reason: String, messageID: String?, now: WaveTimestamp) throws -> SessionRecord

    // Stories
    /// The stories of a session.
    func stories(session id: String) throws -> [StoryRecord]
    /// A story by business id.
    func story(_ storyID: String, session: String?) throws -> StoryRecord
    /// Checkpoints in order.
    func checkpoints(session id: String, story: String?) throws -> [CheckpointRecord]

    // Applying messages
    /// Applies one message in one transaction.
    func apply(_ incoming: IncomingEvent, now: WaveTimestamp, jitter: Double) throws -> ApplyResult
    /// Applies several messages in one transaction (with `stopAtSessionChange`, up to one that
    /// changes what its session does next: a prefix of the results).
    func apply(batch: [IncomingEvent], now: WaveTimestamp, jitter: Double?, stopAtSessionChange: Bool) throws -> [Result<ApplyResult, any Error>]

    // Operators
    /// Recovers a story.
    func recover(story storyID: String, session: String?, strategy: RecoveryStrategy, gate target: GateID?, by: String, messageID: String?, now: WaveTimestamp) throws -> RecoveryOutcome
    /// An operator's approval of a manual gate.
    func approve(story storyID: String, session: String?, gate: GateID, by: String, messageID: String, now: WaveTimestamp) throws -> ApplyResult
    /// Stories waiting at a manual gate.
    func awaitingApproval() throws -> [StoryRecord]
    /// Escalations, newest first.
    func escalations(all: Bool) throws -> [EscalationRecord]
    /// Acknowledges an escalation.
    func acknowledgeEscalation(_ id: String, by: String, now: WaveTimestamp) throws

    // Start-up and maintenance
    /// Every working story with its current gate's tasks.
    func inFlightStories(now: WaveTimestamp) throws -> [InFlightStory]
    /// Deletes ledger entries older than the cutoff.
    func pruneLedger(olderThan cutoff: WaveTimestamp) throws -> Int
    /// Deletes old checkpoints of finished stories.
    func pruneCheckpoints(olderThan cutoff: WaveTimestamp) throws -> Int
}

extension SQLiteStore: StateStore {}
