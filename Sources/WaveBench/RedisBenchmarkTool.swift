import Foundation
import WaveRedis

/// Runs `redis-benchmark` against the same server, for the raw limits every Wave figure is
/// compared with (`../shared/spec/QUALITY.md`).
public struct RedisBenchmarkTool: Sendable {
    /// The `redis-benchmark` binary.
    public var executable: String
    /// The server, with credentials and TLS settings.
    public var configuration: RedisConfiguration

    /// Finds `redis-benchmark` on `PATH` (or `WAVE_REDIS_BENCHMARK`).
    /// - Throws: ``BenchmarkError`` when it is not installed.
    public init(configuration: RedisConfiguration) throws {
        let environment = ProcessInfo.processInfo.environment
        if let explicit = environment["WAVE_REDIS_BENCHMARK"], FileManager.default.isExecutableFile(atPath: explicit) {
            self.executable = explicit
        } else if let found = (environment["PATH"] ?? "/usr/bin:/bin").split(separator: ":")
            .map({ "\($0)/redis-benchmark" })
            .first(where: { FileManager.default.isExecutableFile(atPath: $0) })
        {
            self.executable = found
        } else {
            throw BenchmarkError("redis-benchmark is not installed (Debian: apt-get install redis-tools); it measures the raw limit beside Wave's figures")
        }
        self.configuration = configuration
    }

    /// `redis-benchmark -c 1 -n N -t ping_mbulk --csv`: the p50 round trip in milliseconds.
    public func pingP50Milliseconds(requests: Int = 100_000) throws -> Double {
        let rows = try self.run(["-c", "1", "-n", "\(requests)", "-t", "ping_mbulk", "--csv"])
        guard let row = rows.first(where: { $0.first?.uppercased().hasPrefix("PING") == true }), row.count > 4, let p50 = Double(row[4]) else {
            throw BenchmarkError("unexpected redis-benchmark output: \(rows)")
        }
        return p50
    }

    /// `redis-benchmark -c 1 -n N -P 32 XADD wave:bench:raw '*' f v --csv`: requests per second.
    /// The key is deleted afterwards.
    public func pipelinedXAddPerSecond(key: String = "wave:bench:raw", requests: Int = 200_000, pipeline: Int = 32) throws -> Double {
        let rows = try self.run(["-c", "1", "-n", "\(requests)", "-P", "\(pipeline)", "--csv", "XADD", key, "*", "f", "v"])
        guard let row = rows.first(where: { $0.first?.uppercased().hasPrefix("XADD") == true }), row.count > 1, let rps = Double(row[1]) else {
            throw BenchmarkError("unexpected redis-benchmark output: \(rows)")
        }
        return rps
    }

    private func run(_ arguments: [String]) throws -> [[String]] {
        var all = ["-h", self.configuration.host, "-p", "\(self.configuration.port)"]
        if self.configuration.database != 0 { all += ["--dbnum", "\(self.configuration.database)"] }
        if let auth = self.configuration.authentication {
            if let user = auth.username { all += ["--user", user] }
            all += ["-a", auth.password]
        }
        if let tls = self.configuration.tls {
            all.append("--tls")
            if let ca = tls.caFile { all += ["--cacert", ca] }
            if !tls.verifyCertificates { all.append("--insecure") }
        }
        let process = Process()
        process.executableURL = URL(fileURLWithPath: self.executable)
        process.arguments = all + arguments
        var environment = ProcessInfo.processInfo.environment
        environment["REDISCLI_AUTH"] = nil
        process.environment = environment
        let output = Pipe()
        process.standardOutput = output
        process.standardError = Pipe()
        try process.run()
        let data = output.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            throw BenchmarkError("redis-benchmark exited with status \(process.terminationStatus)")
        }
        return String(decoding: data, as: UTF8.self)
            .split(whereSeparator: \.isNewline)
            .map { line in line.split(separator: ",").map { $0.trimmingCharacters(in: CharacterSet(charactersIn: "\"")) } }
    }
}

/// A benchmark could not run.
public struct BenchmarkError: Error, CustomStringConvertible {
    /// What went wrong.
    public var description: String
    /// Creates an error.
    public init(_ description: String) { self.description = description }
}
