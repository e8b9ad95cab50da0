import NIOCore
import RESP

/// An error from the Redis client.
///
/// One struct for the whole subsystem: a ``Code`` says what went wrong, ``message`` says it for
/// people, and the file and line show where it was raised. ``isConnectionFailure`` separates
/// trouble reaching the server (which feeds the circuit breaker) from errors the server
/// returned.
public struct RedisClientError: Error, Sendable, CustomStringConvertible {
    /// What went wrong.
    public struct Code: Hashable, Sendable, CustomStringConvertible {
        enum Base: Hashable, Sendable {
            case connectionFailed, connectionClosed, timeout, cancelled, circuitOpen
            case server, authentication, protocolViolation, unexpectedResponse
            case invalidConfiguration, tls, clientShutdown, transactionAborted
        }
        let base: Base
        /// The TCP or TLS connection could not be established.
        public static let connectionFailed = Code(base: .connectionFailed)
        /// The connection closed (or broke) while the request was in flight or before it was sent.
        public static let connectionClosed = Code(base: .connectionClosed)
        /// The server did not answer before the deadline; everything in flight on that connection
        /// failed and the connection was closed.
        public static let timeout = Code(base: .timeout)
        /// The calling task was cancelled.
        public static let cancelled = Code(base: .cancelled)
        /// The circuit breaker is open: the request was not sent.
        public static let circuitOpen = Code(base: .circuitOpen)
        /// The server answered with an error reply (see ``RedisClientError/serverMessage``).
        public static let server = Code(base: .server)
        /// The server refused the credentials.
        public static let authentication = Code(base: .authentication)
        /// The server sent bytes that are not valid RESP, or a reply nobody asked for.
        public static let protocolViolation = Code(base: .protocolViolation)
        /// The reply had a shape the command did not expect.
        public static let unexpectedResponse = Code(base: .unexpectedResponse)
        /// A URL or setting is invalid.
        public static let invalidConfiguration = Code(base: .invalidConfiguration)
        /// TLS could not be set up (certificate files, handshake).
        public static let tls = Code(base: .tls)
        /// The client was shut down.
        public static let clientShutdown = Code(base: .clientShutdown)
        /// `EXEC` returned null: a watched key changed.
        public static let transactionAborted = Code(base: .transactionAborted)

        public var description: String { "\(self.base)" }
    }

    /// What went wrong.
    public var code: Code
    /// A description for people.
    public var message: String
    /// The error that caused this one, if any.
    public var underlying: (any Error)?
    /// Where the error was raised.
    public var file: String
    /// Where the error was raised.
    public var line: Int

    /// Creates an error.
    public init(_ code: Code, _ message: String, underlying: (any Error)? = nil, file: String = #fileID, line: Int = #line) {
        self.code = code
        self.message = message
        self.underlying = underlying
        self.file = file
        self.line = line
    }

    /// The error reply's text for ``Code/server`` errors (`ERR …`, `WRONGTYPE …`, `NOSCRIPT …`).
    public var serverMessage: String? { self.code == .server ? self.message : nil }

    /// The first word of a server error (`ERR`, `WRONGTYPE`, `BUSYGROUP`, `NOGROUP`, …).
    public var serverErrorPrefix: Substring? {
        self.serverMessage.map { $0.prefix(while: { $0 != " " }) }
    }

    /// Whether the failure is about reaching the server rather than what it answered; these
    /// count towards opening the circuit breaker.
    public var isConnectionFailure: Bool {
        switch self.code.base {
        case .connectionFailed, .connectionClosed, .timeout, .protocolViolation, .tls: true
        default: false
        }
    }

    public var description: String {
        var text = "\(self.code): \(self.message)"
        if let underlying { text += " (\(underlying))" }
        return text
    }

    static func from(_ error: any Error, file: String = #fileID, line: Int = #line) -> RedisClientError {
        if let error = error as? RedisClientError { return error }
        if error is CancellationError { return RedisClientError(.cancelled, "the request was cancelled", file: file, line: line) }
        if let error = error as? RESPParsingError {
            return RedisClientError(.protocolViolation, "the server sent invalid RESP", underlying: error, file: file, line: line)
        }
        if let error = error as? RESPDecodeError {
            return RedisClientError(.unexpectedResponse, error.description, underlying: error, file: file, line: line)
        }
        if let error = error as? ChannelError {
            switch error {
            case .ioOnClosedChannel, .alreadyClosed, .eof, .outputClosed, .inputClosed:
                return RedisClientError(.connectionClosed, "the connection is closed", underlying: error, file: file, line: line)
            default:
                return RedisClientError(.connectionClosed, "the connection failed", underlying: error, file: file, line: line)
            }
        }
        if error is IOError {
            return RedisClientError(.connectionClosed, "the connection failed", underlying: error, file: file, line: line)
        }
        return RedisClientError(.connectionFailed, "\(error)", underlying: error, file: file, line: line)
    }
}
