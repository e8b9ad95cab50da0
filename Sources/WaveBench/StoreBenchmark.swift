import Foundation
import GRDB
import Logging
import WaveEngine
import WaveProtocol
import WaveStore

/// `wave bench store`: committed gate transitions per second through the store (the engine's
/// rules, the story row with its version check, the gate checkpoint, the ledger entry, the
/// session's derived counters), one per transaction and batched, beside a raw SQLite loop that
/// commits one row update and one row insert per transition with the same settings and batch
/// size, in the same run.
public struct StoreBenchmark: Sendable {
    /// The figures of one run.
    public struct Result: Sendable, Codable {
        /// Transitions per second, one per transaction.
        public var single_per_s: Double
        /// Transitions per second, ``batch`` per transaction.
        public var batched_per_s: Double
        /// The raw loop, one per transaction.
        public var raw_single_per_s: Double
        /// The raw loop, ``batch`` per transaction.
        public var raw_batched_per_s: Double
        /// `single_per_s / raw_single_per_s` (bar ≥ 0.25).
        public var single_ratio: Double
        /// `batched_per_s / raw_batched_per_s` (bar ≥ 0.25).
        public var batched_ratio: Double
        /// A raw loop on Wave's own tables, ``batch`` per transaction: per transition exactly
        /// the rows Wave writes (the story row, a gate checkpoint, a ledger entry) with fixed
        /// contents and no rules, lookups or encoding: what SQLite alone costs for them.
        public var schema_floor_batched_per_s: Double
        /// `schema_floor_batched_per_s / raw_batched_per_s`: the highest ratio any code writing
        /// these rows could reach against the raw loop.
        public var schema_floor_ratio_to_raw: Double
        /// `batched_per_s / schema_floor_batched_per_s` (bar ≥ 0.75, QUALITY.md).
        public var batched_floor_ratio: Double
        /// Transitions timed in each mode.
        public var transitions: Int
        /// Transitions per transaction in the batched modes.
        public var batch: Int
        /// `NORMAL` or `FULL`.
        public var synchronous: String
    }

    /// Transitions per mode. Default 20 000.
    public var transitions = 20_000
    /// Transitions per transaction when batched. Default 100.
    public var batch = 100
    /// Stories per session. Default 100.
    public var storiesPerSession = 100
    /// Commit durability (of the raw loops; the store's own comes with ``open``).
    public var synchronous = SynchronousMode.normal
    /// Opens the store measured (a SQLite file at the path: the raw loops share its settings).
    public var open: BenchStoreOpener

    /// Creates a benchmark with the defaults, over the stores `open` makes.
    public init(open: @escaping BenchStoreOpener) { self.open = open }

    /// Runs every mode in fresh databases under `directory`.
    public func run(directory: URL, logger: Logger) async throws -> Result {
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        logger.info("raw SQLite loop: \(self.transitions) transitions, one per transaction")
        let rawSingle = try self.raw(path: directory.appendingPathComponent("raw-single.sqlite").path, batch: 1)
        logger.info("wave store: \(self.transitions) transitions, one per transaction")
        let single = try await self.wave(path: directory.appendingPathComponent("single.sqlite").path, batch: 1)
        logger.info("raw SQLite loop: batches of \(self.batch)")
        let rawBatched = try self.raw(path: directory.appendingPathComponent("raw-batched.sqlite").path, batch: self.batch)
        logger.info("wave store: batches of \(self.batch)")
        let batched = try await self.wave(path: directory.appendingPathComponent("batched.sqlite").path, batch: self.batch)
        logger.info("raw loop on Wave's tables: batches of \(self.batch)")
        let floor = try await self.schemaFloor(path: directory.appendingPathComponent("floor.sqlite").path, batch: self.batch)
        return Result(
            single_per_s: single.rounded(), batched_per_s: batched.rounded(), raw_single_per_s: rawSingle.rounded(), raw_batched_per_s: rawBatched.rounded(),
            single_ratio: rounded(single / max(rawSingle, 1)), batched_ratio: rounded(batched / max(rawBatched, 1)),
            schema_floor_batched_per_s: floor.rounded(), schema_floor_ratio_to_raw: rounded(floor / max(rawBatched, 1)),
            batched_floor_ratio: rounded(batched / max(floor, 1)),
            transitions: self.transitions, batch: self.batch, synchronous: self.synchronous.rawValue
        )
    }

