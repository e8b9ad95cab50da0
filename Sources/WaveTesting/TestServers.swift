import Foundation
import Logging
import WaveRedis

#if canImport(Glibc)
    import Glibc
#endif

/// The servers that `scripts/test` starts, by environment variable, and helpers for tests that
/// talk to them.
public enum TestServers {
    public static let environment = ProcessInfo.processInfo.environment
    public static var isCI: Bool { environment["CI"] == "true" }

    public static var plain: String? { environment["WAVE_TEST_REDIS_URL"] }
    public static var auth: String? { environment["WAVE_TEST_REDIS_AUTH_URL"] }
    public static var acl: String? { environment["WAVE_TEST_REDIS_ACL_URL"] }
    public static var tls: String? { environment["WAVE_TEST_REDIS_TLS_URL"] }
    public static var tlsCA: String? { environment["WAVE_TEST_REDIS_TLS_CA"] }
    public static var serverBinary: String? { environment["WAVE_TEST_REDIS_SERVER"] }
    public static var benchmarkBinary: String? { environment["WAVE_TEST_REDIS_BENCHMARK"] }
    /// The private PostgreSQL's database URL (`postgres://…`); tests create databases beside it.
    public static var postgres: String? { environment["WAVE_TEST_POSTGRES_URL"] }
    /// The CA that signed the test PostgreSQL's certificate.
    public static var postgresTLSCA: String? { environment["WAVE_TEST_POSTGRES_TLS_CA"] }
    /// The psql binary.
    public static var psql: String? { environment["WAVE_TEST_PSQL"] }

    /// Run a real-server test when its server is there, or under CI (where a missing variable
    /// makes the test fail instead of skipping).
    public static func available(_ variable: String?) -> Bool { variable != nil || isCI }

    /// The URL, or a recorded failure (under CI the trait let the test run without it).
    public static func require(_ variable: String?, _ name: String) throws -> String {
        guard let variable else {
            throw TestEnvironmentError(message: "\(name) is not set: run the tests with ./scripts/test")
        }
        return variable
    }

    public static let logger: Logger = {
        var logger = Logger(label: "wave-test")
        logger.logLevel = .critical
        return logger
    }()

    public static func client(_ url: String, _ adjust: (inout RedisConfiguration) -> Void = { _ in }) throws -> RedisClient {
        var configuration = try RedisConfiguration(url: url)
        adjust(&configuration)
        return try RedisClient(configuration: configuration, logger: logger)
    }

    /// A key no other test uses.
    public static func key(_ name: String = #function) -> String {
        "wave:test:\(name.prefix(while: { $0 != "(" })):\(UUID().uuidString.prefix(8))"
    }
}

/// The environment a test needs is missing or broken.
public struct TestEnvironmentError: Error, CustomStringConvertible {
    /// What is missing.
    public let message: String
    /// Creates an error.
    public init(message: String) { self.message = message }
    public var description: String { self.message }
}

/// A redis-server of a test's own, on a free port, that the test may kill and restart.
public final class RedisServerProcess: @unchecked Sendable {
    /// The port it listens on (kept across restarts).
    public let port: Int
    let directory: URL
    let arguments: [String]
    private var pid: pid_t?

    /// Picks a free port; nothing starts until ``start()``.
    public init(arguments: [String] = []) throws {
        self.port = try Self.freePort()
        self.directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-redis-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: self.directory, withIntermediateDirectories: true)
        self.arguments = arguments
    }

    /// `redis://127.0.0.1:PORT`.
    public var url: String { "redis://127.0.0.1:\(self.port)" }

