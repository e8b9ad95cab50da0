import ArgumentParser
import Foundation
import WaveRedis

/// Options every subcommand accepts.
struct GlobalOptions: ParsableArguments {
    @Option(name: .long, help: "Redis URL: redis://[user:pass@]host:port/db or rediss://… (env WAVE_REDIS_URL, then REDIS_URL).")
    var redis: String?

    @Option(name: .long, help: "State store: sqlite:PATH (default .wave/wave.sqlite; env WAVE_STORE).")
    var store: String?

    @Option(name: .long, help: "Configuration file.")
    var config: String?

    @Flag(name: .long, help: "Print exactly one JSON object on stdout; logs go to stderr.")
    var json = false

    /// The Redis URL from the flag or the environment, if any.
    var redisURL: String? {
        let environment = ProcessInfo.processInfo.environment
        return self.redis ?? environment["WAVE_REDIS_URL"] ?? environment["REDIS_URL"]
    }

    /// The Redis configuration; a command that needs Redis fails with exit 2 and a hint
    /// without one.
    func requireRedis(for command: String) throws -> RedisConfiguration {
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
