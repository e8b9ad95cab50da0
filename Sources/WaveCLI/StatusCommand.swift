import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveRedis
import WaveRuntime
import WaveStore

/// `wave status`: groups, lag, pending, dead letters, stops, sessions, orchestrators.
struct StatusCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "status",
        abstract: "Show the state of the system: consumer groups, dead letters, stops, sessions, orchestrators.",
        discussion: """
            Reads the store (where every orchestrator records its state) and, with --redis, the streams \
            (XINFO GROUPS, XLEN). Without --redis, groups and dead letters are not shown.
            """
    )

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let store = try self.global.openStore()
        var bus: (any EventBus)?
        var client: RedisClient?
        if self.global.redisURL != nil {
            let configuration = try self.global.requireRedis(for: "wave status")
            let redis = try RedisClient(configuration: configuration, logger: Logger(label: "wave.status"))
            client = redis
            do {
                _ = try await redis.serverInfo()
            } catch {
                await redis.shutdown()
                throw CLIError(
                    exitCode: 3,
                    message:
                        "cannot reach Redis at \(configuration.host):\(configuration.port): \(error) (is redis-server running? check --redis or WAVE_REDIS_URL)"
                )
            }
            bus = RedisEventBus(client: redis, logger: Logger(label: "wave.status"))
        }
        let report: StatusReport
        do {
            report = try await StatusReport.gather(store: store, bus: bus)
        } catch {
            await client?.shutdown()
            throw error
        }
        await client?.shutdown()
        if self.global.json {
            print(try JSONOutput.line(report))
            return
        }
        print("bus: \(report.bus)\(bus == nil ? " (no --redis: streams not inspected)" : ""), circuit \(report.circuit)")
        print(
            "sessions: "
                + (report.sessions.isEmpty ? "none" : report.sessions.sorted { $0.key < $1.key }.map { "\($0.value) \($0.key)" }.joined(separator: ", ")))
        if report.stops.isEmpty {
            print("emergency stops: none")
        } else {
            for stop in report.stops { print("EMERGENCY STOP \(stop.scope): \(stop.reason) (by \(stop.by) since \(stop.since), \(stop.source))") }
        }
        for group in report.groups {
            print("group \(group.group) on \(group.stream): \(group.consumers) consumers, \(group.pending) pending, lag \(group.lag.map(String.init) ?? "?")")
        }
        for (project, size) in report.dlq.sorted(by: { $0.key < $1.key }) where size > 0 {
            print("dead letters in \(project): \(size) (wave tail --project \(project) --stream dlq)")
        }
        print("unhandled events: \(report.unhandled_events); trimmed unread: \(report.trimmed_unread); vanished with Redis: \(report.vanished_with_redis)")
        if report.orchestrators.isEmpty { print("orchestrators: none recorded") }
        for instance in report.orchestrators {
            print(
                "orchestrator \(instance.consumer): \(instance.running ? (instance.alive == false ? "not renewing its leases (dead or paused)" : "running") : "stopped"), \(instance.bus), circuit \(instance.circuit), last seen \(instance.last_seen), handled \(instance.handled), projects \(instance.projects.isEmpty ? "none" : instance.projects.joined(separator: ","))\(instance.outbox > 0 ? ", \(instance.outbox) entries in the outbox (Redis unavailable)" : "")"
            )
        }
        for lease in report.leases {
            print("lease \(lease.project): \(lease.owner.isEmpty ? "released" : "held by \(lease.owner)"), epoch \(lease.epoch), until \(lease.expires_at)")
        }
    }
}
