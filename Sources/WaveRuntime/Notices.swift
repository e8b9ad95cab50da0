import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

// Notices: escalations and budget warnings on the system streams, and the agents told that their
// tasks are cancelled.

extension OrchestratorCore {
    /// Tells the agents that hold tasks (as their `agent.busy` said) that the tasks are cancelled
    /// (`task.cancelled` on `wave:agent:{p}:{agent}`, WIRE.md), and withdraws them from the
    /// reference workers' lists when the legacy bridge is on.
    func tellAgents(_ tasks: [TaskEntry], reason: String) async {
        guard !tasks.isEmpty else { return }
        await self.legacy?.withdraw(tasks, reason: reason)
        let agents = self.roster.all
        for task in tasks {
            guard let project = try? ProjectName(task.project),
                let agent = agents.first(where: { $0.currentTask == task.taskID || $0.currentTask == task.messageID })
            else { continue }
            try? await self.publishNotice(
                Envelope(
                    eventType: .taskCancelled, payload: ["task_id": .string(task.taskID), "reason": .string(reason)], source: "orchestrator",
                    project: task.project, priority: .high, sessionID: task.sessionID, storyID: task.storyID, correlationID: task.messageID
                ), to: Channels.agent(project, agent.id))
        }
    }

    func announceEscalations(of messageID: String, project: ProjectName?) async throws {
        for escalation in try await self.store.escalations(messageID: messageID) {
            self.logger.warning(
                "escalation \(escalation.kind): \(escalation.reason)",
                metadata: [
                    "wave.story": "\(escalation.storyID ?? "")", "wave.escalation": "\(escalation.id)",
                ])
            guard let project = try await self.project(of: escalation.sessionID) ?? project else { continue }
            try await self.publishNotice(
                Envelope(
                    eventType: .escalationRaised,
                    payload: [
                        "escalation_id": .string(StoreIDs.display(escalation.id)), "kind": .string(escalation.kind), "detail": .string(escalation.reason),
                    ],
                    source: "orchestrator", project: project.key, priority: .high,
                    sessionID: escalation.sessionID.map(StoreIDs.display), storyID: escalation.storyID
                ), project: project)
        }
    }

    func announceBudget(sessionID: String, paused: Bool) async throws {
        let session = try await self.store.session(id: sessionID)
        guard let project = try? ProjectName(session.project) else { return }
        let ratio = session.budgetUSD > 0 ? session.actualCostUSD / session.budgetUSD : 0
        self.logger.warning(
            "session \(session.displayID): \(paused ? "over budget, paused" : "budget warning") (\(session.actualCostUSD) of \(session.budgetUSD) USD)")
        try await self.publishNotice(
            Envelope(
                eventType: .sessionBudgetWarning,
                payload: [
                    "budget_usd": .number(session.budgetUSD), "actual_cost_usd": .number(session.actualCostUSD), "ratio": .number(ratio),
                    "paused": .bool(paused),
                ],
                source: "orchestrator", project: session.project, priority: .high, sessionID: session.displayID
            ), project: project)
    }
}

/// Wave's own notices (`escalation.raised`, `session.budget_warning`) read back from the system
/// streams: for operators and dashboards; nothing to do.
struct NoticeHandler: EventHandler {
    var name: String { "notice" }
    func handle(_ signal: Signal) async throws -> HandlerOutcome { .ignored(.notice) }
}
