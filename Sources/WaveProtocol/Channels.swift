/// The Redis keys and channels of the wire protocol (`WIRE.md`, Names).
public enum Channels {
    /// `wave:signals:{project}`: agents and the CLI publish; orchestrators consume in the shared
    /// group `orchestrator`.
    public static func signals(_ project: ProjectName) -> String { "wave:signals:\(project.key)" }
    /// `wave:system:{project}`: broadcast; each orchestrator reads in its own group.
    public static func system(_ project: ProjectName) -> String { "wave:system:\(project.key)" }
    /// `wave:system:global`: cross-project broadcast (operators).
    public static let systemGlobal = "wave:system:global"
    /// `wave:agent:{project}:{agent_id}`: direct notices to one agent (stop, cancel).
    public static func agent(_ project: ProjectName, _ agentID: String) -> String { "wave:agent:\(project.key):\(agentID)" }
    /// `wave:gate:{project}:{gate}`: gate events for observers.
    public static func gate(_ project: ProjectName, _ gate: GateID) -> String { "wave:gate:\(project.key):\(gate)" }
    /// `wave:dlq:{project}`: dead letters.
    public static func deadLetters(_ project: ProjectName) -> String { "wave:dlq:\(project.key)" }
    /// `wave:tasks:{project}:{role}`: tasks for an agent pool (group `agents:{role}`).
    public static func tasks(_ project: ProjectName, _ role: String) -> String { "wave:tasks:\(project.key):\(role)" }
    /// `wave:emergency:{project}`: an active stop for one project (string, JSON, no TTL).
    public static func emergency(_ project: ProjectName) -> String { "wave:emergency:\(project.key)" }
    /// `wave:emergency:global`: an active global stop.
    public static let emergencyGlobal = "wave:emergency:global"

    /// The shared consumer group of orchestrators on a signals stream.
    public static let orchestratorGroup = "orchestrator"
    /// The per-instance group of one orchestrator on a system stream.
    public static func orchestratorGroup(consumer: String) -> String { "orchestrator:\(consumer)" }
    /// The group of an agent pool on its task stream.
    public static func agentsGroup(role: String) -> String { "agents:\(role)" }

    /// Reference keys Wave still honours (read side).
    public enum Legacy {
        /// `wave:emergency:active`: the reference's stop key `{reason, timestamp}`.
        public static let emergencyActive = "wave:emergency:active"
        /// `wave:emergency`: the reference's HALT / RESUME pub/sub channel.
        public static let emergencyChannel = "wave:emergency"
        /// `wave:tasks:{domain}`: the reference workers' task list.
        public static func taskList(domain: String) -> String { "wave:tasks:\(domain)" }
        /// `wave:task:{task_id}`: the reference's task hash (field `data`, `status`).
        public static func taskHash(_ taskID: String) -> String { "wave:task:\(taskID)" }
        /// `wave:result:{task_id}`: the reference's result string.
        public static func result(_ taskID: String) -> String { "wave:result:\(taskID)" }
        /// `wave:results`: the reference's result notifications.
        public static let resultsChannel = "wave:results"
    }
}