    /// Starts the server and waits until it accepts connections.
    public func start() async throws {
        let binary = try TestServers.require(TestServers.serverBinary, "WAVE_TEST_REDIS_SERVER")
        let arguments =
            [
                binary, "--port", "\(self.port)", "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
                "--dir", self.directory.path, "--logfile", self.directory.appendingPathComponent("redis.log").path,
            ] + self.arguments
        self.pid = try Self.spawn(arguments)
        // Connect, and after a refused connection back off (10 ms doubling to 200 ms) and try
        // again, until a 5 s deadline: the reconnect backoff a client uses, not a state poll.
        let backoff = Backoff(base: .milliseconds(10), cap: .milliseconds(200))
        let deadline = ContinuousClock.now + .seconds(5)
        var attempt = 0
        while !Self.accepts(port: self.port) {
            if let pid = self.pid {
                var status: Int32 = 0
                if waitpid(pid, &status, WNOHANG) == pid {
                    self.pid = nil
                    let log = (try? String(contentsOf: self.directory.appendingPathComponent("redis.log"), encoding: .utf8)) ?? ""
                    throw TestEnvironmentError(message: "redis-server on port \(self.port) exited at start: \(log.suffix(500))")
                }
            }
            guard ContinuousClock.now < deadline else {
                throw TestEnvironmentError(message: "redis-server on port \(self.port) did not start within 5 s")
            }
            // sleep: backoff
            try await Task.sleep(for: backoff.ceiling(attempt: attempt))
            attempt += 1
        }
    }

    /// SIGKILL: the server dies at once, without closing connections politely.
    public func kill() { self.signal(SIGKILL) }

    /// SIGTERM, then wait for the exit.
    public func stop() { self.signal(SIGTERM) }

    private func signal(_ signal: Int32) {
        guard let pid else { return }
        Glibc.kill(pid, signal)
        var status: Int32 = 0
        _ = waitpid(pid, &status, 0)
        self.pid = nil
    }

    /// Starts a process with /dev/null as its standard streams, so that it never holds the test
    /// runner's output open.
    static func spawn(_ arguments: [String]) throws -> pid_t {
        var actions = posix_spawn_file_actions_t()
        posix_spawn_file_actions_init(&actions)
        defer { posix_spawn_file_actions_destroy(&actions) }
        for fd: Int32 in [0, 1, 2] {
            posix_spawn_file_actions_addopen(&actions, fd, "/dev/null", fd == 0 ? O_RDONLY : O_WRONLY, 0)
        }
        // Worker threads block some signals; the child must start with none blocked, or it
        // would never see SIGTERM.
        var attributes = posix_spawnattr_t()
        posix_spawnattr_init(&attributes)
        defer { posix_spawnattr_destroy(&attributes) }
        var empty = sigset_t()
        sigemptyset(&empty)
        posix_spawnattr_setsigmask(&attributes, &empty)
        var defaults = sigset_t()
        sigemptyset(&defaults)
        for signal in [SIGTERM, SIGINT, SIGPIPE, SIGCHLD] { sigaddset(&defaults, signal) }
        posix_spawnattr_setsigdefault(&attributes, &defaults)
        posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
        var argv: [UnsafeMutablePointer<CChar>?] = arguments.map { strdup($0) } + [nil]
        defer { for pointer in argv { free(pointer) } }
        var pid: pid_t = 0
        let result = posix_spawn(&pid, arguments[0], &actions, &attributes, &argv, environ)
        guard result == 0 else { throw TestEnvironmentError(message: "cannot start \(arguments[0]): error \(result)") }
        return pid
    }

    deinit {
        self.stop()
        try? FileManager.default.removeItem(at: self.directory)
    }

    /// A port below the kernel's ephemeral range (32768 and up on Linux), free now: a port from
    /// that range may be taken meanwhile as the local end of some client's connection, and the
    /// server would then fail to bind it.
    public static func freePort() throws -> Int {
        for _ in 0..<64 {
            let candidate = Int.random(in: 20_000..<32_000)
            if Self.canBind(port: candidate) { return candidate }
        }
        return try Self.anyFreePort()
    }

    /// 127.0.0.1:`port`.
    static func loopback(port: Int) -> sockaddr_in {
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        address.sin_port = UInt16(port).bigEndian
        return address
    }

    static func canBind(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = Self.loopback(port: port)
        let length = socklen_t(MemoryLayout<sockaddr_in>.size)
        return withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        } == 0
    }

    static func anyFreePort() throws -> Int {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = Self.loopback(port: 0)
        var length = socklen_t(MemoryLayout<sockaddr_in>.size)
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, length) }
        }
        guard bound == 0 else { throw TestEnvironmentError(message: "cannot bind a free port") }
        _ = withUnsafeMutablePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(fd, $0, &length) }
        }
        return Int(UInt16(bigEndian: address.sin_port))
    }

    public static func accepts(port: Int) -> Bool {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        defer { close(fd) }
        var address = Self.loopback(port: port)
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        return result == 0
    }
}
