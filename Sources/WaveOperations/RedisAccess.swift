import Logging
import WaveRedis

/// How the front ends reach Redis: a client for one operation, shut down afterwards, and the
/// orchestrator's wait for Redis at start.
public enum RedisAccess {
    /// Runs `body` with a new client, shut down afterwards whatever `body` does.
    public static func withClient<T: Sendable>(
        _ configuration: RedisConfiguration, logger: Logger, _ body: (RedisClient) async throws -> T
    ) async throws -> T {
        let client = try RedisClient(configuration: configuration, logger: logger)
        do {
            let result = try await body(client)
            await client.shutdown()
            return result
        } catch {
            await client.shutdown()
            throw error
        }
    }

    /// Waits until Redis answers (QUALITY.md, fault 3: Redis absent when the orchestrator
    /// starts), trying again with a short backoff and saying so once.
    /// - Throws: ``RedisUnreachable`` once `limit` (if any) has passed.
    public static func awaitRedis(_ client: RedisClient, limit: Duration?, logger: Logger) async throws {
        let configuration = client.configuration
        let deadline = limit.map { ContinuousClock.now + $0 }
        var attempt = 0
        while true {
            do {
                _ = try await client.serverInfo()
                if attempt > 0 { logger.info("Redis at \(configuration.host):\(configuration.port) answers; starting") }
                return
            } catch {
                if let deadline, ContinuousClock.now >= deadline {
                    throw RedisUnreachable(host: configuration.host, port: configuration.port, reason: "\(error)")
                }
                if attempt == 0 {
                    logger.warning(
                        "Redis at \(configuration.host):\(configuration.port) is not reachable (\(error)); waiting for it, the orchestrator starts when it answers (--wait-for-redis limits the wait)"
                    )
                }
            }
            // A backoff between attempts, capped at a quarter second (or the configured reconnect
            // ceiling, if lower): one local connection attempt is cheap, and the orchestrator
            // should start as soon as Redis answers (QUALITY.md: within 2 s).
            let cap = min(configuration.reconnectBackoff.cap, .milliseconds(250))
            let delay = Backoff(base: min(configuration.reconnectBackoff.base, cap), cap: cap).delay(attempt: attempt)
            attempt += 1
            // sleep: backoff
            try await Task.sleep(for: delay)
        }
    }
}

/// Redis did not answer within the wait allowed.
public struct RedisUnreachable: Error, Sendable, CustomStringConvertible {
    /// Where it was looked for.
    public var host: String
    /// Its port.
    public var port: Int
    /// The last error.
    public var reason: String

    public var description: String {
        "cannot reach Redis at \(self.host):\(self.port): \(self.reason) (is redis-server running? check --redis or WAVE_REDIS_URL)"
    }
}
