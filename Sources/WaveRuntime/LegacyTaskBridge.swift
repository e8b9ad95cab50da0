import Logging
import Synchronization
import WaveBus
import WaveEngine
import WaveProtocol
import WaveRedis

/// A result as the reference's Python workers write it at `wave:result:{task_id}` (WIRE.md,
/// legacy task plane), and what it means for Wave.
public struct LegacyTaskResult: Sendable, Hashable {
    /// The reference's task id.
    public var taskID: String
    /// `completed`, `failed`, `timeout`, …
    public var status: String
    /// The worker (`FE-1`).
    public var agentID: String?
    /// The agent's own output.
    public var result: [String: JSONValue]
    /// The error text, if any.
    public var error: String?
    /// The worker's safety score.
    public var safetyScore: Double?
    /// How long the work took.
    public var durationSeconds: Double?

    /// Parses a result's JSON; `nil` when it is not a JSON object with a `task_id` and a `status`.
    public init?(jsonText: String) {
        guard let object = JSONValue(jsonText: jsonText)?.objectValue, let taskID = object["task_id"]?.stringValue,
            let status = object["status"]?.stringValue
        else { return nil }
        self.taskID = taskID
        self.status = status.lowercased()
        self.agentID = object["agent_id"]?.stringValue
        self.result = object["result"]?.objectValue ?? [:]
        self.error = object["error"]?.stringValue
        self.safetyScore = object["safety_score"]?.numberValue
        self.durationSeconds = object["duration_seconds"]?.numberValue
    }

    /// WIRE.md: a pass when `status` is `completed` and the agent's own result does not say
    /// `failed`/`blocked`, `passed: false` or `approved: false` (the reference worker reports
    /// `completed` even when its agent failed). Anything else is a failure.
    public var isPass: Bool {
        guard self.status == "completed" else { return false }
        if let own = self.result["status"]?.stringValue?.lowercased(), own == "failed" || own == "blocked" { return false }
        if self.result["passed"]?.boolValue == false || self.result["approved"]?.boolValue == false { return false }
        return true
    }

    /// The worker's exception path: `failed` with an error and no output. The worker published
    /// `agent.error` for the story itself just before, so the bridge does not count it again.
    public var isWorkerException: Bool {
        self.status == "failed" && self.result.isEmpty && !(self.error ?? "").isEmpty
    }

    /// Why it failed, in a line.
    public var failureReason: String {
        if let error, !error.isEmpty { return error }
        if let own = self.result["status"]?.stringValue, self.status == "completed" { return "the agent reported \(own)" }
        if self.result["passed"]?.boolValue == false { return "the agent reported passed: false" }
        if self.result["approved"]?.boolValue == false { return "the agent reported approved: false" }
        return "legacy task \(self.status)"
    }
}

/// The bridge to the reference's Python workers (`wave run --legacy-bridge`, WIRE.md, legacy task
/// plane): every task Wave dispatches is also written where those workers look (the hash
/// `wave:task:{id}`, the list `wave:tasks:{role}`, the `…:notify` channel), and their results,
/// announced on `wave:results`, come back into Wave as result signals on the project's signal
/// stream, so that the orchestrator applies them like any other (idempotently: the signal's
/// message id is derived from the legacy task id).
///
/// Nothing is polled: a result is read when its notification arrives, and after every
/// (re)subscription the result keys of the tasks still out are read once, so that a notification
/// missed while disconnected is not lost. A task taken back (timeout, stop) is removed from its
/// list if no worker has taken it yet, and its hash says so.
public final class LegacyTaskBridge: Sendable {
    struct State {
        /// Legacy task id → the Wave task it stands for.
        var out: [String: TaskEntry] = [:]
        var written = 0
        var settled = 0
        var ignored = 0
    }

    /// How long the reference's keys live (its 24 h).
    public static let keyLifetime = 86_400

    let client: RedisClient
    let bus: any EventBus
    let tasks: TaskDispatcher
    let roleMap: [String: String]
    let logger: Logger
    let state = Mutex(State())

