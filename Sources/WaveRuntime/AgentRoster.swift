import Synchronization
import WaveProtocol

/// What the orchestrator knows of each agent, from its `agent.ready`, `agent.busy` and
/// `system.health` signals (the roster `wave agents` shows).
public final class AgentRoster: Sendable {
    /// One agent.
    public struct Agent: Sendable, Hashable {
        /// Its id (`BE-1`).
        public var id: String
        /// Its role.
        public var role: String?
        /// The project it last spoke on.
        public var project: String?
        /// `ready` (available) or `busy`.
        public var status: String
        /// The task it said it works on, if any.
        public var currentTask: String?
        /// When it was last heard from.
        public var lastSeen: WaveTimestamp
        /// Until when its task's lease runs (extended by `system.health` and `agent.busy`).
        public var leaseUntil: WaveTimestamp?
    }

    let agents = Mutex<[String: Agent]>([:])
    /// How long a heartbeat extends an agent's lease on its task (WIRE.md: default 90 s).
    public let lease: Duration

    /// Creates an empty roster.
    public init(lease: Duration = .seconds(90)) {
        self.lease = lease
    }

    /// Records a signal from an agent: `ready` makes it available; `busy` and heartbeats extend
    /// the lease on its task.
    public func heard(from id: String, role: String?, project: String?, status: String, task: String?, now: WaveTimestamp = .now()) {
        self.agents.withLock { agents in
            var agent = agents[id] ?? Agent(id: id, role: role, project: project, status: status, lastSeen: now)
            agent.role = role ?? agent.role
            agent.project = project ?? agent.project
            agent.lastSeen = now
            switch status {
            case "ready":
                agent.status = "ready"
                agent.currentTask = nil
                agent.leaseUntil = nil
            default:
                agent.status = "busy"
                if let task { agent.currentTask = task }
                agent.leaseUntil = now.adding(self.lease)
            }
            agents[id] = agent
        }
    }

    /// Every agent, by id.
    public var all: [Agent] { self.agents.withLock { Array($0.values) }.sorted { $0.id < $1.id } }

    /// One agent.
    public func agent(_ id: String) -> Agent? { self.agents.withLock { $0[id] } }
}
