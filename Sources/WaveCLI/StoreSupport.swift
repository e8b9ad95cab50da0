import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveEngine
import WaveOperations
import WaveProtocol
import WaveRedis
import WaveStore

extension GlobalOptions {
    /// `--store`, else `WAVE_STORE`, else `DATABASE_URL`, else `POSTGRES_*`, else the
    /// configuration file's `store`, else `.wave/wave.sqlite`.
    func storeURL() throws -> StoreURL {
        let settings = try Settings.load(self)
        guard settings.store.source != .default else { return .sqlite(.default) }
        do { return try StoreURL(settings.store.value) } catch { throw CLIError.badInput(error.message) }
    }

    /// The SQLite file of ``storeURL()``, for what runs on SQLite only so far.
    func storeLocation() throws -> StoreLocation {
        switch try self.storeURL() {
        case .sqlite(let location): return location
        case .postgres(let url): throw CLIError.postgresNotYet(url)
        }
    }

    /// The migrations not applied yet to the store at `location` (`wave store migrate --dry-run`).
    func pendingMigrations(at location: StoreLocation) throws -> [(id: String, summary: String)] {
        try SQLiteStore.pendingMigrations(at: location)
    }

    /// Opens the store (running pending migrations, logged on stderr) behind ``StateStore``.
    func openStore(engine: StoryEngine = StoryEngine()) throws -> any StateStore {
        try self.openStore(at: try self.storeLocation(), engine: engine, logger: Logger(label: "wave.store"))
    }

    /// Opens the store at `location` behind ``StateStore``.
    func openStore(at location: StoreLocation, engine: StoryEngine, logger: Logger) throws -> any StateStore {
        do {
            // The composition root: the one place the CLI names the store's implementation.
            return try SQLiteStore(location: location, engine: engine, logger: logger).asStateStore
        } catch let error as StoreError {
            throw CLIError.from(error)
        } catch {
            throw CLIError(exitCode: 1, message: "cannot open the store at \(location): \(error)")
        }
    }

    /// Publishes the event announcing a change already committed (with `message_id` in the
    /// ledger), on the project's system stream; without `--redis`, warns that no running
    /// orchestrator was told.
    func announce(_ envelope: Envelope, project: String) async throws {
        guard let url = self.redisURL else {
            FileHandle.standardError.write(Data("warning: no running orchestrator was notified (no --redis)\n".utf8))
            return
        }
        let configuration: RedisConfiguration
        do { configuration = try RedisConfiguration(url: url) } catch { throw CLIError.badInput(error.message) }
        let logger = Logger(label: "wave.notify")
        let client = try RedisClient(configuration: configuration, logger: logger)
        defer { Task { await client.shutdown() } }
        do {
            _ = try await RedisEventBus(client: client, logger: logger).publish(envelope, to: Channels.system(try ProjectName(project)))
        } catch {
            throw CLIError(exitCode: 3, message: "the change is saved, but the orchestrators could not be told: \(CLIError.from(error).message)")
        }
    }
}

extension CLIError {
    /// A PostgreSQL store given to a command that does not run on one yet.
    static func postgresNotYet(_ url: PostgresURL) -> CLIError {
        CLIError(
            exitCode: 2,
            message:
                "\(url): on PostgreSQL, `wave store migrate [--dry-run]` works so far; the other commands need the PostgreSQL StateStore, which is not built yet (use sqlite:PATH)"
        )
    }

    static func from(_ error: StoreError) -> CLIError {
        switch error.code {
        case .notFound:
            CLIError(exitCode: 2, message: "\(error.message) (hint: wave session list, then wave session show ID, lists sessions and their stories)")
        case .ambiguous: CLIError(exitCode: 2, message: "\(error.message) (hint: name the session with --session ID)")
        case .invalidURL, .invalidInput, .notAllowed: CLIError(exitCode: 2, message: error.message)
        case .migrationBlocked, .conflict, .withdrawn, .leaseLost: CLIError(exitCode: 1, message: error.message)
        case .unreachable, .authenticationFailed: CLIError(exitCode: 3, message: error.message)
        }
    }
}

/// Runs `body`, turning store errors into one-line CLI errors.
func storeCall<T>(_ body: () throws -> T) throws -> T {
    do {
        return try body()
    } catch let error as StoreError {
        throw CLIError.from(error)
    }
}

