import Logging
import Synchronization
import WaveBus
import WaveProtocol

/// Who an agent is.
public struct AgentIdentity: Sendable, Hashable {
    /// Its id (`BE-1`); its consumer name in its role's group.
    public var agentID: String
    /// Its role (`pm`, `cto`, `fe`, `be`, `qa`).
    public var role: String
    /// The project it works for.
    public var project: ProjectName

    /// Creates an identity.
    public init(agentID: String, role: String, project: ProjectName) {
        self.agentID = agentID
        self.role = role
        self.project = project
    }
}

/// What an agent's work on a task came to.
public struct TaskReport: Sendable, Hashable {
    /// The result.
    public enum Outcome: Sendable, Hashable {
        /// The gate passed (`gate.passed` with `result: pass`).
        case pass
        /// The gate failed (`gate.failed`), with why.
        case fail(String)
        /// The agent could not do the work (`agent.error`).
        case error(String, retryable: Bool)
    }

    /// The result.
    public var outcome: Outcome
    /// Evidence and other payload keys (`build_success`, `coverage`, `checklist`, `dev_roles`, …).
    public var details: [String: JSONValue]
    /// What the work cost, USD.
    public var costUSD: Double
    /// Tokens used.
    public var tokens: Int

    /// Creates a report.
    public init(_ outcome: Outcome, details: [String: JSONValue] = [:], costUSD: Double = 0, tokens: Int = 0) {
        self.outcome = outcome
        self.details = details
        self.costUSD = costUSD
        self.tokens = tokens
    }
}

/// What an agent needs to take part: consume its role's tasks (`wave:tasks:{p}:{role}`, group
/// `agents:{role}`, its id as consumer name), publish the result signal of each task with the
/// task's `message_id` as `correlation_id` (`WIRE.md`, Tasks), and only then acknowledge the task.
public final class AgentKit: Sendable {
    /// The bus.
    public let bus: any EventBus
    /// Who the agent is.
    public let identity: AgentIdentity
    /// How long a task stays this agent's without a heartbeat; after that another agent of the
    /// role reclaims it (WIRE.md: default 90 s).
    public let lease: Duration
    /// How often a working agent re-claims its task (`XCLAIM … JUSTID`) and reports
    /// `system.health`. Default: a third of the lease.
    public let heartbeat: Duration
    let logger: Logger
    /// The next `seq` per stream.
    let sequences: Mutex<[String: UInt64]>
    /// Where numbering starts on a stream: the time the kit was made, in microseconds.
    let firstSeq: UInt64

    /// Creates a kit. `seq` numbers go up by one per message on each stream, starting from the
    /// current time in microseconds, so they keep increasing across restarts of the agent and an
    /// orchestrator can tell from a gap how many of them vanished with Redis.
    public init(bus: any EventBus, identity: AgentIdentity, logger: Logger, lease: Duration = .seconds(90), heartbeat: Duration? = nil) {
        self.bus = bus
        self.identity = identity
        self.logger = logger
        self.lease = lease
        self.heartbeat = heartbeat ?? lease / 3
        self.firstSeq = UInt64(max(0, WaveTimestamp.now().microsecondsSinceEpoch))
        self.sequences = Mutex([:])
    }

    /// Publishes a signal from this agent on the project's signal stream (system-only types on
    /// its system stream); returns the entry id.
    @discardableResult
    public func signal(
        _ type: EventType, payload: [String: JSONValue] = [:], storyID: String? = nil, sessionID: String? = nil,
        correlationID: String? = nil, priority: Priority = .normal
    ) async throws -> String {
        var payload = payload
        payload["agent_id"] = .string(self.identity.agentID)
        payload["domain"] = payload["domain"] ?? .string(self.identity.role)
        let stream = type.allowedOnSignalStreams ? Channels.signals(self.identity.project) : Channels.system(self.identity.project)
        let seq = self.sequences.withLock { all -> UInt64 in
            let next = (all[stream] ?? self.firstSeq) + 1
            all[stream] = next
            return next
        }
        let envelope = Envelope(
            eventType: type, payload: payload, source: self.identity.agentID, project: self.identity.project.key, priority: priority,
            sessionID: sessionID, storyID: storyID, correlationID: correlationID, seq: seq
        )
        return try await self.bus.publish(envelope, to: stream)
    }

