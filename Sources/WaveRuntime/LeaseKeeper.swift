import Logging
import ServiceLifecycle
import Synchronization
import WaveProtocol
import WaveStore

/// Keeps an instance's project leases (SCALE.md, "Several orchestrators"): on a named interval
/// (`orchestrator.lease_renew_ms`) it renews what it holds, takes free or lapsed leases of its
/// configured projects up to its fair share, and gives one up when it holds more than its share
/// (a clean hand-over: the next instance takes it at once, one project per interval). Every
/// project gained or lost is reported on ``changes``.
///
/// The fair share is the configured projects divided by the live instances, rounded up. An
/// instance is live while it holds its **presence lease** (``presenceKey(_:)``, renewed with its
/// project leases on the same interval and TTL): a newcomer is counted from its first round, and
/// a dead one stops counting when its TTL lapses, as its projects do.
public final class LeaseKeeper: Service, Sendable {
    /// What the keeper does, and when.
    public struct Settings: Sendable {
        /// How long a lease lasts unless renewed (`orchestrator.lease_ttl_ms`). Default 5 s.
        public var ttl: Duration = .seconds(5)
        /// How often leases are renewed and taken (`orchestrator.lease_renew_ms`). Default 1 s.
        public var renewInterval: Duration = .seconds(1)
        /// The defaults.
        public init() {}
    }

    /// A project gained or lost.
    public enum Change: Sendable, Hashable {
        /// The instance now serves the project under this lease.
        case gained(ProjectLease)
        /// The instance no longer serves the project (lost to another instance, or given up).
        case lost(String)
    }

    let store: any StateStore
    let owner: String
    let projects: [String]
    let settings: Settings
    let logger: Logger
    let held = Mutex<[String: ProjectLease]>([:])
    let changeStream: AsyncStream<Change>
    let changeInput: AsyncStream<Change>.Continuation
    let handOverHandler = Mutex<(@Sendable (String) async -> Void)?>(nil)

    /// A keeper for `owner` (the instance's consumer name) over `projects`.
    public init(store: any StateStore, owner: String, projects: [ProjectName], settings: Settings = Settings(), logger: Logger) {
        self.store = store
        self.owner = owner
        self.projects = projects.map(\.key).sorted()
        self.settings = settings
        self.logger = logger
        (self.changeStream, self.changeInput) = AsyncStream.makeStream(of: Change.self)
    }

    /// Every project gained or lost, in order.
    public var changes: AsyncStream<Change> { self.changeStream }

    /// The lease that says an instance is alive: `instance:{owner}` (a colon cannot appear in a
    /// project name, so it never names a project). It never fences a write.
    public static func presenceKey(_ owner: String) -> String { "instance:\(owner)" }

    /// Whether a lease is an instance's presence rather than a project's.
    public static func isPresence(_ lease: ProjectLease) -> Bool { lease.project.hasPrefix("instance:") }

    /// Sets what runs before a lease is given up (a surplus one, or every one at graceful
    /// shutdown), awaited: the instance stops serving the project and finishes what it has in
    /// hand, so that the next owner starts from a clean hand-over. A lease lost to its TTL gets
    /// no hand-over (the instance learns of it afterwards): only ``Change/lost(_:)``.
    public func onHandOver(_ handler: @escaping @Sendable (String) async -> Void) {
        self.handOverHandler.withLock { $0 = handler }
    }

    func handOver(_ project: String) async {
        if let handler = self.handOverHandler.withLock({ $0 }) { await handler(project) }
    }

    /// The projects served now.
    public var projectsHeld: Set<String> { Set(self.held.withLock { $0.keys }) }

    /// Renews, takes and gives up leases until graceful shutdown, then gives up every lease held
    /// (the next instance takes them at once).
    public func run() async throws {
        await cancelWhenGracefulShutdown {
            await supervised("the lease keeper", logger: self.logger) {
                while !Task.isCancelled {
                    try await self.tick()
                    // sleep: interval lease_renew_ms
                    try await Task.sleep(for: self.settings.renewInterval)
                }
            }
        }
        await self.releaseAll()
    }

