import Foundation
import Logging
import PostgresNIO
import WaveProtocol
import WaveStore

/// Project leases in a PostgreSQL store (SCALE.md, "Several orchestrators"), under the rules the
/// SQLite store keeps (`SQLiteStore+Leases.swift`): a free, released or lapsed lease is taken with
/// its epoch incremented, the owner's own live lease is renewed under the same epoch, a lapsed
/// lease is never renewed (taking it again changes the epoch), and a release hands a lease over at
/// once.
///
/// Each change is one statement, atomic under the row's lock, so instances on any number of
/// machines never both take a lease. A transaction that writes for projects checks its fence with
/// ``checkFence(_:projects:fence:logger:)`` first, which locks the lease rows `FOR SHARE`: a
/// take-over's update waits for that transaction to end, and a transaction that starts after the
/// take-over sees the new epoch and is refused.
public struct PostgresLeases: Sendable {
    let client: PostgresClient
    let logger: Logger

    /// Leases through a running client.
    public init(client: PostgresClient, logger: Logger) {
        self.client = client
        self.logger = logger
    }

    /// Takes or renews `owner`'s lease on `project` for `ttl`; `nil` when another instance holds
    /// it live.
    public func acquire(project: String, owner: String, ttl: Duration, now: WaveTimestamp = .now()) async throws -> ProjectLease? {
        let key = Self.key(project)
        let (nowDate, expires) = (Self.date(now), Self.date(now.adding(ttl)))
        let rows = try await self.client.query(
            """
            INSERT INTO wave_project_leases AS l (project, owner, epoch, expires_at) VALUES (\(key), \(owner), 1, \(expires))
            ON CONFLICT (project) DO UPDATE
                SET owner = EXCLUDED.owner,
                    epoch = CASE WHEN l.owner = EXCLUDED.owner AND l.expires_at > \(nowDate) THEN l.epoch ELSE l.epoch + 1 END,
                    expires_at = EXCLUDED.expires_at
                WHERE l.owner = '' OR l.expires_at <= \(nowDate) OR l.owner = EXCLUDED.owner
            RETURNING project, owner, epoch, expires_at
            """, logger: self.logger)
        return try await Self.leases(rows).first
    }

    /// Renews `owner`'s live leases for `ttl` and returns them, by project.
    public func renew(owner: String, ttl: Duration, now: WaveTimestamp = .now()) async throws -> [ProjectLease] {
        let rows = try await self.client.query(
            """
            UPDATE wave_project_leases SET expires_at = \(Self.date(now.adding(ttl)))
            WHERE owner = \(owner) AND expires_at > \(Self.date(now))
            RETURNING project, owner, epoch, expires_at
            """, logger: self.logger)
        return try await Self.leases(rows).sorted { $0.project < $1.project }
    }

    /// Gives `owner`'s lease on `project` up: the next instance takes it at once, with the next epoch.
    public func release(project: String, owner: String, now: WaveTimestamp = .now()) async throws {
        try await self.client.query(
            "UPDATE wave_project_leases SET owner = '', expires_at = \(Self.date(now)) WHERE project = \(Self.key(project)) AND owner = \(owner)",
            logger: self.logger)
    }

    /// Every lease, by project.
    public func all() async throws -> [ProjectLease] {
        let rows = try await self.client.query("SELECT project, owner, epoch, expires_at FROM wave_project_leases ORDER BY project", logger: self.logger)
        return try await Self.leases(rows)
    }

    /// Refuses, in a transaction about to write for `projects`, any project not served under the
    /// epoch the writing instance holds (``StoreError/Code/leaseLost``), and holds the lease rows
    /// (`FOR SHARE`) until the transaction ends, so that no take-over commits in between.
    public static func checkFence(
        _ connection: PostgresConnection, projects: Set<String>, fence: [String: ProjectLease], logger: Logger
    ) async throws {
        guard !projects.isEmpty else { return }
        for project in projects.sorted() where fence[project] == nil {
            throw StoreError(.leaseLost, "this instance holds no lease on project \(project); its changes are not written")
        }
        let rows = try await connection.query(
            "SELECT project, owner, epoch, expires_at FROM wave_project_leases WHERE project = ANY(\(projects.sorted())) ORDER BY project FOR SHARE",
            logger: logger)
        let stored = Dictionary(try await Self.leases(rows).map { ($0.project, $0) }, uniquingKeysWith: { first, _ in first })
        for project in projects.sorted() {
            let held = fence[project]!
            guard let current = stored[project], current.owner == held.owner, current.epoch == held.epoch else {
                throw StoreError(.leaseLost, "the lease on project \(project) was taken over (epoch \(held.epoch) is no longer current); nothing was written")
            }
        }
    }

    /// A project's key as leases store it: trimmed and lower-cased (as on SQLite).
    static func key(_ project: String) -> String { project.trimmingCharacters(in: .whitespaces).lowercased() }

    static func date(_ timestamp: WaveTimestamp) -> Date {
        Date(timeIntervalSince1970: Double(timestamp.microsecondsSinceEpoch) / 1_000_000)
    }

    static func timestamp(_ date: Date) -> WaveTimestamp {
        WaveTimestamp(microsecondsSinceEpoch: Int64((date.timeIntervalSince1970 * 1_000_000).rounded()))
    }

    static func leases(_ rows: PostgresRowSequence) async throws -> [ProjectLease] {
        var leases: [ProjectLease] = []
        for try await (project, owner, epoch, expires) in rows.decode((String, String, Int64, Date).self) {
            leases.append(ProjectLease(project: project, owner: owner, epoch: epoch, expiresAt: Self.timestamp(expires)))
        }
        return leases
    }
}
