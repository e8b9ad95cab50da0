import Logging
import NIOCore
import RESP
import Synchronization

/// An event on a pub/sub subscription.
public enum RedisSubscriptionEvent: Sendable, Hashable {
    /// Every channel and pattern is subscribed, the first time or again after a reconnect.
    /// Messages published while the connection was down were not received: a listener that
    /// must not miss anything re-reads its source of truth here.
    case subscribed(channels: [String], patterns: [String])
    /// A message on a channel (with the pattern that matched, for pattern subscriptions).
    case message(channel: String, payload: String, pattern: String?)
}

extension RedisClient {
    /// Subscribes to channels and patterns on a dedicated connection and runs `body` with the
    /// stream of events; unsubscribes and closes the connection when `body` returns.
    ///
    /// The subscription survives connection loss: it reconnects with exponential backoff and full
    /// jitter, subscribes again and delivers ``RedisSubscriptionEvent/subscribed(channels:patterns:)``
    /// each time. RESP3 push frames are used when the server speaks RESP3.
    public func withSubscription<Result: Sendable>(
        channels: [String],
        patterns: [String] = [],
        _ body: (AsyncStream<RedisSubscriptionEvent>) async throws -> Result
    ) async throws -> Result {
        precondition(!channels.isEmpty || !patterns.isEmpty, "subscribe to at least one channel or pattern")
        let (stream, continuation) = AsyncStream.makeStream(of: RedisSubscriptionEvent.self, bufferingPolicy: .bufferingNewest(10_000))
        let current = CurrentConnection()
        return try await withThrowingTaskGroup(of: Void.self) { group in
            group.addTask {
                await self.maintainSubscription(channels: channels, patterns: patterns, current: current, continuation: continuation)
            }
            defer { group.cancelAll() }
            let result = try await body(stream)
            continuation.finish()
            // Leave politely: UNSUBSCRIBE and PUNSUBSCRIBE, confirmed, before the connection closes.
            if let connection = current.value.withLock({ $0 }), connection.isActive {
                if !channels.isEmpty {
                    try? await connection.submitSubscription(["UNSUBSCRIBE"] + channels, confirmations: channels.count)
                }
                if !patterns.isEmpty {
                    try? await connection.submitSubscription(["PUNSUBSCRIBE"] + patterns, confirmations: patterns.count)
                }
            }
            return result
        }
    }

    private func maintainSubscription(
        channels: [String],
        patterns: [String],
        current: CurrentConnection,
        continuation: AsyncStream<RedisSubscriptionEvent>.Continuation
    ) async {
        var attempt = 0
        while !Task.isCancelled {
            do {
                let connection = try await self.openConnection(onPush: { token in
                    if let event = Self.subscriptionEvent(token) { continuation.yield(event) }
                })
                attempt = 0
                current.value.withLock { $0 = connection }
                do {
                    if !channels.isEmpty {
                        try await connection.submitSubscription(["SUBSCRIBE"] + channels, confirmations: channels.count)
                    }
                    if !patterns.isEmpty {
                        try await connection.submitSubscription(["PSUBSCRIBE"] + patterns, confirmations: patterns.count)
                    }
                    continuation.yield(.subscribed(channels: channels, patterns: patterns))
                    // Wait for the connection to close (or for cancellation to close it).
                    try await withTaskCancellationHandler {
                        try await connection.closeFuture.get()
                    } onCancel: {
                        connection.channel.close(promise: nil)
                    }
                    if Task.isCancelled { return }
                    self.logger.warning("Redis subscription connection lost; resubscribing")
                } catch {
                    await connection.close()
                    if Task.isCancelled { return }
                    self.logger.warning("Redis subscription failed; retrying", metadata: ["wave.error": "\(error)"])
                }
            } catch {
                if Task.isCancelled { return }
                self.logger.debug("Redis subscription cannot connect", metadata: ["wave.error": "\(error)"])
            }
            // Reconnect backoff: exponential with full jitter.
            let delay = self.configuration.reconnectBackoff.delay(attempt: attempt)
            attempt += 1
            // sleep: backoff
            do { try await Task.sleep(for: delay) } catch { return }
        }
    }

    static func subscriptionEvent(_ token: RESPToken) -> RedisSubscriptionEvent? {
        guard let parts = try? token.elements(), let kind = parts.first?.stringValue?.lowercased() else { return nil }
        switch kind {
        case "message" where parts.count == 3:
            guard let channel = parts[1].stringValue, let payload = parts[2].stringValue else { return nil }
            return .message(channel: channel, payload: payload, pattern: nil)
        case "pmessage" where parts.count == 4:
            guard let pattern = parts[1].stringValue, let channel = parts[2].stringValue, let payload = parts[3].stringValue else { return nil }
            return .message(channel: channel, payload: payload, pattern: pattern)
        default:
            return nil
        }
    }
}

/// The connection a subscription is currently on.
final class CurrentConnection: Sendable {
    let value = Mutex<RedisConnection?>(nil)
}
