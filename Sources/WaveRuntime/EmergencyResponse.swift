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
