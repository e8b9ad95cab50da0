import Foundation
import PostgresNIO
import Synchronization
import Testing
import WavePostgres
import WaveProtocol
import WaveStore
import WaveTesting

/// The lease operations both stores implement, for one scenario run on each.
protocol LeaseBackend: Sendable {
    func acquire(_ project: String, _ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> ProjectLease?
    func renew(_ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> [ProjectLease]
    func release(_ project: String, _ owner: String, now: WaveTimestamp) async throws
    func all() async throws -> [ProjectLease]
}

struct SQLiteLeases: LeaseBackend {
    let store: SQLiteStore
    func acquire(_ project: String, _ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> ProjectLease? {
        try self.store.acquireLease(project: project, owner: owner, ttl: ttl, now: now)
    }
    func renew(_ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> [ProjectLease] {
        try self.store.renewLeases(owner: owner, ttl: ttl, now: now)
    }
    func release(_ project: String, _ owner: String, now: WaveTimestamp) async throws { try self.store.releaseLease(project: project, owner: owner, now: now) }
    func all() async throws -> [ProjectLease] { try self.store.leases() }
}

extension PostgresLeases: LeaseBackend {
    func acquire(_ project: String, _ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> ProjectLease? {
        try await self.acquire(project: project, owner: owner, ttl: ttl, now: now)
    }
    func renew(_ owner: String, ttl: Duration, now: WaveTimestamp) async throws -> [ProjectLease] { try await self.renew(owner: owner, ttl: ttl, now: now) }
    func release(_ project: String, _ owner: String, now: WaveTimestamp) async throws { try await self.release(project: project, owner: owner, now: now) }
}

/// Events in the order they happened, from concurrent tasks.
final class Events: Sendable {
    let list = Mutex<[String]>([])
    func append(_ event: String) { self.list.withLock { $0.append(event) } }
    var all: [String] { self.list.withLock { $0 } }
}

/// A migrated database of its own and a running client for `body`.
func withLeases<T: Sendable>(_ name: String = #function, _ body: @Sendable (PostgresLeases, PostgresClient) async throws -> T) async throws -> T {
    let database = try TestDatabase.make(name)
    defer { database.drop() }
    _ = try await migrate(database)
    return try await PostgresConnector(url: database.url, logger: TestDatabase.logger).withClient { client in
        try await body(PostgresLeases(client: client, logger: TestDatabase.logger), client)
    }
}

@Suite("Project leases on PostgreSQL: the SQLite store's rules, across connections", .enabled(if: TestDatabase.available || TestServers.isCI))
struct PostgresLeaseTests {
    /// One scenario, with the clock given: taking, refusing, renewing, lapsing, taking over at the
    /// next epoch, releasing, and a project named in mixed case. Returns every lease at the end.
    static func scenario(_ leases: some LeaseBackend) async throws -> [ProjectLease] {
        let t0 = WaveTimestamp(microsecondsSinceEpoch: 1_780_000_000_000_000)
        let ttl: Duration = .seconds(5)
        let first = try #require(try await leases.acquire("Shop", "a", ttl: ttl, now: t0))
        #expect(first.project == "shop" && first.epoch == 1 && first.expiresAt == t0.adding(ttl))
        #expect(try await leases.acquire("shop", "b", ttl: ttl, now: t0.adding(.seconds(1))) == nil, "a holds it live")
        let again = try #require(try await leases.acquire(" SHOP ", "a", ttl: ttl, now: t0.adding(.seconds(2))))
        #expect(again.epoch == 1 && again.expiresAt == t0.adding(.seconds(7)), "its own live lease is renewed under the same epoch")
        #expect(try await leases.renew("a", ttl: ttl, now: t0.adding(.seconds(3))).map(\.project) == ["shop"])
        _ = try #require(try await leases.acquire("blog", "b", ttl: ttl, now: t0.adding(.seconds(3))))
        // a pauses past its TTL: its lease is not renewed, and b takes it at the next epoch.
        #expect(try await leases.renew("a", ttl: ttl, now: t0.adding(.seconds(20))).isEmpty, "a lapsed lease is not renewed")
        let taken = try #require(try await leases.acquire("shop", "b", ttl: ttl, now: t0.adding(.seconds(20))))
        #expect(taken.owner == "b" && taken.epoch == 2)
        #expect(try await leases.acquire("shop", "a", ttl: ttl, now: t0.adding(.seconds(21))) == nil)
        // b's own lapsed lease, taken again, changes epoch too.
        let retaken = try #require(try await leases.acquire("blog", "b", ttl: ttl, now: t0.adding(.seconds(30))))
        #expect(retaken.epoch == 2, "a lapsed lease taken again by its owner: the next epoch")
        // A release hands over at once.
        try await leases.release("shop", "a", now: t0.adding(.seconds(31)))  // not a's: nothing happens
        try await leases.release("shop", "b", now: t0.adding(.seconds(31)))
        let handed = try #require(try await leases.acquire("shop", "a", ttl: ttl, now: t0.adding(.seconds(31))))
        #expect(handed.epoch == 3 && handed.owner == "a")
        return try await leases.all()
    }

    @Test("the lease rules give the same leases on PostgreSQL as on SQLite")
    func sameRulesAsSQLite() async throws {
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-pg-leases-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: directory) }
        let sqlite = try SQLiteStore(location: StoreLocation(path: directory.appendingPathComponent("wave.sqlite").path), logger: TestDatabase.logger)
        let onSQLite = try await Self.scenario(SQLiteLeases(store: sqlite))
        let onPostgres = try await withLeases { leases, _ in try await Self.scenario(leases) }
        #expect(onPostgres == onSQLite)
        #expect(onPostgres.map(\.project) == ["blog", "shop"])
    }

    @Test("four instances on their own connections race for six projects: each project goes to exactly one, under epoch 1")
    func race() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        _ = try await migrate(database)
        let projects = ["p0", "p1", "p2", "p3", "p4", "p5"]
        let won = try await withThrowingTaskGroup(of: [ProjectLease].self) { group in
            for instance in 0..<4 {
                group.addTask {
                    try await PostgresConnector(url: database.url, logger: TestDatabase.logger).withClient { client in
                        let leases = PostgresLeases(client: client, logger: TestDatabase.logger)
                        var won: [ProjectLease] = []
                        for project in projects.shuffled() {
                            if let lease = try await leases.acquire(project: project, owner: "i\(instance)", ttl: .seconds(30)) { won.append(lease) }
                        }
                        return won
                    }
                }
            }
            return try await group.reduce(into: []) { $0 += $1 }
        }
        #expect(won.map(\.project).sorted() == projects, "each project won once: \(won)")
        #expect(won.allSatisfy { $0.epoch == 1 })
    }

    @Test("the fence: a write for a project taken over is refused; a take-over waits for a fenced transaction in progress")
    func fence() async throws {
        try await withLeases { leases, client in
            let t0 = WaveTimestamp.now()
            let held = try #require(try await leases.acquire(project: "shop", owner: "a", ttl: .seconds(2), now: t0))
            let fence = ["shop": held]
            // A fenced transaction in progress holds the lease row: b's take-over (the lease has
            // lapsed by b's clock) waits until it commits.
            let order = Events()
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask {
                    try await client.withConnection { connection in
                        try await connection.withTransaction(logger: TestDatabase.logger) { connection in
                            try await PostgresLeases.checkFence(connection, projects: ["shop"], fence: fence, logger: TestDatabase.logger)
                            // sleep: test-scaffolding (the transaction stays open while b tries)
                            try await Task.sleep(for: .milliseconds(500))
                            order.append("a committed")
                        }
                    }
                }
                group.addTask {
                    // sleep: test-scaffolding (a's transaction has begun)
                    try await Task.sleep(for: .milliseconds(150))
                    let taken = try await leases.acquire(project: "shop", owner: "b", ttl: .seconds(30), now: t0.adding(.seconds(10)))
                    order.append("b took epoch \(taken?.epoch ?? 0)")
                }
                try await group.waitForAll()
            }
            #expect(order.all == ["a committed", "b took epoch 2"])
            // a's next transaction is refused, whole (postgres-nio wraps what the body threw).
            do {
                try await client.withConnection { connection in
                    try await connection.withTransaction(logger: TestDatabase.logger) { connection in
                        try await PostgresLeases.checkFence(connection, projects: ["shop"], fence: fence, logger: TestDatabase.logger)
                    }
                }
                Issue.record("a fenced transaction under an old epoch was not refused")
            } catch let error as PostgresTransactionError {
                #expect((error.closureError as? StoreError)?.code == .leaseLost, "\(error)")
            }
            do {
                try await client.withConnection { connection in
                    try await PostgresLeases.checkFence(connection, projects: ["blog"], fence: fence, logger: TestDatabase.logger)
                }
                Issue.record("a project without a lease was not refused")
            } catch let error as StoreError {
                #expect(error.code == .leaseLost && error.message.contains("holds no lease on project blog"))
            }
        }
    }
}
