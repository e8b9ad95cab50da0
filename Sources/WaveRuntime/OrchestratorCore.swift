import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

/// What the standard handlers share: the store, the bus, task dispatch and the roster. Each
/// concern adds its part in a file of its own: story events (`StoryEvents.swift`), sessions and
/// projects (`Sessions.swift`), the emergency stop (`EmergencyResponse.swift`), presence
/// (`Presence.swift`) and notices (`Notices.swift`).
struct OrchestratorCore: Sendable {
    let store: any StateStore
    let bus: any EventBus
    let tasks: TaskDispatcher
    let roster: AgentRoster
    let roleMap: [String: String]
    /// The legacy task bridge, when on: tasks taken back are withdrawn from the workers' lists too.
    let legacy: LegacyTaskBridge?
    let logger: Logger

    func registerStandardHandlers(in registry: inout HandlerRegistry) {
        registry.register(StoryEventHandler(core: self), for: .gatePassed, .gateFailed, .agentError)
        registry.register(StoryBlockHandler(core: self), for: .storyBlocked, .storyUnblocked)
        registry.register(StoryAnnouncementHandler(core: self), for: .storyRecovered, .gateApproved)
        registry.register(SessionHandler(core: self), for: .sessionPaused, .sessionResumed, .sessionCreated, .sessionCancelled)
        registry.register(EmergencyHandler(core: self), for: .systemEmergencyStop, .systemEmergencyCleared)
        registry.register(AgentPresenceHandler(core: self), for: .agentReady, .agentBusy, .systemHealth)
        // Wave's own notices come back on the system streams that every instance reads.
        registry.register(NoticeHandler(), for: .escalationRaised, .sessionBudgetWarning)
    }

    /// Publishes a notice (on the project's system stream unless `stream` says otherwise); a
    /// failure is logged, not thrown (the change it announces is committed).
    func publishNotice(_ envelope: Envelope, project: ProjectName? = nil, to stream: String? = nil) async throws {
        guard let stream = stream ?? project.map(Channels.system) else { return }
        do {
            try await self.tasks.publisher.publish(entries: [(stream, envelope.fields)])
        } catch {
            self.logger.error("notice not published", metadata: ["wave.event": "\(envelope.eventType.rawValue)", "wave.error": "\(error)"])
        }
    }

    func project(of sessionID: String?) async throws -> ProjectName? {
        guard let sessionID else { return nil }
        return try? ProjectName(try await self.store.session(id: sessionID).project)
    }

    /// The session a session event names: the envelope's `session_id`, else the payload's.
    func sessionID(of signal: Signal) -> String? {
        let id = signal.envelope.sessionID ?? signal.envelope.payload["session_id"]?.stringValue
        return id.flatMap { $0.isEmpty ? nil : $0 }
    }

    /// `ignored(not_served)` for an announcement on the system stream of a project that another
    /// instance serves by lease; `nil` when this instance acts on it.
    func notServed(_ signal: Signal) -> HandlerOutcome? {
        guard let project = signal.project, !self.tasks.ownership.serves(project.key) else { return nil }
        return .ignored(.notServed(project.key))
    }

    func role(of signal: Signal) -> String? {
        signal.envelope.senderRole(roleMap: self.roleMap)
    }
}
