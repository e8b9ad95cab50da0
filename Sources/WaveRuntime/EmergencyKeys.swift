import Logging
import WaveBus
import WaveProtocol
import WaveRedis
import WaveStore

/// The emergency-stop keys in Redis (`WIRE.md`, Emergency stop): `wave:emergency:{p}` and
/// `wave:emergency:global`, JSON, no TTL, mirroring the stops the store holds; and the
/// reference's `wave:emergency:active`, honoured as a global stop from a legacy trigger.
public enum EmergencyKeys {
    /// The key of a scope (`global` or a project key).
    public static func key(scope: String) -> String {
        scope == "global" ? Channels.emergencyGlobal : "wave:emergency:\(scope)"
    }

    /// The key's value for a stop.
    public static func value(_ stop: EmergencyStopRecord) -> String {
        JSONValue.object([
            "scope": .string(stop.scope), "reason": .string(stop.reason), "by": .string(stop.by),
            "since": .string(stop.since.description), "source": .string(stop.source),
        ]).jsonText
    }

    /// Writes the key of an active stop (no TTL).
    public static func write(_ stop: EmergencyStopRecord, client: RedisClient) async throws {
        _ = try await client.send(SetCommand(Self.key(scope: stop.scope), value: Self.value(stop)))
    }

    /// Deletes the key of a scope.
    public static func delete(scope: String, client: RedisClient) async throws {
        _ = try await client.send(DelCommand(keys: [Self.key(scope: scope)]))
    }

    /// Brings the store and Redis into agreement at start and on reconnect: a key without an
    /// active stop in the store records one (someone stopped through Redis), a stop Redis lost is
    /// written again, and the reference's `wave:emergency:active` sets an audited global stop
    /// from a legacy trigger (its expiry never clears one).
    /// - Returns: the stops active afterwards.
    @discardableResult
    public static func reconcile(store: SQLiteStore, client: RedisClient, projects: [ProjectName], logger: Logger) async throws -> [EmergencyStopRecord] {
        var active = Dictionary(try store.activeStops().map { ($0.scope, $0) }, uniquingKeysWith: { first, _ in first })
        if let legacy = try await client.send(GetCommand(Channels.Legacy.emergencyActive)), active["global"] == nil {
            let reason = (JSONValue(jsonText: legacy)?.objectValue?["reason"]?.stringValue) ?? "legacy emergency stop"
            let stop = try store.recordStop(scope: "global", reason: reason, by: "legacy", source: "legacy")
            active["global"] = stop
            logger.critical("EMERGENCY STOP (global) from the legacy key \(Channels.Legacy.emergencyActive): \(reason)")
        }
        for scope in ["global"] + projects.map(\.key) {
            let key = Self.key(scope: scope)
            let stored = try await client.send(GetCommand(key))
            switch (active[scope], stored) {
            case (let stop?, nil):
                try await Self.write(stop, client: client)
                logger.warning("emergency stop re-written to Redis, which had lost it", metadata: ["wave.scope": "\(scope)"])
            case (nil, let text?):
                let object = JSONValue(jsonText: text)?.objectValue ?? [:]
                let stop = try store.recordStop(scope: scope, reason: object["reason"]?.stringValue ?? "emergency stop (\(key))",
                                                by: object["by"]?.stringValue ?? "unknown", source: object["source"]?.stringValue ?? "wave")
                active[scope] = stop
                logger.critical("EMERGENCY STOP (\(scope)) found in Redis and recorded: \(stop.reason)")
            default:
                break
            }
        }
        return Array(active.values)
    }
}
