import Foundation
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveStore

/// The effective configuration: defaults, then the configuration file (`--config FILE`, env
/// `WAVE_CONFIG`), then the environment, then flags — each later source wins. One struct that
/// every front end reads (the CLI, and the HTTP API to come); `wave config show` prints it with
/// secrets masked.
///
/// The file is JSON:
/// ```json
/// {
///   "redis": "redis://127.0.0.1:6379",
///   "store": "sqlite:.wave/wave.sqlite",
///   "projects": ["shop"],
///   "consumer": "orchestrator-1",
///   "role_map": {"be-dev-1": "be"},
///   "orchestrator": {"batch_size": 128, "block_ms": 2000, "reclaim_after_ms": 30000, "max_deliveries": 5, "status_interval_ms": 5000, "maintenance_interval_ms": 60000,
///                    "leases": true, "lease_ttl_ms": 5000, "lease_renew_ms": 1000},
///   "engine": {"max_retries": 3, "backoff_base_ms": 1000, "backoff_cap_ms": 300000, "parallel_limit": 10, "budget_warning_ratio": 0.8}
/// }
/// ```
/// Every key is optional; an unknown key or a value of the wrong type is an error naming it.
public struct Settings: Sendable {
    /// Where a value came from.
    public enum Source: String, Sendable, Encodable {
        /// Wave's default.
        case `default`
        /// The configuration file.
        case file
        /// An environment variable.
        case env
        /// A command-line flag.
        case flag
    }

    public var redis: (value: String?, source: Source) = (nil, .default)
    public var store: (value: String, source: Source) = ("sqlite:.wave/wave.sqlite", .default)
    public var projects: (value: [String], source: Source) = ([], .default)
    public var consumer: (value: String, source: Source) = (ProcessInfo.processInfo.hostName, .default)
    public var roleMap: [String: String] = [:]
    public var batchSize = 128
    public var blockMilliseconds = 2_000
    public var reclaimAfterMilliseconds = 30_000
    public var maxDeliveries = 5
    public var statusIntervalMilliseconds = 5_000
    public var maintenanceIntervalMilliseconds = 60_000
    /// Serve projects by lease (SCALE.md): several `wave run` instances share the projects.
    public var leases = true
    /// How long a project lease lasts unless renewed (`orchestrator.lease_ttl_ms`).
    public var leaseTTLMilliseconds = 5_000
    /// How often leases are renewed (`orchestrator.lease_renew_ms`), well inside the TTL.
    public var leaseRenewMilliseconds = 1_000
    public var engine = EngineConfiguration.standard
    public var file: String?

    static let topKeys: Set<String> = ["redis", "store", "projects", "consumer", "role_map", "orchestrator", "engine"]
    static let orchestratorKeys: Set<String> = [
        "batch_size", "block_ms", "reclaim_after_ms", "max_deliveries", "status_interval_ms", "maintenance_interval_ms", "leases", "lease_ttl_ms",
        "lease_renew_ms",
    ]
    static let engineKeys: Set<String> = ["max_retries", "backoff_base_ms", "backoff_cap_ms", "parallel_limit", "budget_warning_ratio"]

    /// Wave's defaults.
    public init() {}

