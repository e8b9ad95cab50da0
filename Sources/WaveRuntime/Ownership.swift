import Synchronization

/// The projects an instance serves (SCALE.md, "Several orchestrators"): every configured project
/// when it runs alone without leases, or only those whose leases it holds. A task of a project
/// the instance does not serve is never sent by it, and an operator's announcement for such a
/// project is left to its owner.
public final class Ownership: Sendable {
    /// `nil`: every project.
    let served: Mutex<Set<String>?>

    /// Every project (`leased` false), or none until leases are taken.
    public init(leased: Bool = false) {
        self.served = Mutex(leased ? [] : nil)
    }

    /// Whether the instance serves projects by lease.
    public var isLeased: Bool { self.served.withLock { $0 != nil } }

    /// Whether the instance serves the project (its key).
    public func serves(_ project: String) -> Bool {
        self.served.withLock { $0?.contains(project) ?? true }
    }

    /// The projects served, when by lease; `nil`: every project.
    public var projects: Set<String>? { self.served.withLock { $0 } }

    func gain(_ project: String) {
        self.served.withLock { _ = $0?.insert(project) }
    }

    func lose(_ project: String) {
        self.served.withLock { _ = $0?.remove(project) }
    }
}
