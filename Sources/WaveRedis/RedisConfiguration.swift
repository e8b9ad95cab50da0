import RESP

/// Everything the client needs to reach and talk to one Redis server.
///
/// Build it from a URL (``init(url:)``) and adjust fields as needed:
///
/// ```swift
/// var configuration = try RedisConfiguration(url: "redis://wave:secret@127.0.0.1:6379/0")
/// configuration.pool.maxConnections = 16
/// ```
public struct RedisConfiguration: Sendable {
    /// Credentials sent on connect (`HELLO … AUTH`, or `AUTH` on RESP2 servers).
    public struct Authentication: Sendable, Hashable {
        /// The ACL user; `nil` means the default user (`requirepass`).
        public var username: String?
        /// The password.
        public var password: String

        /// Creates credentials.
        public init(username: String? = nil, password: String) {
            self.username = username
            self.password = password
        }
    }

    /// TLS settings (`rediss://`).
    public struct TLS: Sendable, Hashable {
        /// A PEM file of CA certificates to trust instead of the system's. URL query `ca=`.
        public var caFile: String?
        /// Whether to verify the server's certificate and name. Default `true`; turning it off
        /// (URL query `verify=false`) is for tests only.
        public var verifyCertificates: Bool
        /// The name to verify and send as SNI. Default: the host, unless it is an IP address.
        public var serverName: String?

        /// Creates TLS settings with verification on.
        public init(caFile: String? = nil, verifyCertificates: Bool = true, serverName: String? = nil) {
            self.caFile = caFile
            self.verifyCertificates = verifyCertificates
            self.serverName = serverName
        }
    }

    /// Connection pool settings for ordinary commands.
    public struct Pool: Sendable, Hashable {
        /// Connections kept open even when idle. Default 1.
        public var minConnections: Int = 1
        /// The most connections open at once; further requests wait. Default 8.
        public var maxConnections: Int = 8
        /// Idle connections above the minimum close after this long. Default 60 s.
        public var idleTimeout: Duration = .seconds(60)
        /// Idle connections are checked with `PING` at this interval. Default 30 s.
        public var keepAliveInterval: Duration = .seconds(30)

        /// Creates pool settings with the defaults.
        public init() {}
    }

    /// Host name or IP address. Default `127.0.0.1`.
    public var host: String = "127.0.0.1"
    /// TCP port. Default 6379.
    public var port: Int = 6379
    /// Database number selected on connect. Default 0.
    public var database: Int = 0
    /// Credentials, if the server needs them.
    public var authentication: Authentication?
    /// TLS, or `nil` for plain TCP.
    public var tls: TLS?
    /// Name given to every connection with `CLIENT SETNAME` (visible in `CLIENT LIST`).
    /// Default `wave`. URL query `name=`.
    public var clientName: String? = "wave"
    /// How long connecting (TCP, TLS and handshake) may take. Default 5 s.
    public var connectTimeout: Duration = .seconds(5)
    /// How long a reply may take before everything in flight on that connection fails and the
    /// connection closes. Default 5 s. Blocking commands get their `BLOCK` time on top.
    public var commandTimeout: Duration = .seconds(5)
    /// Pool settings.
    public var pool = Pool()
    /// Backoff between reconnection attempts: 100 ms doubling to a 1 s cap, full jitter, so that
    /// work resumes within about a second of the server coming back (QUALITY.md: within 2 s of a
    /// fault clearing); one attempt a second costs the server nothing.
    public var reconnectBackoff = Backoff(base: .milliseconds(100), cap: .seconds(1))
    /// Circuit breaker settings.
    public var circuitBreaker = CircuitBreaker.Configuration()
    /// Bounds on what the server may send.
    public var decoderLimits = RESPDecoderLimits.default
    /// Ask for RESP3 with `HELLO 3` (falling back to RESP2 when refused). Default `true`.
    public var preferRESP3 = true

    /// Creates a configuration for a plain connection to `host:port`.
    public init(host: String = "127.0.0.1", port: Int = 6379) {
        self.host = host
        self.port = port
    }

