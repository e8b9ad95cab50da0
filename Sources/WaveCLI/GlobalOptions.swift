import ArgumentParser
import Foundation
import WaveOperations
import WaveRedis

/// Options every subcommand accepts.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Redis URL: redis://[user:pass@]host:port/db or rediss://… (env WAVE_REDIS_URL, then REDIS_URL).")
    var redis: String?

    @Option(name: .long, help: "State store: sqlite:PATH (default .wave/wave.sqlite; env WAVE_STORE).")
    var store: String?

    @Option(name: .long, help: "Configuration file (JSON; env WAVE_CONFIG); see `wave config show`.")
    var config: String?

    @Flag(name: .long, help: "Print exactly one JSON object on stdout; logs go to stderr.")
    var json = false

    /// The Redis URL from the flag, the environment or the configuration file, if any (a bad
    /// file is reported by the store's and Redis's loaders, which every command calls).
    var redisURL: String? {
        let environment = ProcessInfo.processInfo.environment
        return self.redis ?? environment["WAVE_REDIS_URL"] ?? environment["REDIS_URL"] ?? (try? Settings.load(self))?.redis.value
    }

    /// The Redis configuration; a command that needs Redis fails with exit 2 and a hint
    /// without one.
    func requireRedis(for command: String) throws -> RedisConfiguration {
        _ = try Settings.load(self)  // a bad configuration file is an error, not ignored
        guard let url = self.redisURL else {
            throw CLIError.badInput("\(command) needs a Redis server: pass --redis redis://127.0.0.1:6379 (or set WAVE_REDIS_URL)")
        }
        do {
            return try RedisConfiguration(url: url)
        } catch {
            throw CLIError.badInput(error.message)
        }
    }
}
