import ArgumentParser
import Foundation
import Logging
import NIOPosix
import Synchronization
import WaveAgentKit
import WaveBench
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore

/// `wave demo`: a whole wave on the embedded bus (or Redis) with simulated agents, live progress
/// and a summary.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a whole wave with simulated agents: no server needed.",
        discussion: """
            Creates a session from bundled example stories (the reference's story JSON, some with dependencies) in a \
            fresh temporary store (unless --store is given), runs the orchestrator and simulated PM, CTO, FE, BE and QA \
            agents on the embedded bus (or Redis with --redis), and shows each story move through gates 0–7. On the \
            way: an agent error that is retried, a QA failure that loops back to development, a blocked story that \
            is unblocked, a session pause and resume, and an emergency stop and clear. It ends with a summary and the \
            signal latencies.
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Number of stories (1–100).")
    var count = 6

    @Option(help: "Random seed, for a repeatable run (the agents' work times).")
    var seed = 42

    @Option(help: "Milliseconds of simulated work per task.")
    var workMs = 60

    func validate() throws {
        guard (1...100).contains(self.count) else { throw ValidationError("--count must be between 1 and 100") }
        guard (0...5_000).contains(self.workMs) else { throw ValidationError("--work-ms must be between 0 and 5000") }
    }

    func run() async throws {
        var logger = Logger(label: "wave.demo")
        logger.logLevel = .warning
        let temporary = self.global.store == nil && ProcessInfo.processInfo.environment["WAVE_STORE"] == nil
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-demo-\(UUID().uuidString.prefix(8))")
        let location: StoreLocation
        if temporary {
            try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
            location = StoreLocation(path: directory.appendingPathComponent("demo.sqlite").path)
        } else {
            location = try self.global.storeLocation()
        }
        defer { if temporary { try? FileManager.default.removeItem(at: directory) } }
        var engine = EngineConfiguration.standard
        // Retries come back after a quarter of a second (not the production 1 s base), so the demo
        // shows them without waiting.
        engine.backoffBase = .milliseconds(250)
        engine.backoffCap = .seconds(2)
        let store = try self.global.openStore(at: location, engine: StoryEngine(configuration: engine), logger: logger)

        var client: RedisClient?
        var loopGroup: MultiThreadedEventLoopGroup?
        let bus: any EventBus
        var projectName = "demo"
        if let url = self.global.redisURL {
            let configuration: RedisConfiguration
            do { configuration = try RedisConfiguration(url: url) } catch { throw CLIError.badInput(error.message) }
            let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let redis = try RedisClient(configuration: configuration, eventLoopGroup: group, logger: logger)
            do {
                _ = try await redis.serverInfo()
            } catch {
                await redis.shutdown()
                throw CLIError(
                    exitCode: 3,
                    message:
                        "cannot reach Redis at \(configuration.host):\(configuration.port): \(error) (is redis-server running? or leave out --redis to use the embedded bus)"
                )
            }
            client = redis
            loopGroup = group
            bus = RedisEventBus(client: redis, logger: logger)
            projectName = "demo-\(UUID().uuidString.prefix(6).lowercased())"
        } else {
            bus = InMemoryEventBus()
        }
        let project = try ProjectName(projectName)
        let stories = try DemoStories.make(count: self.count)
        let session = try await storeCall { try await store.createSession(project: project.key, wave: 1, stories: stories, budgetUSD: 25) }

        let display = DemoDisplay(
            store: store, sessionID: session.id, stories: stories.map(\.id), json: self.global.json,
            terminal: isatty(STDOUT_FILENO) == 1 && !self.global.json)
        let driver = DemoDriver(bus: bus, store: store, project: project, sessionID: session.id, display: display)
        var configuration = OrchestratorConfiguration(projects: [project], consumer: "demo")
        configuration.busKind = client == nil ? "embedded" : "redis"
        configuration.blockTime = .milliseconds(500)
        if let loopGroup { configuration.executor = EventLoopTaskExecutor(loopGroup.next()) }
        let orchestrator = Orchestrator(
            bus: bus, store: store, configuration: configuration, logger: logger,
            hooks: EventDispatcher.Hooks(
                entered: { driver.entered($0) },
                settled: { signal, result in driver.settled(signal, result) }
            ))
        var profile = SimulationProfile()
        profile.seed = UInt64(truncatingIfNeeded: self.seed)
        profile.workTime = .milliseconds(self.workMs / 2)...(.milliseconds(self.workMs + self.workMs / 2))
        profile.costPerTask = 0.02
        profile.scripted = DemoStories.script(count: self.count)
        let agents = ["pm", "cto", "fe", "be", "qa"].flatMap { role in
            (1...2).map { index in
                SimulatedAgent(
                    kit: AgentKit(bus: bus, identity: AgentIdentity(agentID: "\(role.uppercased())-\(index)", role: role, project: project), logger: logger),
                    profile: profile)
            }
        }

        display.begin(count: stories.count, bus: configuration.busKind)
        let started = ContinuousClock.now
        do {
            try await withThrowingTaskGroup(of: Void.self) { group in
                group.addTask { try await orchestrator.run() }
                group.addTask { await driver.run() }
                for agent in agents {
                    group.addTask {
                        do { try await agent.run() } catch is CancellationError {}
                    }
                }
                defer { group.cancelAll() }
                try await withThrowingTaskGroup(of: Void.self) { race in
                    race.addTask { await driver.finished() }
                    race.addTask {
                        // sleep: deadline
                        try await Task.sleep(for: .seconds(120))
                        throw CLIError(exitCode: 1, message: "the demo did not finish within 120 s (see the log on stderr)")
                    }
                    defer { race.cancelAll() }
                    try await race.next()
                }
            }
        } catch {
            await client?.shutdown()
            try? await loopGroup?.shutdownGracefully()
            throw error
        }
        let wall = ContinuousClock.now - started
        if let client {
            _ = try? await client.send(
                DelCommand(
                    keys: [Channels.signals(project), Channels.system(project), Channels.deadLetters(project)]
                        + ["pm", "cto", "fe", "be", "qa"].map { Channels.tasks(project, $0) }
                        + (1...2).flatMap { i in ["PM", "CTO", "FE", "BE", "QA"].map { Channels.agent(project, "\($0)-\(i)") } }))
            await client.shutdown()
        }
        try? await loopGroup?.shutdownGracefully()
        try await display.summary(wall: wall, latencies: driver.latencies, storeDescription: temporary ? "a temporary store (deleted)" : location.description)
    }
}

/// The bundled example stories, in the reference's story JSON format.
enum DemoStories {
    static let templates: [(title: String, domain: String, agent: String)] = [
        ("Checkout API", "backend", "BE-1"), ("Login form", "frontend", "FE-1"), ("Order history page", "fullstack", "fullstack"),
        ("Payment webhooks", "backend", "BE-2"), ("Profile settings", "frontend", "FE-2"), ("Search index", "backend", "BE-1"),
    ]

    /// `count` stories: S-3 depends on S-1 and S-5 on S-2 (when they exist).
    static func make(count: Int) throws -> [NewStory] {
        try (1...count).map { n in
            let template = Self.templates[(n - 1) % Self.templates.count]
            var dependencies: [String] = []
            if n % 6 == 3 { dependencies = ["S-\(n - 2)"] }
            if n % 6 == 5 { dependencies = ["S-\(n - 3)"] }
            let text = """
                {"id": "S-\(n)", "title": "\(template.title)\(n > 6 ? " \(n)" : "")", "domain": "\(template.domain)", "priority": "\(n <= 2 ? "P1" : "P2")",
                 "wave": 1, "objective": {"as_a": "customer", "i_want": "\(template.title.lowercased())", "so_that": "I can shop"},
                 "acceptance_criteria": [{"id": "AC-1", "description": "works"}, {"id": "AC-2", "description": "is tested"}],
                 "files": {"create": [], "modify": [], "forbidden": []}, "safety": {"stop_conditions": [], "escalation_triggers": []},
                 "estimated_tokens": 20000, "dependencies": [\(dependencies.map { "\"\($0)\"" }.joined(separator: ", "))], "agent_assignment": "\(template.agent)"}
                """
            guard case .object(let fields)? = JSONValue(jsonText: text) else { throw CLIError(exitCode: 1, message: "a bundled story is not JSON") }
            do { return try NewStory(json: fields) } catch { throw CLIError(exitCode: 1, message: "a bundled story is invalid: \(error)") }
        }
    }

    /// The scripted turns: S-2's first development attempt at gate-1 errors (retried), S-1's first
    /// QA validation fails (back to gate-1).
    static func script(count: Int) -> [String: TaskReport.Outcome] {
        var script: [String: TaskReport.Outcome] = [:]
        if count >= 2 {
            script[SimulationProfile.scriptKey(story: "S-2", gate: try! GateID(1), role: "fe", attempt: 1)] = .error("flaky npm registry", retryable: true)
        }
        script[SimulationProfile.scriptKey(story: "S-1", gate: try! GateID(4), role: "qa", attempt: 1)] = .fail("checkout total is off by one cent")
        return script
    }
}

/// Drives the demo's operator moments from what the orchestrator does (each one once), measures
/// signal latencies, and resumes the waiter when the session is over.
final class DemoDriver: Sendable {
    struct State {
        var applied = 0
        var blocked = false
        var paused = false
        var stopped = false
        var done = false
        var waiter: CheckedContinuation<Void, Never>?
        var latencies = LatencySamples(capacity: 1_000)
    }

    let bus: any EventBus
    let store: any StateStore
    let project: ProjectName
    let sessionID: String
    let display: DemoDisplay
    let state = Mutex(State())
    /// What the dispatcher settled, in order, for ``run()`` (which reads the store for it).
    let settledSignals: AsyncStream<(Signal, DispatchResult)>
    let settledInput: AsyncStream<(Signal, DispatchResult)>.Continuation

    init(bus: any EventBus, store: any StateStore, project: ProjectName, sessionID: String, display: DemoDisplay) {
        self.bus = bus
        self.store = store
        self.project = project
        self.sessionID = sessionID
        self.display = display
        (self.settledSignals, self.settledInput) = AsyncStream.makeStream()
    }

    /// The dispatcher's `settled` hook: hands the signal over, in order (the hook cannot wait
    /// for the store).
    func settled(_ signal: Signal, _ result: DispatchResult) {
        self.settledInput.yield((signal, result))
    }

    /// Shows each settled signal and carries out the operator's moments, in order, until
    /// cancelled.
    func run() async {
        for await (signal, result) in self.settledSignals {
            await self.react(signal, result)
        }
    }

    var latencies: LatencySamples { self.state.withLock { $0.latencies } }

    func entered(_ signal: Signal) {
        guard let published = signal.envelope.timestamp, signal.envelope.source.contains("-"), signal.envelope.source != "demo-operator" else { return }
        let micros = WaveTimestamp.now().microsecondsSinceEpoch - published.microsecondsSinceEpoch
        self.state.withLock { $0.latencies.record(.microseconds(max(0, micros))) }
    }

    func react(_ signal: Signal, _ result: DispatchResult) async {
        await self.display.show(signal, result)
        guard case .applied? = result.outcomes.first?.outcome else { return }
        let (block, pause, stop) = self.state.withLock { state -> (Bool, Bool, Bool) in
            if [.gatePassed, .gateFailed, .agentError].contains(signal.envelope.eventType) { state.applied += 1 }
            let block =
                !state.blocked && signal.envelope.storyIDForRouting == "S-3" && signal.envelope.eventType == .gatePassed
                && (signal.envelope.payload["gate_id"]?.stringValue == "gate-0") && signal.envelope.source.hasPrefix("CTO")
            if block { state.blocked = true }
            let pause = !state.paused && state.applied >= 8
            if pause { state.paused = true }
            let stop = !state.stopped && state.applied >= 20
            if stop { state.stopped = true }
            return (block, pause, stop)
        }
        if block {
            self.later(
                "blocking S-3: \"waiting for API credentials\" (an agent's story.blocked)", then: "unblocking S-3: credentials issued (wave story unblock)"
            ) { first in
                if first {
                    try await self.publish(
                        .storyBlocked, story: "S-3", source: "BE-1", payload: ["reason": "waiting for API credentials", "blocked_by": "ops"], system: false)
                } else {
                    try await self.publish(
                        .storyUnblocked, story: "S-3", source: "demo-operator", payload: ["reason": "credentials issued", "by": "demo-operator"], system: true)
                }
            }
        }
        if pause {
            self.later("pausing the session for a sprint review (session.paused)", then: "resuming the session (wave session resume)") { first in
                try await self.publish(
                    first ? .sessionPaused : .sessionResumed, story: nil, source: first ? "PM-1" : "demo-operator",
                    payload: ["reason": first ? "sprint review" : "review done"], system: !first)
            }
        }
        if stop {
            self.later("EMERGENCY STOP: a suspicious diff (wave stop)", then: "clearing the stop: the diff was fine (wave stop clear)") { first in
                try await self.publish(
                    first ? .systemEmergencyStop : .systemEmergencyCleared, story: nil, source: "demo-operator",
                    payload: ["reason": first ? "a suspicious diff" : "the diff was fine", "by": "demo-operator"], system: true)
            }
        }
        if (try? await self.store.session(id: self.sessionID).status.isTerminal) == true {
            let waiter = self.state.withLock { state -> CheckedContinuation<Void, Never>? in
                state.done = true
                defer { state.waiter = nil }
                return state.waiter
            }
            waiter?.resume()
        }
    }

    /// Does `act(true)` now and `act(false)` 400 ms later (the operator's reaction time: a deadline).
    func later(_ first: String, then second: String, _ act: @escaping @Sendable (Bool) async throws -> Void) {
        Task {
            self.display.note(first)
            try? await act(true)
            // sleep: deadline
            try? await Task.sleep(for: .milliseconds(400))
            self.display.note(second)
            try? await act(false)
        }
    }

    func publish(_ type: EventType, story: String?, source: String, payload: [String: JSONValue], system: Bool) async throws {
        let envelope = Envelope(
            eventType: type, payload: payload, source: source, project: self.project.key,
            priority: type == .systemEmergencyStop ? .critical : .high, sessionID: self.sessionID, storyID: story)
        _ = try await self.bus.publish(envelope, to: system ? Channels.system(self.project) : Channels.signals(self.project))
    }

    /// Returns when the session is over.
    func finished() async {
        await withCheckedContinuation { continuation in
            let done = self.state.withLock { state -> Bool in
                if state.done { return true }
                state.waiter = continuation
                return false
            }
            if done { continuation.resume() }
        }
    }
}

/// What the demo prints: a gate bar per story on a terminal (redrawn on each change), plain lines
/// otherwise, and the summary.
final class DemoDisplay: Sendable {
    struct Row {
        var gate = 0
        var status = "pending"
        var retries = 0
        var note = ""
    }

    struct State {
        var rows: [String: Row] = [:]
        var drawn = 0
        var lastDraw = ContinuousClock.now - .seconds(1)
        var notes: [String] = []
    }

    let store: any StateStore
    let sessionID: String
    let order: [String]
    let json: Bool
    let terminal: Bool
    let state = Mutex(State())

    init(store: any StateStore, sessionID: String, stories: [String], json: Bool, terminal: Bool) {
        self.store = store
        self.sessionID = sessionID
        self.order = stories
        self.json = json
        self.terminal = terminal
        self.state.withLock { state in for id in stories { state.rows[id] = Row() } }
    }

    func write(_ text: String) {
        // With --json, stdout carries only the JSON: progress goes to stderr.
        let handle = self.json ? FileHandle.standardError : FileHandle.standardOutput
        handle.write(Data(text.utf8))
    }

    func begin(count: Int, bus: String) {
        self.write("wave demo: \(count) stories, simulated PM, CTO, FE, BE and QA agents (2 of each), the \(bus) bus\n\n")
    }

    func note(_ text: String) {
        if self.terminal {
            self.state.withLock { $0.notes.append(text) }
            self.redraw(force: true)
        } else {
            self.write("  → \(text)\n")
        }
    }

    func show(_ signal: Signal, _ result: DispatchResult) async {
        // Story changes only (presence signals apply too, but move nothing).
        guard ![.agentBusy, .agentReady, .systemHealth].contains(signal.envelope.eventType),
            let story = signal.envelope.storyIDForRouting, case .applied? = result.outcomes.first?.outcome,
            let record = try? await self.store.story(story, session: self.sessionID)
        else { return }
        let line =
            "\(story) \(signal.envelope.eventType.rawValue) from \(signal.envelope.source) → \(record.state.status.rawValue) at \(record.state.currentGate)"
        self.state.withLock { state in
            state.rows[story] = Row(
                gate: record.state.status == .complete ? 8 : record.state.currentGate.number, status: record.state.status.rawValue,
                retries: record.state.totalRetries, note: "")
        }
        if self.terminal {
            self.redraw(force: record.state.status.isFinished)
        } else {
            self.write("  \(line)\n")
        }
    }

    func redraw(force: Bool) {
        let text = self.state.withLock { state -> String? in
            let now = ContinuousClock.now
            guard force || now - state.lastDraw >= .milliseconds(50) else { return nil }
            state.lastDraw = now
            var lines: [String] = []
            for id in self.order {
                let row = state.rows[id] ?? Row()
                let bar = String(repeating: "■", count: row.gate) + String(repeating: "□", count: 8 - row.gate)
                let retries = row.retries > 0 ? "  retries \(row.retries)" : ""
                lines.append("  \(id.padding(toLength: 6, withPad: " ", startingAt: 0)) [\(bar)] \(row.status)\(retries)")
            }
            lines += state.notes.suffix(6).map { "  → \($0)" }
            let up = state.drawn > 0 ? "\u{1B}[\(state.drawn)A" : ""
            state.drawn = lines.count
            return up + lines.map { "\u{1B}[2K" + $0 }.joined(separator: "\n") + "\n"
        }
        if let text { self.write(text) }
    }

    func summary(wall: Duration, latencies: LatencySamples, storeDescription: String) async throws {
        if self.terminal { self.redraw(force: true) }
        let stories = try await self.store.stories(session: self.sessionID)
        let session = try await self.store.session(id: self.sessionID)
        let escalations = try await self.store.escalations(all: true).filter { $0.sessionID == self.sessionID }
        let complete = stories.filter { $0.state.status == .complete }.count
        let failed = stories.filter { $0.state.status == .failed }.count
        let gates = stories.reduce(0) { $0 + ($1.state.status == .complete ? 8 : $1.state.currentGate.number) }
        let retries = stories.reduce(0) { $0 + $1.state.totalRetries }
        let seconds = Double(wall.components.seconds) + Double(wall.components.attoseconds) / 1e18
        let p50 = latencies.percentileMilliseconds(50), p99 = latencies.percentileMilliseconds(99)
        if self.json {
            struct Summary: Encodable {
                var session_id: String, status: String, stories: Int, complete: Int, failed: Int, gates_passed: Int, retries: Int
                var escalations: Int, wall_seconds: Double, signals: Int, latency_p50_ms: Double, latency_p99_ms: Double, cost_usd: Double
            }
            print(
                try JSONOutput.line(
                    Summary(
                        session_id: session.displayID, status: session.status.rawValue, stories: stories.count, complete: complete, failed: failed,
                        gates_passed: gates, retries: retries, escalations: escalations.count, wall_seconds: (seconds * 1000).rounded() / 1000,
                        signals: latencies.count, latency_p50_ms: (p50 * 1000).rounded() / 1000, latency_p99_ms: (p99 * 1000).rounded() / 1000,
                        cost_usd: session.actualCostUSD
                    )))
            return
        }
        var lines = ["", "session \(session.displayID): \(session.status.rawValue) in \(String(format: "%.1f", seconds)) s (\(storeDescription))", ""]
        lines.append("  story   status      gates  retries  escalations")
        for record in stories {
            let escalated = escalations.filter { $0.storyID == record.state.storyID }.count
            lines.append(
                "  "
                    + [
                        record.state.storyID.padding(toLength: 6, withPad: " ", startingAt: 0),
                        record.state.status.rawValue.padding(toLength: 11, withPad: " ", startingAt: 0),
                        "\(record.state.status == .complete ? 8 : record.state.currentGate.number)/8".padding(toLength: 6, withPad: " ", startingAt: 0),
                        "\(record.state.totalRetries)".padding(toLength: 8, withPad: " ", startingAt: 0), "\(escalated)",
                    ].joined(separator: "  "))
        }
        lines.append(
            "  total   \(complete) complete, \(failed) failed; \(gates) gates passed, \(retries) retries, \(escalations.count) escalations, $\(String(format: "%.2f", session.actualCostUSD))"
        )
        lines.append("")
        lines.append(
            "signal → handler latency over \(latencies.count) agent signals: p50 \(String(format: "%.3f", p50)) ms, p99 \(String(format: "%.3f", p99)) ms, max \(String(format: "%.3f", latencies.maxMilliseconds)) ms"
        )
        lines.append("")
        lines.append("Next: README.md's tour runs the same with Redis (`wave run --redis URL`), your own stories and agents.")
        self.write(lines.joined(separator: "\n") + "\n")
    }
}