    /// Creates a bridge over a Redis client (the reference's keys) and the bus (result signals).
    public init(client: RedisClient, bus: any EventBus, tasks: TaskDispatcher, roleMap: [String: String] = [:], logger: Logger) {
        self.client = client
        self.bus = bus
        self.tasks = tasks
        self.roleMap = roleMap
        self.logger = logger
    }

    /// Tasks written for the workers, results turned into signals, results ignored (late or unknown).
    public var totals: (written: Int, settled: Int, ignored: Int) {
        self.state.withLock { ($0.written, $0.settled, $0.ignored) }
    }

    /// The legacy tasks out now.
    public var outstandingCount: Int { self.state.withLock { $0.out.count } }

    /// The reference's task id for a task: `{domain}-{story_id}-{8 hex}`, the hex being the last
    /// eight of the task's message id (its random part; the first ones of a time-ordered id are
    /// the clock), so that one attempt always has one id and two attempts two.
    public static func legacyID(of entry: TaskEntry) -> String {
        "\(entry.role)-\(entry.storyID)-\(entry.messageID.filter(\.isHexDigit).suffix(8).lowercased())"
    }

    /// The reference's `AgentTask` JSON for a task (hash field `data`).
    public static func taskData(of entry: TaskEntry) -> String {
        var payload = entry.payload
        payload["gate"] = .string(entry.gate.description)
        payload["attempt"] = .number(Double(entry.attempt))
        payload["session_id"] = .string(entry.sessionID)
        payload["project"] = .string(entry.project)
        payload["wave_task_id"] = .string(entry.taskID)
        payload["message_id"] = .string(entry.messageID)
        payload["deadline"] = .string(entry.deadline.description)
        let priority: Double =
            switch entry.priority {
            case .critical: 10
            case .high: 8
            case .normal: 5
            case .low: 2
            }
        let data: JSONValue = .object([
            "task_id": .string(Self.legacyID(of: entry)), "story_id": .string(entry.storyID), "domain": .string(entry.role),
            "action": .string(entry.action), "payload": .object(payload), "priority": .number(priority),
            "created_at": .string(Self.naive(entry.timestamp)),
            "timeout_seconds": .number(Double(max(1, entry.deadline.duration(since: entry.timestamp).components.seconds))),
            "thread_id": .string(""),
        ])
        return data.jsonText
    }

    /// The reference's naive timestamps (Wave reads naive as UTC, so it writes UTC without `Z`).
    static func naive(_ timestamp: WaveTimestamp) -> String {
        let text = timestamp.description
        return text.hasSuffix("Z") ? String(text.dropLast()) : text
    }

    // MARK: Tasks out

    /// Writes tasks where the reference's workers take them: per task the hash (`data`, `status`
    /// pending, `queue`, `enqueued_at`) with its 24 h expiry, the id pushed on the role's list and
    /// the `task_enqueued` notification, all in one pipelined write.
    public func publish(_ entries: [TaskEntry]) async {
        guard !entries.isEmpty else { return }
        var commands: [any RedisCommand] = []
        commands.reserveCapacity(entries.count * 4)
        var ids: [(String, TaskEntry)] = []
        for entry in entries {
            let id = Self.legacyID(of: entry)
            let list = Channels.Legacy.taskList(domain: entry.role)
            let hash = Channels.Legacy.taskHash(id)
            commands.append(
                HSetCommand(
                    hash,
                    fields: [
                        ("data", Self.taskData(of: entry)), ("status", "pending"), ("queue", list), ("enqueued_at", Self.naive(.now())),
                    ]))
            commands.append(ExpireCommand(hash, seconds: Self.keyLifetime))
            commands.append(LPushCommand(list, elements: [id]))
            let notice: JSONValue = ["event": "task_enqueued", "task_id": .string(id), "story_id": .string(entry.storyID), "action": .string(entry.action)]
            commands.append(PublishCommand(channel: "\(list):notify", message: notice.jsonText))
            ids.append((id, entry))
        }
        // Recorded first: a worker may answer before the pipeline's replies are read.
        self.state.withLock { state in for (id, entry) in ids { state.out[id] = entry } }
        do {
            let replies = try await self.client.pipeline(commands)
            if let failure = replies.first(where: { $0.errorMessage != nil }) {
                self.logger.error("legacy tasks partly written", metadata: ["wave.error": "\(failure.errorMessage ?? "")"])
            }
            self.state.withLock { $0.written += entries.count }
            for (id, entry) in ids {
                self.logger.info("legacy task written", metadata: ["wave.task_id": "\(id)", "wave.story": "\(entry.storyID)", "wave.role": "\(entry.role)"])
            }
        } catch {
            // The task is still out on its stream and has its deadline: a timeout retries it.
            self.state.withLock { state in for (id, _) in ids { state.out[id] = nil } }
            self.logger.error("legacy tasks not written", metadata: ["wave.count": "\(entries.count)", "wave.error": "\(error)"])
        }
    }