    /// The consumer options for this agent's task stream.
    public var taskConsumer: ConsumerOptions {
        var options = ConsumerOptions(
            streams: [Channels.tasks(self.identity.project, self.identity.role)],
            group: Channels.agentsGroup(role: self.identity.role), consumer: self.identity.agentID)
        options.entries = .tasks
        options.start = .beginning
        options.batchSize = 1
        // A task idle for the lease (its agent stopped heartbeating) is taken by another agent.
        options.reclaimAfter = self.lease
        options.reclaimInterval = self.lease / 3
        return options
    }

    /// Works on tasks until cancelled: announces `agent.ready`, then for each task `agent.busy`,
    /// the work, the result signal, the acknowledgement, and `agent.ready` again. An error thrown
    /// by `work` is reported as a retryable `agent.error`.
    public func run(_ work: @escaping @Sendable (TaskEntry) async throws -> TaskReport) async throws {
        try await self.signal(.agentReady, payload: ["status": "ready"])
        try await self.bus.withConsumer(self.taskConsumer) { deliveries in
            for await delivery in deliveries {
                guard let task = delivery.task else { continue }
                try await self.perform(task, delivery: delivery, work)
            }
        }
    }

    func perform(_ task: TaskEntry, delivery: Delivery, _ work: @escaping @Sendable (TaskEntry) async throws -> TaskReport) async throws {
        try await self.signal(.agentBusy, payload: ["status": "busy", "task_id": .string(task.taskID)], storyID: task.storyID, sessionID: task.sessionID)
        let report: TaskReport
        do {
            report = try await withThrowingTaskGroup(of: TaskReport?.self) { group in
                group.addTask { try await work(task) }
                group.addTask {
                    await self.keepAlive(task, delivery: delivery)
                    return nil
                }
                defer { group.cancelAll() }
                // The work's report, or nothing if the heartbeat found the task taken by another
                // agent (a missed lease): then this agent abandons it, publishing nothing.
                guard let first = try await group.next(), let report = first else { throw CancellationError() }
                return report
            }
        } catch is CancellationError {
            return
        } catch {
            report = TaskReport(.error("\(error)", retryable: true))
        }
        try await self.publishResult(report, for: task)
        try await self.bus.acknowledge([delivery])
        try await self.signal(.agentReady, payload: ["status": "ready"])
    }

    /// While the work runs: re-claims the task on the heartbeat interval, so that its idle time
    /// stays below the lease, and reports `system.health`. Stops when the task is no longer this
    /// agent's (another took it after a missed lease).
    func keepAlive(_ task: TaskEntry, delivery: Delivery) async {
        while !Task.isCancelled {
            // sleep: interval heartbeat
            do { try await Task.sleep(for: self.heartbeat) } catch { return }
            do {
                guard try await self.bus.renew(delivery) else {
                    self.logger.warning("task taken by another agent after a missed lease", metadata: ["wave.task": "\(task.taskID)"])
                    return
                }
                try await self.signal(
                    .systemHealth, payload: ["type": "heartbeat", "task_id": .string(task.taskID)], storyID: task.storyID, sessionID: task.sessionID)
            } catch {
                self.logger.warning("heartbeat failed", metadata: ["wave.task": "\(task.taskID)", "wave.error": "\(error)"])
            }
        }
    }

    /// Publishes the result signal of a task.
    public func publishResult(_ report: TaskReport, for task: TaskEntry) async throws {
        var payload = report.details
        payload["gate_id"] = .string(task.gate.description)
        payload["task_id"] = .string(task.taskID)
        if report.costUSD > 0 { payload["cost_usd"] = .number(report.costUSD) }
        if report.tokens > 0 { payload["tokens"] = .number(Double(report.tokens)) }
        let type: EventType
        switch report.outcome {
        case .pass:
            type = .gatePassed
            payload["result"] = .string("pass")
        case .fail(let reason):
            type = .gateFailed
            payload["result"] = .string("fail")
            payload["error"] = .string(reason)
        case .error(let message, let retryable):
            type = .agentError
            payload["error"] = .string(message)
            payload["retryable"] = .bool(retryable)
            payload["retry_count"] = .number(0)
        }
        try await self.signal(type, payload: payload, storyID: task.storyID, sessionID: task.sessionID, correlationID: task.messageID)
        self.logger.debug(
            "result published", metadata: ["wave.agent": "\(self.identity.agentID)", "wave.task": "\(task.taskID)", "wave.event": "\(type.rawValue)"])
    }
}
