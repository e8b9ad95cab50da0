import Foundation

/// Runs the built `wave` binary (`.build/debug/wave`, which `swift build --build-tests` builds)
/// the way a user would, for CLI tests.
public enum WaveBinary {
    /// The outcome of one run.
    public struct Output: Sendable {
        /// The exit status.
        public var status: Int32
        /// Everything written to stdout.
        public var stdout: String
        /// Everything written to stderr.
        public var stderr: String
    }

    /// Runs `wave` with `arguments`; Redis and store variables of the test environment
    /// (`WAVE_REDIS_URL`, `REDIS_URL`, `WAVE_STORE`, `DATABASE_URL`, `POSTGRES_*`) are removed
    /// unless `environment` sets them. The wait for the child happens on a thread of its own, never on
    /// Swift's cooperative pool (two threads here), so that concurrent tests keep running.
    /// - Parameter directory: the working directory (default: the current one).
    public static func run(
        _ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil, filePath: String = #filePath
    ) async throws -> Output {
        try await start(arguments, environment: environment, in: directory, filePath: filePath).wait()
    }

    /// Starts `wave` in the background (`wave run`); stop it with ``Running/terminate()`` and
    /// collect its output with ``Running/wait()``.
    public static func start(
        _ arguments: [String], environment: [String: String] = [:], in directory: URL? = nil, filePath: String = #filePath
    ) throws -> Running {
        var root = URL(fileURLWithPath: filePath)
        while root.pathComponents.count > 1, !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) {
            root.deleteLastPathComponent()
        }
        let binary = root.appendingPathComponent(".build/debug/wave")
        guard FileManager.default.isExecutableFile(atPath: binary.path) else {
            throw TestEnvironmentError(message: "\(binary.path) is not built (swift build --build-tests builds it)")
        }
        let process = Process()
        process.executableURL = binary
        process.arguments = arguments
        if let directory { process.currentDirectoryURL = directory }
        var env = ProcessInfo.processInfo.environment
        env["WAVE_REDIS_URL"] = nil
        env["REDIS_URL"] = nil
        env["WAVE_STORE"] = nil
        // The reference's database variables name a store too (precedence: after WAVE_STORE).
        for name in ["DATABASE_URL", "POSTGRES_HOST", "POSTGRES_PORT", "POSTGRES_DB", "POSTGRES_USER", "POSTGRES_PASSWORD"] { env[name] = nil }
        for (key, value) in environment { env[key] = value }
        process.environment = env
        let out = Pipe()
        let err = Pipe()
        process.standardOutput = out
        process.standardError = err
        try process.run()
        return Running(process: process, out: out, err: err)
    }

    /// A `wave` process running in the background. Its stdout and stderr are read from the
    /// start, each by a thread of its own, so that a child that logs a lot never blocks on a full
    /// pipe.
    public final class Running: @unchecked Sendable {
        let process: Process
        let stdout = LockedData()
        let stderr = LockedData()
        let drained = DispatchGroup()

        init(process: Process, out: Pipe, err: Pipe) {
            self.process = process
            for (pipe, sink) in [(out, self.stdout), (err, self.stderr)] {
                self.drained.enter()
                Thread { [drained] in
                    sink.set(pipe.fileHandleForReading.readDataToEndOfFile())
                    drained.leave()
                }.start()
            }
        }

        /// Its process id.
        public var pid: Int32 { self.process.processIdentifier }

        /// Sends SIGTERM (a graceful stop).
        public func terminate() { self.process.terminate() }

        /// Waits for it to exit and returns what it wrote; after `limit` it is killed (a hung
        /// command fails its test instead of hanging the suite). The blocking wait runs on a
        /// thread of its own.
        public func wait(limit: Duration = .seconds(180)) async -> Output {
            await withCheckedContinuation { continuation in
                Thread { continuation.resume(returning: self.blockingWait(limit: limit)) }.start()
            }
        }

        func blockingWait(limit: Duration) -> Output {
            let process = self.process
            let pid = process.processIdentifier
            let killer = DispatchWorkItem { if process.isRunning { kill(pid, SIGKILL) } }
            DispatchQueue.global().asyncAfter(deadline: .now() + .milliseconds(Int(limit.components.seconds * 1000)), execute: killer)
            defer { killer.cancel() }
            process.waitUntilExit()
            self.drained.wait()
            return Output(
                status: process.terminationStatus, stdout: String(decoding: self.stdout.value, as: UTF8.self),
                stderr: String(decoding: self.stderr.value, as: UTF8.self))
        }
    }
}

final class LockedData: @unchecked Sendable {
    private let lock = NSLock()
    private var data: Data?
    func set(_ data: Data) { self.lock.withLock { self.data = data } }
    var value: Data { self.lock.withLock { self.data ?? Data() } }
}