    /// Gate results that pass every gate of every story: gate g of all stories, then g + 1.
    func messages(sessions: [(id: String, stories: [String])]) throws -> [IncomingEvent] {
        let owners = ["cto", "be", "be", "be", "qa", "pm", "cto", "cto"]
        var messages: [IncomingEvent] = []
        messages.reserveCapacity(self.transitions)
        for gate in 0..<8 {
            for session in sessions {
                for story in session.stories {
                    guard messages.count < self.transitions else { return messages }
                    let role = owners[gate]
                    messages.append(
                        IncomingEvent(
                            messageID: MessageID.makeTimeOrdered(), eventType: "gate.passed", source: "\(role.uppercased())-1", sessionID: session.id,
                            storyID: story,
                            event: .gateResult(
                                GateResultInput(gate: try GateID(gate), payload: ["result": "pass"], senderRole: role, agentID: "\(role.uppercased())-1"))
                        ))
                }
            }
        }
        return messages
    }

    /// The store, as the runtime calls it (``StateStore``, from its own executor as the
    /// orchestrator's story handler does): transitions per second, `batch` per call.
    func wave(path: String, batch: Int) async throws -> Double {
        var configuration = EngineConfiguration.standard
        configuration.parallelLimit = self.storiesPerSession
        let store = try self.open(path, StoryEngine(configuration: configuration))
        let sessions = try await self.startStories(store)
        let messages = try self.messages(sessions: sessions)
        let (applied, elapsed) = try await withTaskExecutorPreference(store.executor) {
            let clock = ContinuousClock()
            let start = clock.now
            var applied = 0
            var index = 0
            while index < messages.count {
                let chunk = Array(messages[index..<min(index + max(batch, 1), messages.count)])
                for result in try await store.apply(batch: chunk, stopAtSessionChange: false) {
                    if case .success(.applied) = result { applied += 1 }
                }
                index += chunk.count
            }
            return (applied, clock.now - start)
        }
        guard applied == messages.count else { throw BenchmarkError("only \(applied) of \(messages.count) transitions applied") }
        return Double(applied) / seconds(elapsed)
    }

    /// Sessions of ``storiesPerSession`` started stories, enough for ``transitions`` gate passes.
    func startStories(_ store: any StateStore) async throws -> [(id: String, stories: [String])] {
        let storiesNeeded = (self.transitions + 7) / 8
        var sessions: [(id: String, stories: [String])] = []
        var made = 0
        while made < storiesNeeded {
            let count = min(self.storiesPerSession, storiesNeeded - made)
            let ids = (made..<(made + count)).map { "S-\($0)" }
            let project = "bench-\(sessions.count)"
            let session = try await store.createSession(
                project: project, wave: 0, stories: ids.map { NewStory(id: $0, title: $0, domain: "backend", agent: "BE-1") }, budgetUSD: 1_000)
            _ = try await store.startNextSession(project: project)
            _ = try await store.startReadyStories(session: session.id)
            sessions.append((session.id, ids))
            made += count
        }
        return sessions
    }

    /// The raw loop on Wave's tables and indexes (a store created and migrated as Wave's, its
    /// stories started): per transition one story row update (version check, current gate,
    /// metadata, updated_at), one gate checkpoint (its id, parent link and global `seq`) and one
    /// ledger entry, with fixed contents, through the same GRDB statements as ``raw(path:batch:)``.
    func schemaFloor(path: String, batch: Int) async throws -> Double {
        var configuration = EngineConfiguration.standard
        configuration.parallelLimit = self.storiesPerSession
        _ = try await self.startStories(try self.open(path, StoryEngine(configuration: configuration)))
        return try self.floorLoop(path: path, batch: batch)
    }

