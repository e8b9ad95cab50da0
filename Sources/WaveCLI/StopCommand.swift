import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore

/// `wave stop` and `wave stop clear`: the emergency stop (WIRE.md, Emergency stop).
struct StopCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "stop",
        abstract: "Emergency stop: halt every dispatch of a project, or of everything; `wave stop clear` lifts it.",
        discussion: """
            The stop is written to the store (who, when, why; audited), to Redis as wave:emergency:{project} or \
            wave:emergency:global without a TTL, and announced as system.emergency_stop on the matching system stream, \
            which every orchestrator reads. It holds across restarts.
            """,
        subcommands: [SetStop.self, ClearStop.self],
        defaultSubcommand: SetStop.self
    )
}

/// Which scope a stop command acts on.
struct StopScopeOptions: ParsableArguments {
    @Option(help: "The project to stop.")
    var project: String?

    @Flag(help: "Stop every project.")
    var global = false

    func validate() throws {
        guard (self.project != nil) != self.global else { throw ValidationError("give exactly one of --project P and --global") }
    }

    /// The scope, and the project as the operator spelled it (for the announcement).
    func resolve() throws -> (scope: StopScope, project: String) {
        if self.global { return (.global, "global") }
        do {
            let name = try ProjectName(self.project ?? "")
            return (.project(name), self.project ?? name.key)
        } catch {
            throw CLIError.badInput(error.message)
        }
    }
}

struct SetStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "set", abstract: "Stop (the default: `wave stop --project P --reason …`).")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var scope: StopScopeOptions

    @Option(help: "Why (recorded and shown to every operator).")
    var reason: String

    @Option(help: "Who (default: $USER@hostname).")
    var by: String?

    func run() async throws {
        let (scope, project) = try self.scope.resolve()
        let stops = EmergencyStops(store: try self.global.openStore())
        let by = self.by ?? defaultOperator()
        let messageID = MessageID.makeTimeOrdered()
        let stop = try await storeCall { try await stops.record(scope, reason: self.reason, by: by, messageID: self.global.redisURL == nil ? nil : messageID) }
        try await withRedis(self.global) { client in
            try await stops.publish(
                stop, bus: RedisEventBus(client: client, logger: Logger(label: "wave.stop")), announce: true,
                messageID: messageID, project: project)
        }
        if self.global.json {
            print(try JSONOutput.line(["scope": stop.scope.key, "reason": stop.reason, "by": stop.by, "since": stop.since.description]))
        } else {
            print("EMERGENCY STOP \(stop.scope): \(stop.reason) (by \(stop.by) since \(stop.since))")
        }
    }
}

struct ClearStop: AsyncParsableCommand {
    static let configuration = CommandConfiguration(commandName: "clear", abstract: "Lift the stop of a project, or the global one.")

    @OptionGroup var global: GlobalOptions
    @OptionGroup var scope: StopScopeOptions

    @Option(help: "Why it is safe to go on.")
    var reason = "cleared"

    @Option(help: "Who (default: $USER@hostname).")
    var by: String?

    func run() async throws {
        let (scope, project) = try self.scope.resolve()
        let stops = EmergencyStops(store: try self.global.openStore())
        let by = self.by ?? defaultOperator()
        let messageID = MessageID.makeTimeOrdered()
        guard
            let cleared = try await storeCall({
                try await stops.clear(scope, by: by, reason: self.reason, messageID: self.global.redisURL == nil ? nil : messageID)
            })
        else {
            throw CLIError.badInput("no emergency stop is active for \(scope)")
        }
        try await withRedis(self.global) { client in
            try await stops.publish(
                cleared, by: by, reason: self.reason, bus: RedisEventBus(client: client, logger: Logger(label: "wave.stop")),
                announce: true, messageID: messageID, project: project)
        }
        if self.global.json {
            print(try JSONOutput.line(["scope": cleared.stop.scope.key, "cleared_by": by, "reason": self.reason]))
        } else {
            print("emergency stop \(cleared.stop.scope) cleared by \(by): \(self.reason)")
        }
    }
}

/// Runs `body` with a Redis client when `--redis` is given; otherwise warns that no running
/// orchestrator was told (the change is in the store).
func withRedis(_ global: GlobalOptions, _ body: (RedisClient) async throws -> Void) async throws {
    guard global.redisURL != nil else {
        FileHandle.standardError.write(Data("warning: no running orchestrator was notified (no --redis)\n".utf8))
        return
    }
    let configuration = try global.requireRedis(for: "wave stop")
    let client = try RedisClient(configuration: configuration, logger: Logger(label: "wave.stop"))
    do {
        try await body(client)
    } catch {
        await client.shutdown()
        throw CLIError(
            exitCode: 3,
            message: "the change is saved, but Redis at \(configuration.host):\(configuration.port) could not be told: \(CLIError.from(error).message)")
    }
    await client.shutdown()
}