/// ``storeCall(_:)`` for the asynchronous store.
func storeCall<T>(_ body: () async throws -> T) async throws -> T {
    do {
        return try await body()
    } catch let error as StoreError {
        throw CLIError.from(error)
    }
}

/// `--by`'s default: `$USER@hostname`.
func defaultOperator() -> String {
    let user = ProcessInfo.processInfo.environment["USER"] ?? ProcessInfo.processInfo.environment["LOGNAME"] ?? "operator"
    return "\(user)@\(ProcessInfo.processInfo.hostName)"
}

/// A session as `--json` prints it (SYSTEM.md).
struct SessionJSON: Encodable {
    var id: String
    var project: String
    var wave: Int
    var status: String
    var paused: Bool
    var story_count: Int
    var stories_completed: Int
    var stories_failed: Int
    var budget_usd: Double
    var actual_cost_usd: Double
    var token_count: Int

    init(_ session: SessionRecord) {
        self.id = session.displayID
        self.project = session.project
        self.wave = session.wave
        self.status = session.status.rawValue
        self.paused = session.isPaused
        self.story_count = session.storyCount
        self.stories_completed = session.storiesCompleted
        self.stories_failed = session.storiesFailed
        self.budget_usd = session.budgetUSD
        self.actual_cost_usd = session.actualCostUSD
        self.token_count = session.tokenCount
    }
}

/// A story as `--json` prints it (SYSTEM.md).
struct StoryJSON: Encodable {
    var story_id: String
    var session_id: String
    var status: String
    var current_gate: String
    var retry_count: Int
    var acceptance_criteria_passed: Int
    var acceptance_criteria_total: Int
    var blocked_reason: String?
    var title: String
    var dependencies: [String]
    var next_attempt_at: String?
    var total_retries: Int
    var cost_usd: Double
    var tokens: Int

    init(_ record: StoryRecord) {
        let state = record.state
        self.story_id = state.storyID
        self.session_id = StoreIDs.display(state.sessionID)
        self.status = state.status.rawValue
        self.current_gate = state.currentGate.description
        self.retry_count = state.retryCount
        self.acceptance_criteria_passed = state.acceptanceCriteriaPassed
        self.acceptance_criteria_total = state.acceptanceCriteriaTotal
        self.blocked_reason = state.blockedReason
        self.title = record.title
        self.dependencies = state.dependencies
        self.next_attempt_at = state.nextAttemptAt?.description
        self.total_retries = state.totalRetries
        self.cost_usd = state.costUSD
        self.tokens = state.tokens
    }

    // Encode `blocked_reason` as null rather than leaving the key out: the key is required.
    func encode(to encoder: any Encoder) throws {
        var container = encoder.container(keyedBy: CodingKeys.self)
        try container.encode(self.story_id, forKey: .story_id)
        try container.encode(self.session_id, forKey: .session_id)
        try container.encode(self.status, forKey: .status)
        try container.encode(self.current_gate, forKey: .current_gate)
        try container.encode(self.retry_count, forKey: .retry_count)
        try container.encode(self.acceptance_criteria_passed, forKey: .acceptance_criteria_passed)
        try container.encode(self.acceptance_criteria_total, forKey: .acceptance_criteria_total)
        try container.encode(self.blocked_reason, forKey: .blocked_reason)
        try container.encode(self.title, forKey: .title)
        try container.encode(self.dependencies, forKey: .dependencies)
        try container.encode(self.next_attempt_at, forKey: .next_attempt_at)
        try container.encode(self.total_retries, forKey: .total_retries)
        try container.encode(self.cost_usd, forKey: .cost_usd)
        try container.encode(self.tokens, forKey: .tokens)
    }

    enum CodingKeys: String, CodingKey {
        case story_id, session_id, status, current_gate, retry_count, acceptance_criteria_passed, acceptance_criteria_total, blocked_reason
        case title, dependencies, next_attempt_at, total_retries, cost_usd, tokens
    }
}

/// The reference's story files (``StoryFile``); an error is a usage error naming the file.
func loadStories(from path: String) throws -> [NewStory] {
    do { return try StoryFile.load(from: path) } catch { throw CLIError.badInput("--stories: \(error.message)") }
}
