import Foundation
import Logging
import Synchronization
import Testing
import WaveProtocol
import WaveStore
import WaveTesting

@testable import WaveRuntime

/// Two instances' stores on one SQLite file (as two processes open it) and a clock the test moves.
struct LeaseWorld {
    final class Clock: Sendable {
        let now = Mutex(WaveTimestamp(microsecondsSinceEpoch: 1_780_000_000_000_000))
        func advance(_ duration: Duration) { self.now.withLock { $0 = $0.adding(duration) } }
        var read: @Sendable () -> WaveTimestamp { { self.now.withLock { $0 } } }
    }

    let clock = Clock()
    let path: String

    init(_ name: String = #function) {
        self.path =
            FileManager.default.temporaryDirectory.appendingPathComponent(
                "wave-leases-\(UUID().uuidString.prefix(8))/\(name.prefix(while: { $0 != "(" })).sqlite"
            ).path
    }

    func store() throws -> SQLiteStateStore {
        var logger = Logger(label: "lease-test")
        logger.logLevel = .critical
        return SQLiteStateStore(try SQLiteStore(location: StoreLocation(path: self.path), logger: logger), clock: self.clock.read)
    }

    func keeper(_ store: any StateStore, _ owner: String, projects: [String]) throws -> LeaseKeeper {
        var settings = LeaseKeeper.Settings()
        settings.ttl = .seconds(5)
        var logger = Logger(label: "lease-test")
        logger.logLevel = .critical
        return LeaseKeeper(store: store, owner: owner, projects: try projects.map { try ProjectName($0) }, settings: settings, logger: logger)
    }

    /// Takes or renews an instance's presence lease, as its keeper does at the start of each
    /// round (how the others count it live).
    func present(_ store: any StateStore, _ owner: String) async throws {
        _ = try await store.acquireLease(project: LeaseKeeper.presenceKey(owner), owner: owner, ttl: .seconds(5))
    }
}

@Suite("The lease keeper: fair shares, clean hand-over, take-over of a dead instance's projects")
struct LeaseKeeperTests {
    let projects = ["P0", "p1", "P2", "p3"]

    @Test("alone it serves every project; a second instance gets half, one project per round, each handed over cleanly")
    func spreads() async throws {
        let world = LeaseWorld()
        let (storeA, storeB) = (try world.store(), try world.store())
        let a = try world.keeper(storeA, "a", projects: self.projects)
        let b = try world.keeper(storeB, "b", projects: self.projects)
        try await world.present(storeA, "a")
        #expect(
            Set(try await a.tick())
                == Set(
                    ["p0", "p1", "p2", "p3"].map {
                        LeaseKeeper.Change.gained(ProjectLease(project: $0, owner: "a", epoch: 1, expiresAt: world.clock.read().adding(.seconds(5))))
                    }))
        try await world.present(storeB, "b")
        #expect(try await b.tick().isEmpty, "every project is held by a live instance")
        // a sees b: its share is 2; it gives one up per round, and b takes it at once.
        #expect(try await a.tick() == [.lost("p3")])
        let first = try await b.tick()
        #expect(first.count == 1 && b.projectsHeld == ["p3"])
        guard case .gained(let lease)? = first.first else { throw TestEnvironmentError(message: "no lease gained") }
        #expect(lease.epoch == 2, "taken after a's release: the next epoch")
        #expect(try await a.tick() == [.lost("p2")])
        _ = try await b.tick()
        let (stableA, stableB) = (try await a.tick(), try await b.tick())
        #expect(stableA.isEmpty && stableB.isEmpty, "stable at the fair share")
        #expect(a.projectsHeld == ["p0", "p1"] && b.projectsHeld == ["p2", "p3"])
        #expect(Set(try await storeA.leases().map(\.owner)) == ["a", "b"])
    }

    @Test("an instance that dies holding leases: within its TTL the survivor serves its projects under new epochs; if it wakes it has lost them")
    func takesOverTheDead() async throws {
        let world = LeaseWorld()
        let (storeA, storeB) = (try world.store(), try world.store())
        let a = try world.keeper(storeA, "a", projects: self.projects)
        let b = try world.keeper(storeB, "b", projects: self.projects)
        try await world.present(storeA, "a")
        try await world.present(storeB, "b")
        _ = try await a.tick()
        _ = try await b.tick()
        #expect(a.projectsHeld.count == 2 && b.projectsHeld.count == 2, "\(a.projectsHeld) \(b.projectsHeld)")
        let aHeld = a.projectsHeld
        // a stops (SIGSTOP, a crash): it renews nothing. b goes on renewing each second.
        for _ in 0..<4 {
            world.clock.advance(.seconds(1))
            try await world.present(storeB, "b")
            #expect(try await b.tick().isEmpty, "a's leases are still live")
        }
        world.clock.advance(.seconds(2))
        try await world.present(storeB, "b")
        let gained = try await b.tick()
        #expect(Set(gained.compactMap { if case .gained(let lease) = $0 { lease.project } else { nil } }) == aHeld)
        #expect(gained.allSatisfy { if case .gained(let lease) = $0 { lease.epoch == 2 } else { false } })
        #expect(b.projectsHeld == Set(self.projects.map { $0.lowercased() }))
        // a wakes: its renewal finds nothing, so it reports its projects lost and its store fences them.
        let woke = try await a.tick()
        #expect(Set(woke) == Set(aHeld.map { LeaseKeeper.Change.lost($0) }))
        #expect(storeA.leaseBook.held.values.filter { !LeaseKeeper.isPresence($0) }.isEmpty, "only its presence is held again")
    }

    @Test("a graceful stop gives every lease up: the other instance takes them at once, without waiting for the TTL")
    func releasesOnShutdown() async throws {
        let world = LeaseWorld()
        let (storeA, storeB) = (try world.store(), try world.store())
        let a = try world.keeper(storeA, "a", projects: self.projects)
        let b = try world.keeper(storeB, "b", projects: self.projects)
        _ = try await a.tick()
        await a.releaseAll()
        #expect(try await storeA.leases().allSatisfy { $0.owner.isEmpty })
        var lost: [LeaseKeeper.Change] = []
        for await change in a.changes { lost.append(change) }
        #expect(lost.filter { if case .lost = $0 { true } else { false } }.count == 4, "every lease given up is reported; the stream then ends")
        _ = try await b.tick()
        #expect(b.projectsHeld.count == 4)
    }
}
