import GRDB
import WaveProtocol

// Project leases (SCALE.md): one row per project in `wave_project_leases`, changed only in
// `IMMEDIATE` transactions, so that two instances (processes on one file) never both take one.

extension SQLiteStore {
    /// Takes or renews `owner`'s lease on `project` for `ttl`: a free, released or lapsed lease
    /// is taken with its epoch incremented; `owner`'s own live lease is renewed under the same
    /// epoch. Returns `nil` when another instance holds it.
    public func acquireLease(project: String, owner: String, ttl: Duration, now: WaveTimestamp = .now()) throws -> ProjectLease? {
        let key = Self.projectKey(project)
        return try self.immediateWrite { db in
            let expires = now.adding(ttl)
            guard let current = try Self.lease(db, key) else {
                let lease = ProjectLease(project: key, owner: owner, epoch: 1, expiresAt: expires)
                try Self.writeLease(db, lease, insert: true)
                return lease
            }
            let live = current.expiresAt > now && !current.owner.isEmpty
            if live, current.owner != owner { return nil }
            let lease = ProjectLease(project: key, owner: owner, epoch: live ? current.epoch : current.epoch + 1, expiresAt: expires)
            try Self.writeLease(db, lease, insert: false)
            return lease
        }
    }

    /// Renews `owner`'s live leases for `ttl`; returns those it still holds (a lease that lapsed
    /// is not renewed: taking it again changes its epoch, fencing off the writes made under the
    /// old one).
    public func renewLeases(owner: String, ttl: Duration, now: WaveTimestamp = .now()) throws -> [ProjectLease] {
        try self.immediateWrite { db in
            var renewed: [ProjectLease] = []
            for var lease in try Self.leases(db) where lease.owner == owner && lease.expiresAt > now {
                lease.expiresAt = now.adding(ttl)
                try Self.writeLease(db, lease, insert: false)
                renewed.append(lease)
            }
            return renewed
        }
    }

    /// Gives `owner`'s lease on `project` up (a clean hand-over): the next instance takes it at
    /// once, with the next epoch.
    public func releaseLease(project: String, owner: String, now: WaveTimestamp = .now()) throws {
        let key = Self.projectKey(project)
        try self.immediateWrite { db in
            guard var lease = try Self.lease(db, key), lease.owner == owner else { return }
            lease.owner = ""
            lease.expiresAt = now
            try Self.writeLease(db, lease, insert: false)
        }
    }

    /// Every project's lease.
    public func leases() throws -> [ProjectLease] {
        try self.pool.read { db in try Self.leases(db) }
    }

    /// Refuses the transaction when a project it writes is not served under the epoch this
    /// instance holds (another instance took it over): ``StoreError/Code/leaseLost``.
    func checkFence(_ db: Database, projects: Set<String>, fence: [String: ProjectLease]) throws {
        for project in projects {
            guard let held = fence[project] else {
                throw StoreError(.leaseLost, "this instance holds no lease on project \(project); its changes are not written")
            }
            guard let stored = try Self.lease(db, project), stored.owner == held.owner, stored.epoch == held.epoch else {
                throw StoreError(.leaseLost, "the lease on project \(project) was taken over (epoch \(held.epoch) is no longer current); nothing was written")
            }
        }
    }

    static func lease(_ db: Database, _ project: String) throws -> ProjectLease? {
        try Row.fetchOne(cached: db, sql: "SELECT * FROM wave_project_leases WHERE project = ?", arguments: [project]).map(Self.lease(row:))
    }

    static func leases(_ db: Database) throws -> [ProjectLease] {
        try Row.fetchAll(cached: db, sql: "SELECT * FROM wave_project_leases ORDER BY project").map(Self.lease(row:))
    }

    static func lease(row: Row) -> ProjectLease {
        ProjectLease(
            project: row["project"], owner: row["owner"], epoch: row["epoch"],
            expiresAt: Self.timestamp(row["expires_at"]) ?? WaveTimestamp(microsecondsSinceEpoch: 0))
    }

    static func writeLease(_ db: Database, _ lease: ProjectLease, insert: Bool) throws {
        try db.execute(
            cached: insert
                ? "INSERT INTO wave_project_leases (owner, epoch, expires_at, project) VALUES (?, ?, ?, ?)"
                : "UPDATE wave_project_leases SET owner = ?, epoch = ?, expires_at = ? WHERE project = ?",
            arguments: [lease.owner, lease.epoch, Self.format(lease.expiresAt), lease.project])
    }
}
