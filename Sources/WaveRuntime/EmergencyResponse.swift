import Logging
import WaveBus
import WaveProtocol
import WaveStore

/// The orchestrator's side of an emergency stop, for every way one arrives (a
/// `system.emergency_stop` signal, the reference's `HALT`): dispatch halts before anything is
/// written, the tasks out in the scope are withdrawn and their agents told; a clear lifts the
/// halt (unless another stop still holds the scope) and dispatches again what the store holds.
/// The store and key steps are ``EmergencyStops``', shared with the CLI.
struct EmergencyResponse: Sendable {
    let core: OrchestratorCore

    var stops: EmergencyStops { EmergencyStops(store: self.core.store) }

    /// Halts, records, writes the key, tells the agents whose tasks were withdrawn.
    @discardableResult
    func stop(_ scope: StopScope, reason: String, by: String, source: String = "wave", messageID: String? = nil) async throws -> EmergencyStopRecord {
        // Halt first: the store write must not delay it.
        let withdrawn = self.core.tasks.halt(scope: scope)
        // The withdrawals as store facts: their late results are not applied, by any instance.
        try await self.core.store.recordWithdrawals(withdrawn, reason: "stop")
        let stop = try await self.stops.record(scope, reason: reason, by: by, source: source, messageID: messageID)
        // The key holds the stop across restarts of everything that reads it.
        try await self.stops.publish(stop, bus: self.core.bus, announce: false)
        let from = source == "legacy" ? " from the legacy channel" : ""
        self.core.logger.critical(
            "EMERGENCY STOP (\(scope))\(from): \(reason); dispatch halted, \(withdrawn.count) tasks withdrawn",
            metadata: ["wave.by": "\(by)", "wave.source": "\(source)"])
        await self.core.tellAgents(withdrawn, reason: "stopped")
        return stop
    }

    /// Clears the scope's stop in the store (an operator may have done so already: the
    /// announcement of `wave stop clear`), lifts the halt and deletes the key unless another stop
    /// holds the scope, and dispatches again. With `onlySource`, nothing happens unless a stop
    /// from that source was active (a legacy `RESUME` lifts only a legacy stop).
    /// - Returns: whether the halt was lifted.
    @discardableResult
    func clear(_ scope: StopScope, by: String, reason: String, onlySource: String? = nil, messageID: String? = nil) async throws -> Bool {
        let cleared = try await self.stops.clear(scope, by: by, reason: reason, onlySource: onlySource, messageID: messageID)
        if cleared == nil, onlySource != nil { return false }
        let stillStopped: Bool
        if let cleared { stillStopped = cleared.stillStopped } else { stillStopped = try await self.core.store.activeStops().contains { $0.scope == scope } }
        if !stillStopped {
            self.core.tasks.release(scope: scope)
            try await EmergencyKeys.delete(scope: scope, bus: self.core.bus)
        }
        self.core.logger.warning("emergency stop cleared (\(scope)): \(reason)", metadata: ["wave.by": "\(by)"])
        try await self.core.tasks.redispatch()
        return !stillStopped
    }
}

extension OrchestratorCore {
    /// Listens on the reference's `wave:emergency` channel: `HALT` sets a global stop from a
    /// legacy trigger, `RESUME` clears only a stop that came from one. After every (re)subscribe
    /// the keys are reconciled, so a stop published while disconnected is not missed. Throws when
    /// the subscription or a reconcile fails (Redis away, its breaker open): the orchestrator
    /// runs it under supervision (``supervised(_:logger:policy:restarts:_:)``), which subscribes
    /// again after a backoff, so the channel is never left unheard.
    func listenForLegacyEmergency(projects: [ProjectName]) async throws {
        try await self.bus.withSubscription(channels: [Channels.Legacy.emergencyChannel]) { events in
            for await event in events {
                switch event {
                case .subscribed:
                    for stop in try await EmergencyKeys.reconcile(store: self.store, bus: self.bus, projects: projects, logger: self.logger) {
                        self.tasks.halt(scope: stop.scope)
                    }
                case .message(_, let payload):
                    await self.legacyEmergency(payload)
                }
            }
        }
    }

    /// One message of the reference's channel: `{"action":"HALT"|"RESUME","reason":…,"timestamp":…}`.
    func legacyEmergency(_ payload: String) async {
        let object = JSONValue(jsonText: payload)?.objectValue ?? [:]
        let reason = object["reason"]?.stringValue ?? "legacy \(object["action"]?.stringValue ?? "message")"
        let emergency = EmergencyResponse(core: self)
        do {
            switch object["action"]?.stringValue?.uppercased() {
            case "HALT":
                try await emergency.stop(.global, reason: reason, by: "legacy", source: "legacy")
            case "RESUME":
                guard try await emergency.clear(.global, by: "legacy", reason: reason, onlySource: "legacy") else {
                    self.logger.warning("legacy RESUME ignored: the global stop, if any, was not set by a legacy trigger")
                    return
                }
            default:
                self.logger.warning("unknown message on the legacy emergency channel", metadata: ["wave.payload": "\(payload.prefix(200))"])
            }
        } catch {
            self.logger.error("legacy emergency message not applied", metadata: ["wave.error": "\(error)"])
        }
    }
}

/// `system.emergency_stop` (from any stream) records the stop and halts dispatch for its scope;
/// `system.emergency_cleared` (only from the system streams) lifts it and dispatches again.
struct EmergencyHandler: EventHandler {
    let core: OrchestratorCore
    var name: String { "emergency" }

    func handle(_ signal: Signal) async throws -> HandlerOutcome {
        let envelope = signal.envelope
        let scope: StopScope = signal.kind == .systemGlobal ? .global : (signal.project.map(StopScope.project) ?? .global)
        let by = envelope.payload["by"]?.stringValue ?? envelope.source
        let reason = envelope.payload["reason"]?.stringValue ?? "emergency stop"
        let emergency = EmergencyResponse(core: self.core)
        if envelope.eventType == .systemEmergencyStop {
            try await emergency.stop(scope, reason: reason, by: by, messageID: envelope.messageID)
            return .applied("stopped \(scope)")
        }
        guard signal.kind != .signals else { return .ignored(.notOnSystemStream(envelope.eventType)) }
        try await emergency.clear(scope, by: by, reason: reason, messageID: envelope.messageID)
        return .applied("cleared \(scope)")
    }
}