    /// Loads the settings: the defaults, then the configuration file (`config`, else
    /// `WAVE_CONFIG`), then the environment, then the flags given (`redis`, `store`).
    /// - Throws: ``ConfigurationError`` naming the file and the key that is wrong.
    public static func load(
        config: String?, redis: String?, store: String?, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigurationError) -> Settings {
        var settings = Settings()
        if let path = config ?? environment["WAVE_CONFIG"] {
            try settings.read(file: path)
        }
        if let url = environment["WAVE_REDIS_URL"] ?? environment["REDIS_URL"] { settings.redis = (url, .env) }
        // The store: WAVE_STORE, else the reference's DATABASE_URL, else its POSTGRES_* variables
        // (only when one of them is set: Wave's default stays SQLite), else the file's.
        if let store = environment["WAVE_STORE"] {
            settings.store = (store, .env)
        } else if let url = environment["DATABASE_URL"], !url.isEmpty {
            settings.store = (url, .env)
        } else {
            do {
                if let postgres = try PostgresURL(environment: environment) { settings.store = (postgres.connectionURL, .env) }
            } catch { throw ConfigurationError("POSTGRES_*: \(error.message)") }
        }
        if let projects = environment["WAVE_PROJECTS"] {
            settings.projects = (projects.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }, .env)
        }
        if let consumer = environment["WAVE_CONSUMER"], !consumer.isEmpty { settings.consumer = (consumer, .env) }
        if let url = redis { settings.redis = (url, .flag) }
        if let store { settings.store = (store, .flag) }
        return settings
    }

    mutating func read(file path: String) throws(ConfigurationError) {
        guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
            throw ConfigurationError("--config: cannot read \(path)")
        }
        guard case .object(let object)? = JSONValue(jsonText: text) else {
            throw ConfigurationError("--config: \(path) is not a JSON object")
        }
        self.file = path
        func bad(_ key: String, _ expected: String) -> ConfigurationError { ConfigurationError("--config: \(path): \"\(key)\" must be \(expected)") }
        func unknown(_ keys: some Sequence<String>, in section: String, allowed: Set<String>) throws(ConfigurationError) {
            let extra = Set(keys).subtracting(allowed).sorted()
            guard extra.isEmpty else {
                throw ConfigurationError(
                    "--config: \(path): unknown key\(extra.count == 1 ? "" : "s") \(extra.map { "\"\($0)\"" }.joined(separator: ", "))\(section.isEmpty ? "" : " in \"\(section)\"") (known: \(allowed.sorted().joined(separator: ", ")))"
                )
            }
        }
        func int(_ value: JSONValue?, _ key: String, minimum: Int = 1) throws(ConfigurationError) -> Int? {
            guard let value else { return nil }
            guard let number = value.numberValue, number == number.rounded(), number >= Double(minimum), number < 1e12 else {
                throw bad(key, "a whole number ≥ \(minimum)")
            }
            return Int(number)
        }
        try unknown(object.keys, in: "", allowed: Self.topKeys)
        if let value = object["redis"] {
            guard let url = value.stringValue else { throw bad("redis", "a redis:// or rediss:// URL") }
            self.redis = (url, .file)
        }
        if let value = object["store"] {
            guard let store = value.stringValue else { throw bad("store", "sqlite:PATH") }
            self.store = (store, .file)
        }
        if let value = object["projects"] {
            guard case .array(let items) = value, let names = Optional(items.compactMap(\.stringValue)), names.count == items.count else {
                throw bad("projects", "an array of project names")
            }
            self.projects = (names, .file)
        }
        if let value = object["consumer"] {
            guard let consumer = value.stringValue, !consumer.isEmpty else { throw bad("consumer", "a non-empty string") }
            self.consumer = (consumer, .file)
        }
        if let value = object["role_map"] {
            guard let map = value.objectValue else { throw bad("role_map", "an object of agent id → role") }
            for (agent, role) in map {
                guard let role = role.stringValue else { throw bad("role_map.\(agent)", "a role name") }
                self.roleMap[agent] = role
            }
        }
        if let value = object["orchestrator"] {
            guard let section = value.objectValue else { throw bad("orchestrator", "an object") }
            try unknown(section.keys, in: "orchestrator", allowed: Self.orchestratorKeys)
            self.batchSize = try int(section["batch_size"], "orchestrator.batch_size") ?? self.batchSize
            self.blockMilliseconds = try int(section["block_ms"], "orchestrator.block_ms") ?? self.blockMilliseconds
            self.reclaimAfterMilliseconds = try int(section["reclaim_after_ms"], "orchestrator.reclaim_after_ms") ?? self.reclaimAfterMilliseconds
            self.maxDeliveries = try int(section["max_deliveries"], "orchestrator.max_deliveries") ?? self.maxDeliveries
            self.statusIntervalMilliseconds = try int(section["status_interval_ms"], "orchestrator.status_interval_ms") ?? self.statusIntervalMilliseconds
            self.maintenanceIntervalMilliseconds =
                try int(section["maintenance_interval_ms"], "orchestrator.maintenance_interval_ms") ?? self.maintenanceIntervalMilliseconds
            if let value = section["leases"] {
                guard case .bool(let on) = value else { throw bad("orchestrator.leases", "true or false") }
                self.leases = on
            }
            self.leaseTTLMilliseconds = try int(section["lease_ttl_ms"], "orchestrator.lease_ttl_ms") ?? self.leaseTTLMilliseconds
            self.leaseRenewMilliseconds = try int(section["lease_renew_ms"], "orchestrator.lease_renew_ms") ?? self.leaseRenewMilliseconds
            guard self.leaseRenewMilliseconds < self.leaseTTLMilliseconds else {
                throw bad(
                    "orchestrator.lease_renew_ms",
                    "less than orchestrator.lease_ttl_ms (\(self.leaseTTLMilliseconds)), so that a lease is renewed before it lapses")
            }
        }
        if let value = object["engine"] {
            guard let section = value.objectValue else { throw bad("engine", "an object") }
            try unknown(section.keys, in: "engine", allowed: Self.engineKeys)
            if let retries = try int(section["max_retries"], "engine.max_retries", minimum: 0) {
                for index in self.engine.gates.indices { self.engine.gates[index].maxRetries = retries }
            }
            if let base = try int(section["backoff_base_ms"], "engine.backoff_base_ms") { self.engine.backoffBase = .milliseconds(base) }
            if let cap = try int(section["backoff_cap_ms"], "engine.backoff_cap_ms") { self.engine.backoffCap = .milliseconds(cap) }
            if let limit = try int(section["parallel_limit"], "engine.parallel_limit") { self.engine.parallelLimit = limit }
            if let value = section["budget_warning_ratio"] {
                guard let ratio = value.numberValue, ratio > 0, ratio <= 1 else { throw bad("engine.budget_warning_ratio", "a number in (0, 1]") }
                self.engine.budgetWarningRatio = ratio
            }
        }
    }

    /// The store URL with any password replaced by `***`.
    public var maskedStore: String {
        (try? StoreURL(self.store.value))?.description ?? "(invalid URL)"
    }

    /// The Redis URL with any password replaced by `***`.
    public var maskedRedis: String? {
        guard let url = self.redis.value else { return nil }
        return (try? RedisConfiguration(url: url))?.redactedURL ?? "(invalid URL)"
    }
}

/// A configuration file Wave cannot use: which file, which key, what it must be.
public struct ConfigurationError: Error, Sendable, CustomStringConvertible {
    /// What is wrong, for the operator.
    public var message: String
    public var description: String { self.message }

    init(_ message: String) { self.message = message }
}
