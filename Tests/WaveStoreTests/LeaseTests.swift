import Foundation
import Synchronization
import Testing
import WaveEngine
import WaveProtocol

@testable import WaveStore

/// A clock a test moves.
final class TestClock: Sendable {
    let now = Mutex(WaveTimestamp(microsecondsSinceEpoch: 1_780_000_000_000_000))
    func advance(_ duration: Duration) { self.now.withLock { $0 = $0.adding(duration) } }
    var read: @Sendable () -> WaveTimestamp { { self.now.withLock { $0 } } }
}

@Suite("Project leases: epochs, renewal, take-over and fenced writes (SQLite, two instances on one file)")
struct LeaseTests {
    /// Two instances' stores on one file (as two processes would open it), one clock.
    func twoInstances(_ name: String = #function) throws -> (SQLiteStateStore, SQLiteStateStore, TestClock) {
        let path = temporaryPath(name)
        let clock = TestClock()
        let a = SQLiteStateStore(try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger()), clock: clock.read)
        let b = SQLiteStateStore(try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger()), clock: clock.read)
        return (a, b, clock)
    }

    /// A gate result for a story of the project `Shop`, as its stream would carry it.
    func result(_ story: String, _ gateNumber: Int, from role: String) throws -> IncomingEvent {
        var message = try gate(story, gateNumber, "pass", from: role)
        message.project = "shop"
        return message
    }

    @Test("a free lease is taken at epoch 1; another instance is refused while it lives, takes it at the next epoch once it lapses")
    func takeAndTakeOver() async throws {
        let (a, b, clock) = try self.twoInstances()
        let first = try #require(try await a.acquireLease(project: "Shop", owner: "a", ttl: .seconds(5)))
        #expect(first.project == "shop" && first.epoch == 1 && first.owner == "a")
        #expect(try await b.acquireLease(project: "shop", owner: "b", ttl: .seconds(5)) == nil, "held by a")
        clock.advance(.seconds(3))
        #expect(try await a.renewLeases(owner: "a", ttl: .seconds(5)).map(\.epoch) == [1], "renewed under the same epoch")
        clock.advance(.seconds(4))
        #expect(try await b.acquireLease(project: "shop", owner: "b", ttl: .seconds(5)) == nil, "renewal kept it alive")
        clock.advance(.seconds(2))
        let taken = try #require(try await b.acquireLease(project: "shop", owner: "b", ttl: .seconds(5)))
        #expect(taken.epoch == 2 && taken.owner == "b")
        #expect(try await a.renewLeases(owner: "a", ttl: .seconds(5)).isEmpty, "a lost it")
        #expect(a.leaseBook.held.isEmpty && b.leaseBook.held["shop"]?.epoch == 2)
        #expect(try await a.leases() == [ProjectLease(project: "shop", owner: "b", epoch: 2, expiresAt: clock.read().adding(.seconds(5)))])
    }

    @Test("fencing: once another instance took the project over, the old owner's transaction fails with lease_lost and writes nothing")
    func fencedWrites() async throws {
        let (a, b, clock) = try self.twoInstances()
        let session = try await a.createSession(project: "Shop", wave: 1, stories: stories([("S-1", [])]), budgetUSD: 10)
        _ = try #require(try await a.acquireLease(project: "shop", owner: "a", ttl: .seconds(5)))
        #expect(try await a.startNextSession(project: "shop")?.id == session.id)
        _ = try await a.startReadyStories(session: session.id)
        let results = try await a.apply(batch: [try self.result("S-1", 0, from: "cto")], stopAtSessionChange: false)
        #expect(try results.allSatisfy { if case .applied = try $0.get() { true } else { false } })
        // a is paused past its lease; b takes the project over and goes on.
        clock.advance(.seconds(6))
        _ = try #require(try await b.acquireLease(project: "shop", owner: "b", ttl: .seconds(5)))
        let late = try self.result("S-1", 1, from: "be")
        await #expect {
            try await a.apply(batch: [late], stopAtSessionChange: false)
        } throws: { error in
            (error as? StoreError)?.code == .leaseLost
        }
        #expect(try await a.isApplied(messageID: late.messageID) == false, "nothing of the fenced transaction was written")
        #expect(try await a.story("S-1").state.currentGate == (try GateID(1)))
        await #expect(throws: StoreError.self) { try await a.startNextSession(project: "shop") }
        // The new owner applies the same signal (redelivered to it) once.
        let applied = try await b.apply(batch: [late], stopAtSessionChange: false)
        #expect(try applied.allSatisfy { if case .applied = try $0.get() { true } else { false } })
        #expect(try await b.story("S-1").state.currentGate == (try GateID(2)))
    }

    @Test("an instance that serves by lease writes nothing for a project it holds no lease on; one that takes no lease is not fenced")
    func unleasedProjects() async throws {
        let (a, b, _) = try self.twoInstances()
        let session = try await a.createSession(project: "Shop", wave: 1, stories: stories([("S-1", [])]), budgetUSD: 10)
        _ = try await a.startNextSession(project: "shop")
        _ = try await a.startReadyStories(session: session.id)
        _ = try #require(try await a.acquireLease(project: "other", owner: "a", ttl: .seconds(5)))
        await #expect {
            try await a.apply(batch: [try self.result("S-1", 0, from: "cto")], stopAtSessionChange: false)
        } throws: { error in
            guard let error = error as? StoreError else { return false }
            return error.code == .leaseLost && error.message.contains("no lease on project shop")
        }
        // b never took a lease: a single instance as before.
        let results = try await b.apply(batch: [try self.result("S-1", 0, from: "cto")], stopAtSessionChange: false)
        #expect(try results.allSatisfy { if case .applied = try $0.get() { true } else { false } })
    }

    @Test("a released lease is taken at once by the next instance, at the next epoch")
    func release() async throws {
        let (a, b, _) = try self.twoInstances()
        _ = try #require(try await a.acquireLease(project: "shop", owner: "a", ttl: .seconds(60)))
        try await a.releaseLease(project: "Shop", owner: "a")
        #expect(a.leaseBook.held.isEmpty)
        let taken = try #require(try await b.acquireLease(project: "shop", owner: "b", ttl: .seconds(60)))
        #expect(taken.epoch == 2)
        try await a.releaseLease(project: "shop", owner: "a")
        #expect(try await b.leases().first?.owner == "b", "releasing a lease one does not hold changes nothing")
    }

    @Test("instances racing for free projects: each project goes to exactly one of them")
    func race() async throws {
        let path = temporaryPath("race")
        let stores = try (0..<4).map { _ in SQLiteStateStore(try SQLiteStore(location: StoreLocation(path: path), logger: quietLogger())) }
        let projects = (0..<6).map { "p\($0)" }
        let won = try await withThrowingTaskGroup(of: [ProjectLease].self) { group in
            for (index, store) in stores.enumerated() {
                group.addTask {
                    var taken: [ProjectLease] = []
                    for project in projects {
                        if let lease = try await store.acquireLease(project: project, owner: "i\(index)", ttl: .seconds(60)) { taken.append(lease) }
                    }
                    return taken
                }
            }
            var all: [ProjectLease] = []
            for try await taken in group { all += taken }
            return all
        }
        #expect(won.map(\.project).sorted() == projects)
        #expect(won.allSatisfy { $0.epoch == 1 })
    }
}
