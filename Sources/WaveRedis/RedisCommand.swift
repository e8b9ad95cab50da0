import NIOCore
import RESP

/// A Redis command: how it is written, and how its reply is read.
///
/// Commands are small `Sendable` values; the client writes them with ``encode(into:)`` and turns
/// the reply into ``Response`` with ``decode(_:)``. An error reply never reaches `decode`: the
/// client raises it as ``RedisClientError`` with code ``RedisClientError/Code/server``.
public protocol RedisCommand: Sendable {
    /// What the reply becomes.
    associatedtype Response: Sendable = RESPToken

    /// Appends the command's arguments (name first).
    func encode(into arguments: inout RESPCommandEncoder.Arguments)

    /// Reads the reply.
    /// - Throws: ``RESPDecodeError`` when the reply has an unexpected shape.
    func decode(_ token: RESPToken) throws(RESPDecodeError) -> Response

    /// For a blocking command (`XREADGROUP … BLOCK`), how long the server may block. It runs on
    /// a dedicated connection whose deadline is this plus the command timeout.
    var blockingTimeout: Duration? { get }

    /// A response that stands for an error reply, when the command treats that error as a
    /// result (`XGROUP CREATE` treats `BUSYGROUP` as "already exists"); `nil` raises the error.
    func response(forError message: String) -> Response?
}

extension RedisCommand {
    public var blockingTimeout: Duration? { nil }
    public func response(forError message: String) -> Response? { nil }
}

extension RedisCommand where Response: RESPTokenDecodable {
    public func decode(_ token: RESPToken) throws(RESPDecodeError) -> Response {
        try Response(fromRESP: token)
    }
}

/// Any command given as a list of arguments; the reply is the raw token.
public struct RawCommand: RedisCommand {
    public typealias Response = RESPToken
    /// The arguments, command name first.
    public var arguments: [String]

    /// Creates a command from its arguments.
    public init(_ arguments: String...) {
        self.arguments = arguments
    }

    /// Creates a command from its arguments.
    public init(arguments: [String]) {
        self.arguments = arguments
    }

    public func encode(into arguments: inout RESPCommandEncoder.Arguments) {
        arguments.append(contentsOf: self.arguments)
    }
}

/// Replies that are the simple string `OK`.
public struct OKResponse: RESPTokenDecodable, Hashable {
    public init(fromRESP token: RESPToken) throws(RESPDecodeError) {
        guard token.stringValue == "OK" else { throw RESPDecodeError(.invalidValue, expected: "OK", token: token) }
    }
}

extension RedisCommand {
    /// Reads a reply: error replies become ``RedisClientError`` unless the command maps them to
    /// a response; shape mismatches become ``RedisClientError/Code/unexpectedResponse``.
    func decodeReply(_ token: RESPToken) throws(RedisClientError) -> Response {
        if let message = token.errorMessage, let response = self.response(forError: message) {
            return response
        }
        do {
            return try self.decode(try token.throwingServerError())
        } catch let error as RESPDecodeError {
            throw RedisClientError(.unexpectedResponse, "\(Self.self): \(error)", underlying: error)
        } catch let error as RedisClientError {
            throw error
        } catch {
            throw RedisClientError.from(error)
        }
    }
}

extension RESPToken {
    /// Converts an error reply into ``RedisClientError``; returns the token otherwise.
    func throwingServerError() throws(RedisClientError) -> RESPToken {
        if let message = self.errorMessage {
            if message.hasPrefix("WRONGPASS") || message.hasPrefix("NOAUTH") || message.hasPrefix("NOPERM") {
                throw RedisClientError(.authentication, message)
            }
            throw RedisClientError(.server, message)
        }
        return self
    }
}
