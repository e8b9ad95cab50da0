import ArgumentParser
import Foundation
import Logging
import NIOPosix
import ServiceLifecycle
import WaveAgentKit
import WaveBus
import WaveEngine
import WaveOperations
import WaveProtocol
import WaveRedis
import WaveRuntime
import WaveStore

/// `wave run`: the orchestrator, until SIGTERM or SIGINT.
struct RunCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "run",
        abstract: "Run the orchestrator: consume signals, drive stories through their gates, dispatch tasks.",
        discussion: """
            With --redis it joins the shared group `orchestrator` on wave:signals:{p} and its own group \
            orchestrator:{consumer} on wave:system:{p} and wave:system:global. Without --redis it runs on the \
            embedded in-process bus, which only in-process agents can reach: give --simulate-agents. \
            The log tells what happens to each story, one line per transition. SIGTERM or SIGINT stops it \
            gracefully (the read in hand finishes, acknowledgements are flushed, its own groups are deleted).
            """
    )

    @OptionGroup var global: GlobalOptions

    @Option(name: .customLong("project"), help: "A project to serve (repeatable). Default: the projects of the store's live sessions.")
    var projects: [String] = []

    @Option(help: "The consumer name, stable across restarts (default: the host name).")
    var consumer: String?

    @Flag(help: "Run simulated PM, CTO, FE, BE and QA agents in this process.")
    var simulateAgents = false

    @Option(help: "Simulated agents per role.")
    var agentsPerRole = 1

    @Option(help: "Simulated agents: probability that a gate fails (0…1).")
    var failureRate = 0.0

    @Option(help: "Simulated agents: probability of a retryable agent.error (0…1).")
    var errorRate = 0.0

    @Option(help: "Simulated agents: milliseconds of work per task.")
    var workMs = 50

    @Flag(
        help:
            "Also write every task for the reference's Python workers (wave:tasks:{role} lists, wave:task:{id} hashes) and take their results from wave:results. Needs --redis."
    )
    var legacyBridge = false

    @Option(help: "Seconds to wait at start for an unreachable Redis (it is tried again with backoff; 0: exit 3 at once). Default: wait until it answers.")
    var waitForRedis: Double?

    func validate() throws {
        if let wait = self.waitForRedis, wait < 0 { throw ValidationError("--wait-for-redis is a number of seconds, 0 or more") }
        guard self.agentsPerRole > 0, self.workMs >= 0 else { throw ValidationError("--agents-per-role must be positive and --work-ms not negative") }
        guard (0...1).contains(self.failureRate), (0...1).contains(self.errorRate) else {
            throw ValidationError("--failure-rate and --error-rate are probabilities (0…1)")
        }
    }

    func run() async throws {
        if self.legacyBridge, self.global.redisURL == nil {
            throw CLIError.badInput("--legacy-bridge needs --redis URL: the reference's workers take their tasks from Redis")
        }
        let logger = Logger(label: "wave.run")
        let settings = try Settings.load(self.global)
        let store = try self.global.openStore(engine: StoryEngine(configuration: settings.engine))
        var names = self.projects
        if names.isEmpty { names = settings.projects.value }
        if names.isEmpty { names = try await storeCall { try await store.liveProjects() } }
        guard !names.isEmpty else {
            throw CLIError.badInput("no project to serve: give --project P, or create a session first (wave session create)")
        }
        var projects: [ProjectName] = []
        for name in names {
            do { projects.append(try ProjectName(name)) } catch { throw CLIError.badInput(error.message) }
        }
        projects = Array(Set(projects)).sorted { $0.key < $1.key }
        let consumerName = self.consumer ?? settings.consumer.value

        var services: [any Service] = []
        let bus: any EventBus
        var configuration = OrchestratorConfiguration(projects: projects, consumer: consumerName)
        configuration.roleMap = settings.roleMap
        configuration.batchSize = settings.batchSize
        configuration.blockTime = .milliseconds(settings.blockMilliseconds)
        configuration.reclaimAfter = .milliseconds(settings.reclaimAfterMilliseconds)
        configuration.maxDeliveries = settings.maxDeliveries
        configuration.statusInterval = .milliseconds(settings.statusIntervalMilliseconds)
        configuration.maintenanceInterval = .milliseconds(settings.maintenanceIntervalMilliseconds)
        // Over Redis, instances share the projects by lease (SCALE.md); the embedded bus is one
        // process, which serves every project.
        if settings.leases, self.global.redisURL != nil {
            var leases = LeaseKeeper.Settings()
            leases.ttl = .milliseconds(settings.leaseTTLMilliseconds)
            leases.renewInterval = .milliseconds(settings.leaseRenewMilliseconds)
            configuration.leases = leases
        }
        if let url = self.global.redisURL {
            let redisConfiguration: RedisConfiguration
            do { redisConfiguration = try RedisConfiguration(url: url) } catch { throw CLIError.badInput(error.message) }
            // One event-loop thread for the client, and the handlers start on it (ARCHITECTURE.md):
            // replies and the code that waits for them share a thread; the store's transactions
            // run on its own executor, never here; Redis keeps the other cores.
            let loopGroup = MultiThreadedEventLoopGroup(numberOfThreads: 1)
            let client = try RedisClient(configuration: redisConfiguration, eventLoopGroup: loopGroup, logger: Logger(label: "wave.redis"))
            configuration.executor = EventLoopTaskExecutor(loopGroup.next())
            do {
                try await RedisAccess.awaitRedis(client, limit: self.waitForRedis.map { .milliseconds(Int64($0 * 1000)) }, logger: logger)
            } catch let error as RedisUnreachable {
                await client.shutdown()
                throw CLIError(exitCode: 3, message: error.description)
            }
            services.append(client)
            bus = RedisEventBus(client: client, logger: Logger(label: "wave.bus"))
            if self.legacyBridge { configuration.legacyBridge = client }
            configuration.busKind = "redis"
        } else {
            if !self.simulateAgents {
                FileHandle.standardError.write(
                    Data("warning: on the embedded bus only in-process agents can reach the orchestrator; add --simulate-agents, or --redis URL\n".utf8))
            }
            bus = InMemoryEventBus()
            configuration.busKind = "embedded"
        }
        let orchestrator = Orchestrator(bus: bus, store: store, configuration: configuration, logger: logger)
        services.append(orchestrator)
        if self.simulateAgents {
            var profile = SimulationProfile()
            profile.failureRate = self.failureRate
            profile.errorRate = self.errorRate
            profile.workTime = .milliseconds(self.workMs / 2)...(.milliseconds(self.workMs + self.workMs / 2))
            for project in projects {
                for role in ["pm", "cto", "fe", "be", "qa"] {
                    for index in 1...self.agentsPerRole {
                        let kit = AgentKit(
                            bus: bus, identity: AgentIdentity(agentID: "\(role.uppercased())-\(index)", role: role, project: project),
                            logger: Logger(label: "wave.agent"))
                        services.append(AgentService(agent: SimulatedAgent(kit: kit, profile: profile)))
                    }
                }
            }
        }
        let group = ServiceGroup(
            configuration: ServiceGroupConfiguration(
                services: services.map { ServiceGroupConfiguration.ServiceConfiguration(service: $0) },
                gracefulShutdownSignals: [.sigterm, .sigint],
                logger: logger
            ))
        try await group.run()
    }
}

/// A simulated agent as a service: it works until graceful shutdown.
struct AgentService: Service {
    let agent: SimulatedAgent

    func run() async throws {
        try await cancelWhenGracefulShutdown {
            do {
                try await self.agent.run()
            } catch is CancellationError {
                return
            }
        }
    }
}
