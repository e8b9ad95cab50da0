import ArgumentParser
import Foundation
import WaveEngine
import WaveOperations
import WaveProtocol
import WaveRedis

extension Settings {
    /// The settings for a command's global options; a bad file is a usage error (exit 2).
    static func load(_ global: GlobalOptions) throws -> Settings {
        do {
            return try Settings.load(config: global.config, redis: global.redis, store: global.store)
        } catch {
            throw CLIError.badInput(error.message)
        }
    }
}

/// `wave config show`.
struct ConfigCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "config",
        abstract: "The effective configuration (defaults < --config FILE < environment < flags).",
        subcommands: [ConfigShow.self]
    )
}

struct ConfigShow: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "show", abstract: "Print the effective configuration, secrets masked, with where each value came from.")

    @OptionGroup var global: GlobalOptions

    func run() async throws {
        let settings = try Settings.load(self.global)
        struct Output: Encodable {
            var config_file: String?
            var redis: String?
            var redis_source: Settings.Source
            var store: String
            var store_source: Settings.Source
            var projects: [String]
            var projects_source: Settings.Source
            var consumer: String
            var consumer_source: Settings.Source
            var role_map: [String: String]
            var batch_size: Int
            var block_ms: Int
            var reclaim_after_ms: Int
            var max_deliveries: Int
            var status_interval_ms: Int
            var maintenance_interval_ms: Int
            var leases: Bool
            var lease_ttl_ms: Int
            var lease_renew_ms: Int
            var max_retries: [Int]
            var backoff_base_ms: Int64
            var backoff_cap_ms: Int64
            var parallel_limit: Int
            var budget_warning_ratio: Double
        }
        func ms(_ duration: Duration) -> Int64 { duration.components.seconds * 1000 + duration.components.attoseconds / 1_000_000_000_000_000 }
        let output = Output(
            config_file: settings.file, redis: settings.maskedRedis, redis_source: settings.redis.source, store: settings.maskedStore,
            store_source: settings.store.source, projects: settings.projects.value, projects_source: settings.projects.source,
            consumer: settings.consumer.value, consumer_source: settings.consumer.source, role_map: settings.roleMap,
            batch_size: settings.batchSize, block_ms: settings.blockMilliseconds, reclaim_after_ms: settings.reclaimAfterMilliseconds,
            max_deliveries: settings.maxDeliveries, status_interval_ms: settings.statusIntervalMilliseconds,
            maintenance_interval_ms: settings.maintenanceIntervalMilliseconds,
            leases: settings.leases, lease_ttl_ms: settings.leaseTTLMilliseconds, lease_renew_ms: settings.leaseRenewMilliseconds,
            max_retries: settings.engine.gates.map(\.maxRetries), backoff_base_ms: ms(settings.engine.backoffBase),
            backoff_cap_ms: ms(settings.engine.backoffCap),
            parallel_limit: settings.engine.parallelLimit, budget_warning_ratio: settings.engine.budgetWarningRatio
        )
        if self.global.json {
            print(try JSONOutput.line(output))
            return
        }
        print("config file: \(settings.file ?? "none (--config FILE or WAVE_CONFIG)")")
        print("redis: \(output.redis ?? "none (embedded bus)") [\(output.redis_source.rawValue)]")
        print("store: \(output.store) [\(output.store_source.rawValue)]")
        print(
            "projects: \(output.projects.isEmpty ? "the store's live sessions" : output.projects.joined(separator: ", ")) [\(output.projects_source.rawValue)]")
        print("consumer: \(output.consumer) [\(output.consumer_source.rawValue)]")
        print(
            "role map: \(output.role_map.isEmpty ? "none (the agent id's prefix)" : output.role_map.sorted { $0.key < $1.key }.map { "\($0.key)→\($0.value)" }.joined(separator: ", "))"
        )
        print(
            "orchestrator: batch \(output.batch_size), block \(output.block_ms) ms, reclaim after \(output.reclaim_after_ms) ms, \(output.max_deliveries) deliveries, status every \(output.status_interval_ms) ms, maintenance every \(output.maintenance_interval_ms) ms"
        )
        print(
            "leases: \(output.leases ? "on over Redis (TTL \(output.lease_ttl_ms) ms, renewed every \(output.lease_renew_ms) ms)" : "off: one instance serves every project")"
        )
        print(
            "engine: retries per gate \(output.max_retries), backoff \(output.backoff_base_ms) ms … \(output.backoff_cap_ms) ms, \(output.parallel_limit) stories in parallel, budget warning at \(Int(output.budget_warning_ratio * 100)) %"
        )
    }
}
