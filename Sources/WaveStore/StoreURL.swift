import Foundation

/// Where a store lives: a SQLite file or a PostgreSQL database (SCALE.md, "The store URL").
///
/// Its description never shows a password.
public enum StoreURL: Sendable, Hashable, CustomStringConvertible {
    /// `sqlite:PATH`.
    case sqlite(StoreLocation)
    /// `postgres://…` or `postgresql://…`.
    case postgres(PostgresURL)

    /// Parses `sqlite:PATH`, a bare path (SQLite), or `postgres://USER:PASS@HOST:PORT/DB?sslmode=…`.
    /// - Throws: ``StoreError`` (`invalidURL`) with what is wrong.
    public init(_ text: String) throws(StoreError) {
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            self = .postgres(try PostgresURL(url: text))
        } else {
            self = .sqlite(try StoreLocation(url: text))
        }
    }

    public var description: String {
        switch self {
        case .sqlite(let location): location.description
        case .postgres(let url): url.description
        }
    }
}

/// A PostgreSQL database as a URL names it: `postgres://USER:PASS@HOST:PORT/DB?sslmode=MODE`
/// (`postgresql://` too). Its description shows `***` for the password.
public struct PostgresURL: Sendable, Hashable, CustomStringConvertible {
    /// libpq's `sslmode` values that Wave honours.
    public enum SSLMode: String, Sendable, Hashable, CaseIterable {
        /// No TLS.
        case disable
        /// TLS when the server offers it, without verifying its certificate (libpq's default).
        case prefer
        /// TLS, without verifying the server's certificate.
        case require
        /// TLS, the certificate verified against the system's trust roots, and the host name.
        case verifyFull = "verify-full"
    }

    /// The server's host name or address.
    public var host: String
    /// The server's port (5432 by default).
    public var port: Int
    /// The role to log in as.
    public var user: String
    /// Its password, if any.
    public var password: String?
    /// The database.
    public var database: String
    /// How the connection uses TLS.
    public var sslMode: SSLMode
    /// A file of trusted CA certificates (PEM) for `verify-full` (libpq's `sslrootcert`); `nil`:
    /// the system's trust roots.
    public var sslRootCertificate: String?

    /// A database by its parts.
    public init(host: String, port: Int = 5432, user: String, password: String?, database: String, sslMode: SSLMode = .prefer) {
        self.host = host
        self.port = port
        self.user = user
        self.password = password
        self.database = database
        self.sslMode = sslMode
    }

    /// Parses a URL. User, password and database may be percent-encoded.
    /// Without a user, the operating system's (`USER`), as libpq does.
    /// - Throws: ``StoreError`` (`invalidURL`): another scheme, no host, no database, a port or
    ///   `sslmode` that is not valid (the message never shows the password).
    public init(url text: String) throws(StoreError) {
        guard let components = URLComponents(string: text), let scheme = components.scheme, ["postgres", "postgresql"].contains(scheme) else {
            throw StoreError(.invalidURL, "not a PostgreSQL URL (postgres://USER:PASS@HOST:PORT/DB?sslmode=disable|require|verify-full)")
        }
        guard let host = components.host, !host.isEmpty else {
            throw StoreError(.invalidURL, "the PostgreSQL URL names no host (postgres://USER:PASS@HOST:PORT/DB)")
        }
        let database = components.path.hasPrefix("/") ? String(components.path.dropFirst()) : components.path
        guard !database.isEmpty, !database.contains("/") else {
            throw StoreError(.invalidURL, "the PostgreSQL URL names no database (postgres://USER:PASS@HOST:PORT/DB)")
        }
        // No user: the operating system's, as libpq does.
        let user = components.user.flatMap { $0.isEmpty ? nil : $0 } ?? ProcessInfo.processInfo.environment["USER"] ?? "postgres"
        var mode = SSLMode.prefer
        var rootCertificate: String?
        for item in components.queryItems ?? [] {
            switch item.name {
            case "sslrootcert":
                guard let value = item.value, !value.isEmpty else { throw StoreError(.invalidURL, "sslrootcert names no file") }
                rootCertificate = value
            case "sslmode":
                guard let value = item.value, let parsed = SSLMode(rawValue: value) else {
                    throw StoreError(
                        .invalidURL, "sslmode=\(item.value ?? "") is not one of \(SSLMode.allCases.map(\.rawValue).joined(separator: ", "))")
                }
                mode = parsed
            default:
                throw StoreError(.invalidURL, "the PostgreSQL URL's parameter \(item.name) is not supported (only sslmode and sslrootcert)")
            }
        }
        if let port = components.port, !(1...65_535).contains(port) {
            throw StoreError(.invalidURL, "the PostgreSQL URL's port \(port) is out of range")
        }
        self.init(
            host: host, port: components.port ?? 5432, user: components.percentEncodedUser.flatMap { $0.isEmpty ? nil : $0.removingPercentEncoding } ?? user,
            password: components.percentEncodedPassword.map { $0.removingPercentEncoding ?? $0 },
            database: database.removingPercentEncoding ?? database, sslMode: mode)
        self.sslRootCertificate = rootCertificate
    }

    /// The database the reference's variables name (`POSTGRES_HOST`, `POSTGRES_PORT`,
    /// `POSTGRES_DB`, `POSTGRES_USER`, `POSTGRES_PASSWORD`, with the reference's defaults
    /// `localhost`, `5432`, `wave`, `wave`, `wave` for those unset), or `nil` when none of them
    /// is set (Wave then keeps its SQLite default).
    /// - Throws: ``StoreError`` when `POSTGRES_PORT` is not a port.
    public init?(environment: [String: String]) throws(StoreError) {
        let names = ["POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"]
        guard names.contains(where: { environment[$0] != nil }) else { return nil }
        let portText = environment["POSTGRES_PORT"] ?? "5432"
        guard let port = Int(portText), (1...65_535).contains(port) else {
            throw StoreError(.invalidURL, "POSTGRES_PORT=\(portText) is not a port")
        }
        self.init(
            host: environment["POSTGRES_HOST"] ?? "localhost", port: port, user: environment["POSTGRES_USER"] ?? "wave",
            password: environment["POSTGRES_PASSWORD"] ?? "wave", database: environment["POSTGRES_DB"] ?? "wave")
    }

    /// The URL with its password (percent-encoded): what a connection needs, never for display.
    public var connectionURL: String {
        var text = self.description
        if let password = self.password {
            let encoded = password.addingPercentEncoding(withAllowedCharacters: .alphanumerics) ?? password
            text = text.replacingOccurrences(of: ":***@", with: ":\(encoded)@")
        }
        return text
    }

    /// The URL with `***` for the password.
    public var description: String {
        var components = URLComponents()
        components.scheme = "postgres"
        components.host = self.host
        components.port = self.port
        components.user = self.user
        if self.password != nil { components.percentEncodedPassword = "***" }
        components.path = "/" + self.database
        components.queryItems =
            [URLQueryItem(name: "sslmode", value: self.sslMode.rawValue)]
            + (self.sslRootCertificate.map { [URLQueryItem(name: "sslrootcert", value: $0)] } ?? [])
        return components.string ?? "postgres://\(self.user)@\(self.host):\(self.port)/\(self.database)"
    }
}