    /// The schema floor's loop over a store whose stories are started.
    func floorLoop(path: String, batch: Int) throws -> Double {
        let pool = try self.rawPool(path)
        let rows = try pool.read { db in try Row.fetchAll(db, sql: "SELECT id, session_id, story_id, version FROM wave_story_executions ORDER BY rowid") }
        var versions: [Int] = rows.map { $0[3] }
        var parents = [String?](repeating: nil, count: rows.count)
        var seq = try pool.read { db in try Int.fetchOne(db, sql: "SELECT COALESCE(MAX(seq), 0) FROM wave_checkpoints") } ?? 0
        let ids = (0..<self.transitions).map { _ in StoreIDs.make() }
        let messageIDs = (0..<self.transitions).map { _ in MessageID.makeTimeOrdered() }
        let metadata =
            #"{"block_reason":null,"current_gate":"gate-3","dependencies":[],"dev_early_failures":{},"dev_progress":{"be":3},"dev_roles":["be"],"gate_failures":{},"next_attempt_at":null,"planned":false,"story":{},"total_retries":0}"#
        let state = #"{"ac_passed":0,"ac_total":0,"gate":"gate-3","role":"be","status":"passed","timestamp":"2026-11-26T01:09:33.010191Z"}"#
        let now = "2026-11-26 01:09:33.010191"
        return try self.commitLoop(pool, batch: batch) { db, range in
            let update = try db.cachedStatement(
                sql: "UPDATE wave_story_executions SET current_gate = ?, version = ?, metadata = ?, updated_at = ? WHERE id = ? AND version = ?")
            let checkpoint = try db.cachedStatement(
                sql: """
                    INSERT INTO wave_checkpoints (id, session_id, checkpoint_type, checkpoint_name, story_id, gate, state, agent_id, parent_checkpoint_id, created_at, seq, superseded)
                    VALUES (?, ?, 'gate', 'gate passed', ?, ?, ?, 'BE-1', ?, ?, ?, 0)
                    """)
            let ledger = try db.cachedStatement(
                sql: """
                    INSERT INTO wave_processed_messages (message_id, session_id, story_id, event_type, outcome, applied_at) VALUES (?, ?, ?, 'gate.passed', 'applied', ?)
                    """)
            for i in range {
                let k = i % rows.count
                let gate = "gate-\(i / rows.count)"
                let (id, session, story): (String, String, String) = (rows[k][0], rows[k][1], rows[k][2])
                try update.execute(arguments: [gate, versions[k] + 1, metadata, now, id, versions[k]])
                versions[k] += 1
                seq += 1
                try checkpoint.execute(arguments: [ids[i], session, story, gate, state, parents[k], now, seq])
                parents[k] = ids[i]
                try ledger.execute(arguments: [messageIDs[i], session, story, now])
            }
        }
    }

    func raw(path: String, batch: Int) throws -> Double {
        let pool = try self.rawPool(path)
        let stories = (self.transitions + 7) / 8
        try pool.write { db in
            try db.execute(
                sql: """
                    CREATE TABLE raw_story (id INTEGER PRIMARY KEY, gate INTEGER NOT NULL, version INTEGER NOT NULL);
                    CREATE TABLE raw_checkpoint (id INTEGER PRIMARY KEY AUTOINCREMENT, story INTEGER NOT NULL, gate INTEGER NOT NULL, state TEXT NOT NULL);
                    """)
            for id in 0..<stories { try db.execute(sql: "INSERT INTO raw_story VALUES (?, 0, 0)", arguments: [id]) }
        }
        return try self.commitLoop(pool, batch: batch) { db, range in
            let update = try db.cachedStatement(sql: "UPDATE raw_story SET gate = gate + 1, version = version + 1 WHERE id = ? AND version = ?")
            let insert = try db.cachedStatement(sql: "INSERT INTO raw_checkpoint (story, gate, state) VALUES (?, ?, ?)")
            for i in range {
                let story = i % stories
                let gate = i / stories
                try update.execute(arguments: [story, gate])
                try insert.execute(arguments: [story, gate, "{\"gate\":\"gate-\(gate)\",\"status\":\"passed\"}"])
            }
        }
    }

    /// A pool with the store's settings (busy timeout, ``synchronous``, WAL checkpoint interval,
    /// page cache), for the raw loops.
    func rawPool(_ path: String) throws -> DatabasePool {
        var configuration = Configuration()
        configuration.busyMode = .timeout(5)
        let synchronous = self.synchronous.rawValue
        configuration.prepareDatabase { db in
            try db.execute(sql: "PRAGMA synchronous = \(synchronous); PRAGMA wal_autocheckpoint = 10000; PRAGMA cache_size = -65536")
        }
        return try DatabasePool(path: path, configuration: configuration)
    }

    /// Runs `body` for ``transitions`` indexes, `batch` of them per `IMMEDIATE` transaction, and
    /// returns indexes per second.
    func commitLoop(_ pool: DatabasePool, batch: Int, _ body: (Database, Range<Int>) throws -> Void) throws -> Double {
        let clock = ContinuousClock()
        let start = clock.now
        var done = 0
        while done < self.transitions {
            let range = done..<min(done + max(batch, 1), self.transitions)
            try pool.writeWithoutTransaction { db in
                try db.inTransaction(.immediate) {
                    try body(db, range)
                    return .commit
                }
            }
            done = range.upperBound
        }
        return Double(self.transitions) / seconds(clock.now - start)
    }
}

func seconds(_ duration: Duration) -> Double {
    Double(duration.components.seconds) + Double(duration.components.attoseconds) / 1e18
}