    /// Takes tasks back (timeout, stop): removed from their list if no worker took them yet, the
    /// hash marked (`timeout` or `cancelled`), their results ignored from now on.
    public func withdraw(_ entries: [TaskEntry], reason: String) async {
        let mine = self.state.withLock { state in
            entries.compactMap { entry -> (String, TaskEntry)? in
                let id = Self.legacyID(of: entry)
                return state.out.removeValue(forKey: id).map { (id, $0) }
            }
        }
        guard !mine.isEmpty else { return }
        let status = reason == "timeout" ? "timeout" : "cancelled"
        var commands: [any RedisCommand] = []
        for (id, entry) in mine {
            commands.append(LRemCommand(Channels.Legacy.taskList(domain: entry.role), count: 0, element: id))
            commands.append(HSetCommand(Channels.Legacy.taskHash(id), fields: [("status", status), ("cancel_reason", reason)]))
        }
        do {
            _ = try await self.client.pipeline(commands)
        } catch {
            self.logger.warning("legacy tasks not withdrawn (their results will be ignored)", metadata: ["wave.error": "\(error)"])
        }
    }

    // MARK: Results

    /// Listens on `wave:results`. After every (re)subscription the result keys of the tasks
    /// still out are read once. Throws when the subscription fails; the orchestrator runs it
    /// under supervision, which subscribes again after a backoff.
    public func run() async throws {
        try await self.client.withSubscription(channels: [Channels.Legacy.resultsChannel]) { events in
            for await event in events {
                switch event {
                case .subscribed:
                    await self.reread()
                case .message(_, let payload, _):
                    await self.notified(payload)
                }
            }
        }
    }

    /// Reads the result keys of every task out (one `MGET`) and settles those that have one.
    public func reread() async {
        let ids = self.state.withLock { Array($0.out.keys) }
        guard !ids.isEmpty else { return }
        do {
            let values = try await self.client.send(MGetCommand(keys: ids.map(Channels.Legacy.result)))
            var found = 0
            for (id, value) in zip(ids, values) {
                guard let value else { continue }
                found += 1
                await self.settle(id, resultJSON: value)
            }
            self.logger.info("legacy results re-read after subscribing", metadata: ["wave.out": "\(ids.count)", "wave.found": "\(found)"])
        } catch {
            self.logger.warning("legacy results not re-read", metadata: ["wave.error": "\(error)"])
        }
    }

    /// One `wave:results` notification: `{event: task_completed, task_id, status, domain, agent_id}`.
    func notified(_ payload: String) async {
        guard let object = JSONValue(jsonText: payload)?.objectValue, let id = object["task_id"]?.stringValue else {
            self.logger.warning("unreadable message on \(Channels.Legacy.resultsChannel)", metadata: ["wave.payload": "\(payload.prefix(200))"])
            return
        }
        guard self.state.withLock({ $0.out[id] != nil }) else { return }  // not ours, or settled already
        do {
            guard let value = try await self.client.send(GetCommand(Channels.Legacy.result(id))) else {
                self.logger.warning("legacy result announced but missing", metadata: ["wave.task_id": "\(id)"])
                return
            }
            await self.settle(id, resultJSON: value)
        } catch {
            // Still out: the next re-subscription re-reads it, and its deadline stands.
            self.logger.warning("legacy result not read", metadata: ["wave.task_id": "\(id)", "wave.error": "\(error)"])
        }
    }

