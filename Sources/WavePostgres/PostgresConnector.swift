import Logging
import NIOCore
import NIOPosix
import NIOSSL
import PostgresNIO
import WaveStore

/// Opens PostgreSQL connections for a ``PostgresURL``: the pool (`PostgresClient`) that a store
/// uses, and one checked connection first, so that a wrong password or an unreachable server is
/// a clear ``StoreError`` at once instead of requests that wait on a pool that keeps retrying.
public struct PostgresConnector: Sendable {
    /// The database.
    public let url: PostgresURL
    /// Logs of the driver (its background events).
    public let logger: Logger
    /// How long a connection attempt may take.
    public var connectTimeout: Duration = .seconds(10)
    /// The pool's largest size.
    public var maximumConnections = 20

    /// A connector for `url`.
    public init(url: PostgresURL, logger: Logger) {
        self.url = url
        self.logger = logger
    }

    /// The TLS settings `sslmode` asks for: none, opportunistic without verification, required
    /// without verification, or required with the certificate and host name verified.
    func tlsConfiguration() -> TLSConfiguration {
        var tls = TLSConfiguration.makeClientConfiguration()
        if self.url.sslMode != .verifyFull { tls.certificateVerification = .none }
        if let file = self.url.sslRootCertificate { tls.trustRoots = .file(file) }
        return tls
    }

    /// The pool's configuration.
    public func clientConfiguration() -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS =
            switch self.url.sslMode {
            case .disable: .disable
            case .prefer: .prefer(self.tlsConfiguration())
            case .require, .verifyFull: .require(self.tlsConfiguration())
            }
        var configuration = PostgresClient.Configuration(
            host: self.url.host, port: self.url.port, username: self.url.user, password: self.url.password, database: self.url.database, tls: tls)
        configuration.options.connectTimeout = self.connectTimeout
        configuration.options.maximumConnections = self.maximumConnections
        if self.url.sslMode == .verifyFull { configuration.options.tlsServerName = self.url.host }
        return configuration
    }

    /// Connects once and closes: the server answers and accepts the credentials.
    /// - Throws: ``StoreError`` (`unreachable`, `authenticationFailed`) with a hint.
    public func check() async throws(StoreError) {
        do {
            let tls: PostgresConnection.Configuration.TLS
            switch self.url.sslMode {
            case .disable: tls = .disable
            case .prefer: tls = .prefer(try NIOSSLContext(configuration: self.tlsConfiguration()))
            case .require, .verifyFull: tls = .require(try NIOSSLContext(configuration: self.tlsConfiguration()))
            }
            var configuration = PostgresConnection.Configuration(
                host: self.url.host, port: self.url.port, username: self.url.user, password: self.url.password, database: self.url.database, tls: tls)
            configuration.options.connectTimeout = .nanoseconds(Int64(self.connectTimeout.components.seconds) * 1_000_000_000)
            if self.url.sslMode == .verifyFull { configuration.options.tlsServerName = self.url.host }
            let connection = try await PostgresConnection.connect(configuration: configuration, id: 0, logger: self.logger)
            try? await connection.close()
        } catch {
            throw self.explain(error)
        }
    }

    /// Runs `body` with a running pool, then shuts it down. The connection is checked first.
    /// - Throws: ``StoreError`` when the server cannot be reached or refuses the credentials;
    ///   else what `body` throws.
    public func withClient<T: Sendable>(_ body: @Sendable (PostgresClient) async throws -> T) async throws -> T {
        try await self.check()
        // The pool warns when a lease comes before its run loop has started, which the task
        // group below cannot order; connection failures were reported by the check above.
        var background = self.logger
        background.logLevel = max(.error, self.logger.logLevel)
        let client = PostgresClient(configuration: self.clientConfiguration(), backgroundLogger: background)
        return try await withThrowingTaskGroup(of: T?.self) { group in
            group.addTask {
                await client.run()
                return nil
            }
            defer { group.cancelAll() }
            return try await body(client)
        }
    }

    /// A store error for what the driver threw, without the password and with a hint.
    public func explain(_ error: any Error) -> StoreError {
        if let error = error as? StoreError { return error }
        let target = "PostgreSQL at \(self.url.host):\(self.url.port) (database \(self.url.database), user \(self.url.user))"
        if let error = error as? PSQLError {
            if error.code == .server, let state = error.serverInfo?[.sqlState] {
                let message = error.serverInfo?[.message] ?? "refused"
                switch state {
                case "28P01", "28000":
                    return StoreError(.authenticationFailed, "\(target) refused the login: \(message) (hint: check the user and password in the store URL)")
                case "3D000":
                    return StoreError(
                        .unreachable, "\(target): \(message) (hint: create it with 'createdb \(self.url.database)' or name another database in the store URL)")
                default:
                    return StoreError(.unreachable, "\(target): \(message) [\(state)]")
                }
            }
            switch error.code {
            case .sslUnsupported:
                return StoreError(.unreachable, "\(target) does not offer TLS (hint: sslmode=disable or prefer in the store URL)")
            case .connectionError where "\(error.underlying.map { "\($0)" } ?? "")".contains("handshake"),
                .failedToAddSSLHandler:
                let cause = error.underlying.map { "\($0)" } ?? "\(error.code)"
                return StoreError(
                    .unreachable,
                    "the TLS handshake with \(target) failed: \(cause) (hint: sslmode=verify-full checks the certificate against the system's roots or sslrootcert=FILE, and its name against the host)"
                )
            case .connectionError, .serverClosedConnection, .uncleanShutdown:
                let cause = error.underlying.map { "\($0)" } ?? "\(error.code)"
                return StoreError(.unreachable, "cannot reach \(target): \(cause) (hint: is PostgreSQL running there and listening on TCP?)")
            default:
                return StoreError(.unreachable, "\(target): \(error.code)")
            }
        }
        return StoreError(.unreachable, "cannot reach \(target): \(error) (hint: is PostgreSQL running there and listening on TCP?)")
    }
}