    /// One round: renew, give up one lease above the fair share, take free ones up to it.
    /// Returns what changed (also sent on ``changes``).
    @discardableResult
    public func tick() async throws -> [Change] {
        var changes: [Change] = []
        var reported = 0
        let before = self.held.withLock { $0 }
        let renewed = try await self.store.renewLeases(owner: self.owner, ttl: self.settings.ttl)
        if !renewed.contains(where: { $0.project == Self.presenceKey(self.owner) }) {
            _ = try await self.store.acquireLease(project: Self.presenceKey(self.owner), owner: self.owner, ttl: self.settings.ttl)
        }
        let kept = Dictionary(renewed.filter { !Self.isPresence($0) }.map { ($0.project, $0) }, uniquingKeysWith: { _, new in new })
        for project in before.keys.sorted() where kept[project] == nil {
            self.logger.warning("lease lost: another instance serves the project now", metadata: ["wave.project": "\(project)"])
            changes.append(.lost(project))
        }
        var holding = kept.filter { self.projects.contains($0.key) }
        // A lease renewed that this process did not hold: an instance restarted under the same
        // name before its leases lapsed carries on with them (same epoch), and serves them now.
        for project in holding.keys.sorted() where before[project] == nil {
            self.logger.info("lease kept from before a restart", metadata: ["wave.project": "\(project)", "wave.epoch": "\(holding[project]!.epoch)"])
            changes.append(.gained(holding[project]!))
        }
        let share = try await self.fairShare()
        if holding.count > share, let surplus = holding.keys.sorted().last {
            // What changed so far is reported first; the project given up no longer counts as
            // held while the instance hands it over.
            holding[surplus] = nil
            self.held.withLock { $0 = holding }
            for change in changes { self.changeInput.yield(change) }
            reported = changes.count
            await self.handOver(surplus)
            try await self.store.releaseLease(project: surplus, owner: self.owner)
            self.logger.info("lease given up to spread the projects", metadata: ["wave.project": "\(surplus)", "wave.share": "\(share)"])
            changes.append(.lost(surplus))
        }
        for project in self.projects where holding[project] == nil && holding.count < share {
            guard let lease = try await self.store.acquireLease(project: project, owner: self.owner, ttl: self.settings.ttl) else { continue }
            holding[project] = lease
            self.logger.info("lease taken", metadata: ["wave.project": "\(project)", "wave.epoch": "\(lease.epoch)"])
            changes.append(.gained(lease))
        }
        self.held.withLock { $0 = holding }
        for change in changes.dropFirst(reported) { self.changeInput.yield(change) }
        return changes
    }

    /// The configured projects divided by the live instances, rounded up. Live: this instance and
    /// the owners of live leases (every running instance holds its presence lease).
    func fairShare() async throws -> Int {
        let now = self.store.now()
        var live: Set<String> = [self.owner]
        for lease in try await self.store.leases() where !lease.owner.isEmpty && lease.expiresAt > now { live.insert(lease.owner) }
        return (self.projects.count + live.count - 1) / max(live.count, 1)
    }

    /// Gives up every lease held (graceful shutdown).
    func releaseAll() async {
        for project in self.held.withLock({ Array($0.keys) }).sorted() {
            await self.handOver(project)
            do {
                try await self.store.releaseLease(project: project, owner: self.owner)
                self.changeInput.yield(.lost(project))
            } catch {
                self.logger.warning("lease not released; it lapses after its TTL", metadata: ["wave.project": "\(project)", "wave.error": "\(error)"])
            }
        }
        self.held.withLock { $0 = [:] }
        // Gone: the others count one instance fewer at their next round.
        try? await self.store.releaseLease(project: Self.presenceKey(self.owner), owner: self.owner)
        self.changeInput.finish()
    }
}
