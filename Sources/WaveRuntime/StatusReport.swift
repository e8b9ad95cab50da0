import WaveBus
import WaveProtocol
import WaveStore

/// What `wave status` shows (`SYSTEM.md`, its `--json` shape): read from the store, where every
/// orchestrator records its state, and from the bus (`XINFO`, `XLEN`).
public struct StatusReport: Sendable, Codable, Hashable {
    /// One consumer group.
    public struct Group: Sendable, Codable, Hashable {
        /// The stream.
        public var stream: String
        /// The group.
        public var group: String
        /// Consumers in the group.
        public var consumers: Int
        /// Entries delivered and not acknowledged.
        public var pending: Int
        /// Entries not yet delivered (`null` when Redis does not know).
        public var lag: Int?
        /// Entries the group has read (`null` when unknown).
        public var entries_read: Int?

        enum CodingKeys: String, CodingKey { case stream, group, consumers, pending, lag, entries_read }

        /// Every key, `null` where Redis does not know (SYSTEM.md lists them all as required).
        public func encode(to encoder: any Encoder) throws {
            var container = encoder.container(keyedBy: CodingKeys.self)
            try container.encode(self.stream, forKey: .stream)
            try container.encode(self.group, forKey: .group)
            try container.encode(self.consumers, forKey: .consumers)
            try container.encode(self.pending, forKey: .pending)
            try container.encode(self.lag, forKey: .lag)
            try container.encode(self.entries_read, forKey: .entries_read)
        }
    }

    /// One active emergency stop.
    public struct Stop: Sendable, Codable, Hashable {
        /// `global` or a project key.
        public var scope: String
        /// Why.
        public var reason: String
        /// Who.
        public var by: String
        /// Since when (ISO-8601).
        public var since: String
        /// `wave` or `legacy`.
        public var source: String
    }

    /// One orchestrator instance.
    public struct Instance: Sendable, Codable, Hashable {
        /// Its consumer name.
        public var consumer: String
        /// `closed`, `open` or `half_open`.
        public var circuit: String
        /// Its last recorded state (ISO-8601).
        public var last_seen: String
        /// `redis` or `embedded`.
        public var bus: String
        /// The projects it serves.
        public var projects: [String]
        /// Whether it has not stopped cleanly.
        public var running: Bool
        /// Entries it handled.
        public var handled: Int
        /// Entries it dead-lettered.
        public var dead_lettered: Int
        /// Tasks it has out.
        public var tasks_outstanding: Int
        /// Entries waiting in the store's outbox for Redis to come back.
        public var outbox: Int
        /// Serving by lease: whether it holds its presence lease (false once its TTL lapsed: dead
        /// or paused, its projects go to the others). `nil`: it serves without leases.
        public var alive: Bool?
    }

    /// `redis` or `embedded`.
    public var bus: String
    /// This process's view of the Redis circuit (`closed` when reachable).
    public var circuit: String
    /// Every group on the projects' streams.
    public var groups: [Group]
    /// Dead letters per project.
    public var dlq: [String: Int]
    /// Active stops.
    public var stops: [Stop]
    /// Sessions per status.
    public var sessions: [String: Int]
    /// Signals of a declared type that had no handler.
    public var unhandled_events: Int
    /// Entries trimmed by other publishers before a group read them (as orchestrators counted).
    public var trimmed_unread: Int
    /// Entries that vanished with Redis (restarted without its data) before they were read, as
    /// orchestrators counted them from their senders' `seq` gaps.
    public var vanished_with_redis: Int
    /// Orchestrator instances, most recently seen first.
    public var orchestrators: [Instance]
    /// Project leases (SCALE.md): who serves each project, under which epoch, until when.
    public var leases: [Lease] = []

    /// A project's lease.
    public struct Lease: Sendable, Codable, Hashable {
        /// The project.
        public var project: String
        /// The instance serving it; empty when released.
        public var owner: String
        /// Its epoch (fencing token).
        public var epoch: Int64
        /// When it lapses unless renewed.
        public var expires_at: String
    }

    /// Gathers the report. Without a bus (no `--redis`), groups and dead letters are empty.
    public static func gather(store: any StateStore, bus: (any EventBus)?, circuit: String = "closed") async throws -> StatusReport {
        let instances = try await store.orchestrators()
        let leases = try await store.leases()
        let presences = Dictionary(leases.filter(LeaseKeeper.isPresence).map { ($0.project, $0) }, uniquingKeysWith: { first, _ in first })
        let now = store.now()
        var projects = Set(try await store.sessions().compactMap { try? ProjectName($0.project).key })
        for instance in instances { projects.formUnion(instance.projects) }
        var groups: [Group] = []
        var dlq: [String: Int] = [:]
        if let bus {
            var streams: [String] = [Channels.systemGlobal]
            for key in projects.sorted() {
                guard let project = try? ProjectName(key) else { continue }
                streams.append(Channels.signals(project))
                streams.append(Channels.system(project))
                for role in ["cto", "fe", "be", "pm", "qa"] { streams.append(Channels.tasks(project, role)) }
                dlq[key] = try await bus.length(of: Channels.deadLetters(project))
            }
            for stream in streams {
                for info in try await bus.groups(of: stream) {
                    groups.append(
                        Group(
                            stream: info.stream, group: info.group, consumers: info.consumers, pending: info.pending,
                            lag: info.lag, entries_read: info.entriesRead))
                }
            }
        }
        func number(_ record: OrchestratorRecord, _ key: String) -> Int { Int(record.state[key]?.numberValue ?? 0) }
        return StatusReport(
            bus: bus?.health.kind ?? "embedded",
            circuit: circuit,
            groups: groups,
            dlq: dlq,
            stops: try await store.activeStops().map {
                Stop(scope: $0.scope.key, reason: $0.reason, by: $0.by, since: $0.since.description, source: $0.source)
            },
            sessions: try await store.sessionCounts(),
            unhandled_events: try await store.counters(prefix: "unhandled.").values.reduce(0, +),
            trimmed_unread: instances.map { number($0, "trimmed_unread") }.reduce(0, +),
            vanished_with_redis: instances.map { number($0, "vanished_with_redis") }.reduce(0, +),
            orchestrators: instances.map { instance in
                Instance(
                    consumer: instance.consumer, circuit: instance.circuit, last_seen: instance.lastSeen.description, bus: instance.bus,
                    projects: instance.projects, running: instance.stoppedAt == nil, handled: number(instance, "handled"),
                    dead_lettered: number(instance, "dead_lettered"), tasks_outstanding: number(instance, "tasks_outstanding"),
                    outbox: number(instance, "outbox"),
                    alive: presences[LeaseKeeper.presenceKey(instance.consumer)].map { $0.owner == instance.consumer && $0.expiresAt > now })
            },
            leases: leases.filter { !LeaseKeeper.isPresence($0) }.map {
                Lease(project: $0.project, owner: $0.owner, epoch: $0.epoch, expires_at: $0.expiresAt.description)
            }
        )
    }
}
