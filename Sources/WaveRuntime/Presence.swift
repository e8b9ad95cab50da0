import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

/// `agent.ready`, `agent.busy` and `system.health`: the roster (availability, the task's lease);
/// cost and tokens they carry for a story add up into it.
struct AgentPresenceHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "agent-presence" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        guard let agentID = envelope.agentID else { return .ignored(.noAgentID) }
        let status = envelope.eventType == .agentReady ? "ready" : "busy"
        self.core.roster.heard(
            from: agentID, role: self.core.role(of: signal), project: signal.project?.key, status: status,
            task: envelope.payload["task_id"]?.stringValue ?? envelope.correlationID)
        let reportsCost = (envelope.payload["cost_usd"]?.numberValue ?? 0) > 0 || (envelope.payload["tokens"]?.numberValue ?? 0) > 0
        if reportsCost, envelope.storyIDForRouting != nil {
            return try await self.core.applyStoryEvent(signal, .report)
        }
        return .applied("\(agentID) \(status)")
    }
}