    /// Turns a worker's result into Wave's result signal, once.
    func settle(_ id: String, resultJSON: String) async {
        guard let entry = self.state.withLock({ $0.out.removeValue(forKey: id) }) else { return }
        guard let result = LegacyTaskResult(jsonText: resultJSON) else {
            self.state.withLock { $0.ignored += 1 }
            self.logger.error(
                "unreadable legacy result; the task's deadline will retry it", metadata: ["wave.task_id": "\(id)", "wave.result": "\(resultJSON.prefix(200))"])
            return
        }
        guard self.tasks.isOut(entry) else {
            self.state.withLock { $0.ignored += 1 }
            self.logger.info("late legacy result ignored: its task was answered or taken back", metadata: ["wave.task_id": "\(id)"])
            return
        }
        if result.isWorkerException {
            // The worker published `agent.error` with the story id just before: that signal is the
            // failure. If it never reaches Wave, the task's deadline counts one.
            self.logger.info(
                "legacy task failed in its worker; its agent.error carries the failure",
                metadata: ["wave.task_id": "\(id)", "wave.error": "\(result.error ?? "")"])
            return
        }
        let envelope = Self.signal(for: result, task: entry, roleMap: self.roleMap)
        do {
            let project = try ProjectName(entry.project)
            _ = try await self.bus.publish(envelope, to: Channels.signals(project))
            self.state.withLock { $0.settled += 1 }
            self.logger.info(
                "legacy result → \(envelope.eventType.rawValue)",
                metadata: [
                    "wave.task_id": "\(id)", "wave.story": "\(entry.storyID)", "wave.gate": "\(entry.gate)", "wave.status": "\(result.status)",
                ])
        } catch {
            // Still out in Wave: a re-read after the next subscription, or the deadline, covers it.
            self.state.withLock { $0.out[id] = entry }
            self.logger.error("legacy result not published", metadata: ["wave.task_id": "\(id)", "wave.error": "\(error)"])
        }
    }

    /// Keys of the agent's output that the engine reads, copied into the result signal's payload.
    static let forwardedKeys = [
        "checklist", "build_success", "tests_passing", "coverage", "dev_roles", "roles", "assignment", "ac_passed", "ac_total", "feedback", "approved",
    ]

    /// The result signal for a worker's result: `gate.passed` (result `pass`) or `gate.failed`
    /// (result `fail`, with the reason), for the task's story and gate, correlated with the task,
    /// from the worker when its id names the task's role (else from `{role}-legacy`). Its message
    /// id is derived from the legacy task id, so that the same result applied twice changes nothing.
    public static func signal(for result: LegacyTaskResult, task: TaskEntry, roleMap: [String: String] = [:]) -> Envelope {
        let pass = result.isPass
        var payload: [String: JSONValue] = [
            "gate_id": .string(task.gate.description), "result": .string(pass ? "pass" : "fail"),
            "legacy_task_id": .string(result.taskID), "legacy_status": .string(result.status), "output": .object(result.result),
        ]
        if !pass { payload["reason"] = .string(result.failureReason) }
        if let agentID = result.agentID { payload["agent_id"] = .string(agentID) }
        if let score = result.safetyScore { payload["safety_score"] = .number(score) }
        if let duration = result.durationSeconds { payload["duration_seconds"] = .number(duration) }
        // The agent's evidence and plan, where the engine reads them (the validators of gates 1–3,
        // the PM's choice of dev roles, acceptance criteria).
        for key in Self.forwardedKeys where result.result[key] != nil { payload[key] = result.result[key] }
        let agent = result.agentID.flatMap { AgentRole.of(agentID: $0, roleMap: roleMap) == task.role ? $0 : nil } ?? "\(task.role)-legacy"
        return Envelope(
            eventType: pass ? .gatePassed : .gateFailed, payload: payload, source: agent, project: task.project, priority: task.priority,
            messageID: "legacy-result-\(result.taskID)", sessionID: task.sessionID, storyID: task.storyID, correlationID: task.messageID
        )
    }
}