    /// Parses `redis://[user:password@]host[:port][/db][?name=…]` or
    /// `rediss://…[?ca=/path/ca.pem][&verify=false]`.
    ///
    /// A password alone (`redis://:secret@host`) authenticates the default user. User and
    /// password may be percent-encoded.
    /// - Throws: ``RedisClientError`` with code ``RedisClientError/Code/invalidConfiguration``
    ///   naming what is wrong.
    public init(url: String) throws(RedisClientError) {
        func invalid(_ why: String) -> RedisClientError {
            RedisClientError(.invalidConfiguration, "invalid Redis URL \(Self.redact(url)): \(why)")
        }
        var rest = Substring(url)
        if rest.hasPrefix("redis://") {
            rest = rest.dropFirst("redis://".count)
        } else if rest.hasPrefix("rediss://") {
            rest = rest.dropFirst("rediss://".count)
            self.tls = TLS()
        } else {
            throw invalid("the scheme must be redis:// or rediss://")
        }
        var query: Substring = ""
        if let q = rest.firstIndex(of: "?") {
            query = rest[rest.index(after: q)...]
            rest = rest[..<q]
        }
        var path: Substring = ""
        if let slash = rest.firstIndex(of: "/") {
            path = rest[rest.index(after: slash)...]
            rest = rest[..<slash]
        }
        if let at = rest.lastIndex(of: "@") {
            let userinfo = rest[..<at]
            rest = rest[rest.index(after: at)...]
            let user: Substring
            let password: Substring?
            if let colon = userinfo.firstIndex(of: ":") {
                user = userinfo[..<colon]
                password = userinfo[userinfo.index(after: colon)...]
            } else {
                user = ""
                password = userinfo
            }
            guard let decodedUser = Self.percentDecode(user), let decodedPassword = password.flatMap(Self.percentDecode) else {
                throw invalid("bad percent-encoding in the credentials")
            }
            // `redis://secret@host` is the common shorthand for a password alone.
            self.authentication = Authentication(username: decodedUser.isEmpty ? nil : decodedUser, password: decodedPassword)
        }
        // Host and port; IPv6 in brackets.
        var portText: Substring? = nil
        if rest.hasPrefix("[") {
            guard let close = rest.firstIndex(of: "]") else { throw invalid("unterminated [IPv6] host") }
            self.host = String(rest[rest.index(after: rest.startIndex)..<close])
            let after = rest[rest.index(after: close)...]
            if after.hasPrefix(":") { portText = after.dropFirst() } else if !after.isEmpty { throw invalid("unexpected text after the host") }
        } else if let colon = rest.lastIndex(of: ":") {
            self.host = String(rest[..<colon])
            portText = rest[rest.index(after: colon)...]
        } else {
            self.host = String(rest)
        }
        guard !self.host.isEmpty else { throw invalid("the host is missing") }
        if let portText {
            guard let port = Int(portText), (1...65535).contains(port) else { throw invalid("the port must be 1–65535") }
            self.port = port
        }
        if !path.isEmpty {
            guard let db = Int(path), db >= 0 else { throw invalid("the database must be a non-negative number") }
            self.database = db
        }
        for item in query.split(separator: "&") where !item.isEmpty {
            let parts = item.split(separator: "=", maxSplits: 1)
            let key = String(parts[0])
            let value = parts.count > 1 ? Self.percentDecode(parts[1]) ?? "" : ""
            switch key {
            case "ca", "cacert", "ca_file":
                guard self.tls != nil else { throw invalid("ca= needs rediss://") }
                self.tls?.caFile = value
            case "verify":
                guard self.tls != nil else { throw invalid("verify= needs rediss://") }
                switch value.lowercased() {
                case "true", "1", "yes": self.tls?.verifyCertificates = true
                case "false", "0", "no": self.tls?.verifyCertificates = false
                default: throw invalid("verify must be true or false")
                }
            case "name":
                self.clientName = value.isEmpty ? nil : value
            case "db":
                guard let db = Int(value), db >= 0 else { throw invalid("db must be a non-negative number") }
                self.database = db
            default:
                throw invalid("unknown option \(key) (known: ca, verify, name, db)")
            }
        }
    }

    /// The URL with the password replaced by `***`, safe for logs and status output.
    public var redactedURL: String {
        var text = self.tls == nil ? "redis://" : "rediss://"
        if let authentication {
            text += (authentication.username ?? "") + ":***@"
        }
        text += self.host.contains(":") ? "[\(self.host)]" : self.host
        text += ":\(self.port)"
        if self.database != 0 { text += "/\(self.database)" }
        return text
    }

    /// Replaces the password of a URL given as text with `***` (for error messages about a URL
    /// that could not be parsed).
    public static func redact(_ url: String) -> String {
        let parts = url.split(separator: "/", maxSplits: 3, omittingEmptySubsequences: false)
        // scheme: "" authority rest
        guard parts.count >= 3, parts[0].hasSuffix(":"), parts[1].isEmpty, let at = parts[2].lastIndex(of: "@") else { return url }
        let authority = parts[2]
        let userinfo = authority[..<at]
        let user = userinfo.split(separator: ":", maxSplits: 1, omittingEmptySubsequences: false).first ?? ""
        let masked = userinfo.contains(":") ? "\(user):***" : "***"
        var result = "\(parts[0])//\(masked)\(authority[at...])"
        if parts.count > 3 { result += "/" + parts[3] }
        return result
    }

    static func percentDecode(_ text: Substring) -> String? {
        var bytes: [UInt8] = []
        var iterator = text.utf8.makeIterator()
        while let byte = iterator.next() {
            if byte == UInt8(ascii: "%") {
                guard let high = iterator.next(), let low = iterator.next(),
                    let value = UInt8(String(decoding: [high, low], as: UTF8.self), radix: 16)
                else { return nil }
                bytes.append(value)
            } else {
                bytes.append(byte)
            }
        }
        return String(decoding: bytes, as: UTF8.self)
    }
}
