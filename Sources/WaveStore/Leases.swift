import Synchronization
import WaveProtocol

/// A project's lease (SCALE.md, "Several orchestrators"): the instance that serves the project,
/// the epoch (fencing token) it took it under, and until when it holds it unless it renews.
public struct ProjectLease: Sendable, Hashable {
    /// The project (its key: trimmed, lower-cased).
    public var project: String
    /// The instance (its consumer name); empty when released.
    public var owner: String
    /// Incremented each time the lease changes hands: a write carrying an older epoch is refused.
    public var epoch: Int64
    /// When it lapses unless renewed.
    public var expiresAt: WaveTimestamp

    /// Creates a lease value.
    public init(project: String, owner: String, epoch: Int64, expiresAt: WaveTimestamp) {
        self.project = project
        self.owner = owner
        self.epoch = epoch
        self.expiresAt = expiresAt
    }
}

/// The leases one store connection's instance holds, by project key: what its writes are fenced
/// with. Empty and off until the instance takes its first lease (a single instance without
/// leases writes unfenced, as before).
public final class LeaseBook: Sendable {
    struct State {
        var on = false
        var held: [String: ProjectLease] = [:]
    }
    let state = Mutex(State())

    /// An empty book.
    public init() {}

    /// Whether the instance serves projects by lease (its project writes are then fenced).
    public var isOn: Bool { self.state.withLock { $0.on } }

    /// The leases held now.
    public var held: [String: ProjectLease] { self.state.withLock { $0.held } }

    /// Records a lease taken or renewed (and turns fencing on).
    func hold(_ lease: ProjectLease) {
        self.state.withLock {
            $0.on = true
            $0.held[lease.project] = lease
        }
    }

    /// Forgets a lease lost or released.
    func drop(_ project: String) {
        _ = self.state.withLock { $0.held.removeValue(forKey: project) }
    }

    /// The fence for a write: `nil` when leasing is off, else the epochs held by project.
    var fence: [String: ProjectLease]? { self.state.withLock { $0.on ? $0.held : nil } }
}
