import Logging
import WaveBus
import WaveProtocol
import WaveStore

/// The emergency-stop keys (`WIRE.md`, Emergency stop): `wave:emergency:{p}` and
/// `wave:emergency:global`, JSON, no TTL, mirroring the stops the store holds; and the
/// reference's `wave:emergency:active`, honoured as a global stop from a legacy trigger.
public enum EmergencyKeys {
    /// The key of a scope.
    public static func key(scope: StopScope) -> String { scope.emergencyKey }

    /// The key's value for a stop.
    public static func value(_ stop: EmergencyStopRecord) -> String {
        JSONValue.object([
            "scope": .string(stop.scope.key), "reason": .string(stop.reason), "by": .string(stop.by),
            "since": .string(stop.since.description), "source": .string(stop.source),
        ]).jsonText
    }

    /// Writes the key of an active stop (no TTL).
    public static func write(_ stop: EmergencyStopRecord, bus: any EventBus) async throws {
        try await bus.setValue(Self.value(stop), for: stop.scope.emergencyKey)
    }

    /// Deletes the key of a scope.
    public static func delete(scope: StopScope, bus: any EventBus) async throws {
        try await bus.deleteValues([scope.emergencyKey])
    }

    /// Brings the store and the keys into agreement at start and on reconnect: a key without an
    /// active stop in the store records one (someone stopped through Redis), a stop Redis lost is
    /// written again, and the reference's `wave:emergency:active` sets an audited global stop
    /// from a legacy trigger (its expiry never clears one).
    /// - Returns: the stops active afterwards.
    @discardableResult
    public static func reconcile(store: any StateStore, bus: any EventBus, projects: [ProjectName], logger: Logger) async throws -> [EmergencyStopRecord] {
        var active = Dictionary(try await store.activeStops().map { ($0.scope, $0) }, uniquingKeysWith: { first, _ in first })
        if let legacy = try await bus.value(of: Channels.Legacy.emergencyActive), active[.global] == nil {
            let reason = (JSONValue(jsonText: legacy)?.objectValue?["reason"]?.stringValue) ?? "legacy emergency stop"
            let stop = try await store.recordStop(scope: .global, reason: reason, by: "legacy", source: "legacy", messageID: nil)
            active[.global] = stop
            logger.critical("EMERGENCY STOP (global) from the legacy key \(Channels.Legacy.emergencyActive): \(reason)")
        }
        for scope in [StopScope.global] + projects.map(StopScope.project) {
            let stored = try await bus.value(of: scope.emergencyKey)
            switch (active[scope], stored) {
            case (let stop?, nil):
                try await Self.write(stop, bus: bus)
                logger.warning("emergency stop re-written to Redis, which had lost it", metadata: ["wave.scope": "\(scope)"])
            case (nil, let text?):
                let object = JSONValue(jsonText: text)?.objectValue ?? [:]
                let stop = try await store.recordStop(
                    scope: scope, reason: object["reason"]?.stringValue ?? "emergency stop (\(scope.emergencyKey))",
                    by: object["by"]?.stringValue ?? "unknown", source: object["source"]?.stringValue ?? "wave", messageID: nil)
                active[scope] = stop
                logger.critical("EMERGENCY STOP (\(scope)) found in Redis and recorded: \(stop.reason)")
            default:
                break
            }
        }
        return Array(active.values)
    }
}

/// Setting and lifting an emergency stop, written once: the orchestrator (a signal, the
/// reference's channel), the CLI (`wave stop`) and the HTTP API all go through it.
///
/// Each operation has a store step (the source of truth: audited, checkpointed, the announcing
/// message in the ledger so that the orchestrator receiving it does not record it twice) and a
/// bus step (the key without TTL and, for operators' commands, the announcement on the scope's
/// system stream), so that a caller can report "saved, but Redis could not be told" precisely.
public struct EmergencyStops: Sendable {
    /// The store the stops are recorded in.
    public let store: any StateStore

    /// Creates the operations over a store.
    public init(store: any StateStore) {
        self.store = store
    }

    /// A stop lifted: the stop that was active, and whether another stop still holds its scope
    /// (set again meanwhile), in which case its halt and its key stay.
    public struct Cleared: Sendable, Hashable {
        /// The stop that was lifted.
        public var stop: EmergencyStopRecord
        /// Whether a stop is still active for the scope.
        public var stillStopped: Bool
    }

    /// Records a stop (or returns the one already active for the scope).
    public func record(_ scope: StopScope, reason: String, by: String, source: String = "wave", messageID: String? = nil) async throws -> EmergencyStopRecord {
        try await self.store.recordStop(scope: scope, reason: reason, by: by, source: source, messageID: messageID)
    }

    /// Writes the stop's key and, with `announce`, publishes `system.emergency_stop` (priority
    /// critical) on the scope's system stream with `messageID`, which every orchestrator reads.
    /// - Parameter project: the project as the operator spelled it (the envelope keeps it).
    public func publish(
        _ stop: EmergencyStopRecord, bus: any EventBus, announce: Bool, messageID: String = MessageID.makeTimeOrdered(),
        project: String? = nil
    ) async throws {
        try await EmergencyKeys.write(stop, bus: bus)
        guard announce else { return }
        _ = try await bus.publish(
            Envelope(
                eventType: .systemEmergencyStop, payload: ["reason": .string(stop.reason), "by": .string(stop.by)], source: stop.by,
                project: project ?? stop.scope.key, priority: .critical, messageID: messageID
            ), to: stop.scope.systemStream)
    }

    /// Lifts the active stop of a scope; `onlySource` limits it to stops from that source (a
    /// legacy `RESUME` clears only a legacy stop). `nil` when no such stop was active.
    public func clear(_ scope: StopScope, by: String, reason: String?, onlySource: String? = nil, messageID: String? = nil) async throws -> Cleared? {
        guard let stop = try await self.store.clearStop(scope: scope, by: by, reason: reason, onlySource: onlySource, messageID: messageID) else { return nil }
        return Cleared(stop: stop, stillStopped: try await self.store.activeStops().contains { $0.scope == scope })
    }

    /// Deletes the scope's key unless a stop still holds it and, with `announce`, publishes
    /// `system.emergency_cleared` on the scope's system stream.
    public func publish(
        _ cleared: Cleared, by: String, reason: String, bus: any EventBus, announce: Bool,
        messageID: String = MessageID.makeTimeOrdered(), project: String? = nil
    ) async throws {
        let scope = cleared.stop.scope
        if !cleared.stillStopped { try await EmergencyKeys.delete(scope: scope, bus: bus) }
        guard announce else { return }
        _ = try await bus.publish(
            Envelope(
                eventType: .systemEmergencyCleared, payload: ["reason": .string(reason), "by": .string(by)], source: by,
                project: project ?? scope.key, priority: .critical, messageID: messageID
            ), to: scope.systemStream)
    }
}
