import RESP

/// Optional server features that Wave can use when present (Redis 8), detected on first use.
public struct RedisFeatures: Sendable, Hashable, Codable {
    /// `XADD … IDMP` / `IDMPAUTO`: idempotent production (Redis ≥ 8.6).
    public var xaddIdempotency: Bool = false
    /// `XREADGROUP … CLAIM`: claiming idle pending entries while reading (Redis ≥ 8.4).
    public var xreadgroupClaim: Bool = false
    /// `XACKDEL`: acknowledge and delete in one command (Redis ≥ 8.2).
    public var xackdel: Bool = false

    /// Creates a set of features, all absent by default.
    public init(xaddIdempotency: Bool = false, xreadgroupClaim: Bool = false, xackdel: Bool = false) {
        self.xaddIdempotency = xaddIdempotency
        self.xreadgroupClaim = xreadgroupClaim
        self.xackdel = xackdel
    }

    /// The names of the features present, for status output.
    public var names: [String] {
        var names: [String] = []
        if self.xaddIdempotency { names.append("xadd_idmp") }
        if self.xreadgroupClaim { names.append("xreadgroup_claim") }
        if self.xackdel { names.append("xackdel") }
        return names
    }
}

/// What the client learned about the server.
public struct RedisServerInfo: Sendable, Hashable {
    /// The server's version, such as `7.0.15`.
    public var version: String
    /// The protocol in use (2 or 3).
    public var protocolVersion: Int
    /// Optional features found.
    public var features: RedisFeatures
}

extension RedisConnection {
    /// Asks the server which optional stream features it has: `COMMAND INFO XACKDEL` for the
    /// command, and the argument lists of `COMMAND DOCS XADD` and `COMMAND DOCS XREADGROUP` for
    /// the `IDMP` and `CLAIM` options. A server that lacks `COMMAND DOCS` (before 7.0) has none.
    public func detectFeatures() async throws -> RedisServerInfo {
        var features = RedisFeatures()
        let info = try await self.sendRaw(RawCommand("COMMAND", "INFO", "XACKDEL"))
        if let entries = try? info.elements(), let first = entries.first, !first.isNull {
            features.xackdel = true
        }
        let docs = try await self.sendRaw(RawCommand("COMMAND", "DOCS", "XADD", "XREADGROUP"))
        if !docs.isError, let pairs = try? docs.pairs() {
            for (name, doc) in pairs {
                let text = doc.description.uppercased()
                switch name.stringValue?.lowercased() {
                case "xadd": features.xaddIdempotency = text.contains("\"IDMP\"") || text.contains("\"IDMPAUTO\"")
                case "xreadgroup": features.xreadgroupClaim = text.contains("\"CLAIM\"")
                default: break
                }
            }
        }
        let hello = self.hello
        return RedisServerInfo(version: hello.serverVersion, protocolVersion: hello.protocolVersion, features: features)
    }

    /// Runs commands inside `MULTI`/`EXEC`, written in one go, and returns each command's reply
    /// (error replies included, as tokens).
    /// - Throws: ``RedisClientError`` with code `transactionAborted` when `EXEC` returns null (a
    ///   watched key changed) and `server` when the server discarded the transaction
    ///   (`EXECABORT`, for example after a syntax error in one command).
    public func transaction(_ commands: [any RedisCommand]) async throws -> [RESPToken] {
        var all: [any RedisCommand] = [RawCommand("MULTI")]
        all.append(contentsOf: commands)
        all.append(RawCommand("EXEC"))
        let replies = try await self.pipeline(all)
        let exec = try replies[replies.count - 1].throwingServerError()
        if exec.isNull {
            throw RedisClientError(.transactionAborted, "the transaction was aborted: a watched key changed")
        }
        do {
            return try exec.elements()
        } catch {
            throw RedisClientError(.unexpectedResponse, "EXEC: \(error)", underlying: error)
        }
    }
}
