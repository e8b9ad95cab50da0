import Logging
import WaveBus
import WaveEngine
import WaveProtocol
import WaveStore

// Sessions and projects: the next stories of a session, the next session of a project, and the
// session events.

extension OrchestratorCore {
    /// Starts the stories of a session that became ready and, when the session is over, the next
    /// session of its project.
    func advanceSession(_ sessionID: String) async throws {
        let started = try await self.store.startReadyStories(session: sessionID)
        for (record, _) in started {
            self.logger.info("story \(record.state.storyID): started", metadata: ["wave.session": "\(StoreIDs.display(sessionID))"])
        }
        await self.tasks.dispatch(started.map { ($0.0, $0.1.dispatches) })
        let session = try await self.store.session(id: sessionID)
        guard session.status.isTerminal else { return }
        self.logger.info(
            "session \(session.displayID): \(session.status.rawValue) (\(session.storiesCompleted) of \(session.storyCount) stories complete, \(session.storiesFailed) failed)"
        )
        try await self.advanceProject(session.project)
    }

    /// Starts the project's oldest pending session if none is in progress, and the ready stories
    /// of every session in progress.
    func advanceProject(_ project: String) async throws {
        // Another instance serves the project (its lease): it starts the project's sessions.
        guard self.tasks.ownership.serves((try? ProjectName(project))?.key ?? project) else { return }
        if let next = try await self.store.startNextSession(project: project) {
            for session in try await self.store.sessionsInProgress(project: project) where session.id == next.id {
                let started = try await self.store.startReadyStories(session: session.id)
                if !started.isEmpty {
                    self.logger.info("session \(session.displayID) in progress: \(started.count) stories started", metadata: ["wave.project": "\(project)"])
                }
                await self.tasks.dispatch(started.map { ($0.0, $0.1.dispatches) })
            }
        }
    }
}

/// `session.paused` (no new dispatch; in-flight work finishes and its results apply),
/// `session.resumed`, `session.created` and `session.cancelled`.
struct SessionHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "session" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        if let notServed = self.core.notServed(signal) { return notServed }
        if envelope.eventType == .sessionCreated, let project = signal.project {
            try await self.core.advanceProject(project.key)
            return .applied("sessions of \(project.key) advanced")
        }
        guard let id = self.core.sessionID(of: signal) else {
            return .deadLetter(.missingSessionID(envelope.eventType))
        }
        let session: SessionRecord
        do {
            session = try await self.core.store.session(id: id)
        } catch let error as StoreError where error.code == .notFound {
            return .deadLetter(.unknownSession(error.message))
        }
        let reason = envelope.payload["reason"]?.stringValue
        do {
            switch envelope.eventType {
            case .sessionPaused:
                guard !session.status.isTerminal else { return .ignored(.sessionFinished(session.status)) }
                try await self.core.store.pauseSession(session.id, messageID: envelope.messageID)
                self.core.logger.info(
                    "session \(session.displayID): paused; in-flight work finishes, nothing new is dispatched", metadata: ["wave.reason": "\(reason ?? "")"])
                return .applied("paused")
            case .sessionResumed:
                guard signal.kind != .signals else { return .ignored(.notOnSystemStream(envelope.eventType)) }
                guard !session.status.isTerminal else { return .ignored(.sessionFinished(session.status)) }
                try await self.core.store.resumeSession(session.id, messageID: envelope.messageID)
                self.core.logger.info("session \(session.displayID): resumed")
                try await self.core.tasks.redispatch(sessionID: session.id)
                try await self.core.advanceSession(session.id)
                return .applied("resumed")
            case .sessionCancelled:
                guard signal.kind != .signals else { return .ignored(.notOnSystemStream(envelope.eventType)) }
                if !session.status.isTerminal {
                    try await self.core.store.cancelSession(session.id, reason: reason ?? "cancelled", messageID: envelope.messageID)
                }
                for story in try await self.core.store.stories(session: session.id) {
                    self.core.tasks.forget(storyID: story.state.storyID, sessionID: session.id)
                }
                self.core.logger.info("session \(session.displayID): cancelled")
                try await self.core.advanceProject(session.project)
                return .applied("cancelled")
            default:
                return .ignored(.notASessionEvent)
            }
        } catch let error as StoreError where error.code == .notAllowed {
            return .ignored(.notAllowed(error.message))
        }
    }
}
