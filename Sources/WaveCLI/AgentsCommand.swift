import ArgumentParser
import Foundation
import Logging
import WaveBus
import WaveProtocol
import WaveRedis

/// `wave agents`: the roster, from the agents' own signals.
struct AgentsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "agents",
        abstract: "List the agents of a project from their ready, busy and health signals (last seen, current task).",
        discussion: "Reads the newest entries of wave:signals:{project} without consuming them. Needs --redis."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "The project.")
    var project: String

    @Option(help: "How many of the newest signals to read.")
    var count = 10_000

    func validate() throws {
        guard self.count > 0 else { throw ValidationError("--count must be positive") }
    }

    struct Agent: Encodable {
        var agent_id: String
        var role: String
        var status: String
        var last_seen: String
        var current_task: String?
        var last_event: String
    }

    func run() async throws {
        let name: ProjectName
        do { name = try ProjectName(self.project) } catch { throw CLIError.badInput(error.message) }
        let entries = try await withRedisClient(self.global, "wave agents") { client in
            try await RedisEventBus(client: client, logger: Logger(label: "wave.agents")).entries(of: Channels.signals(name), count: self.count)
        }
        var agents: [String: Agent] = [:]
        for entry in entries {  // oldest first: later signals overwrite
            guard let envelope = try? Envelope(decoding: entry.fields, stream: Channels.signals(name), entryID: entry.id),
                let id = envelope.agentID, let role = envelope.senderRole()
            else { continue }
            var agent = agents[id] ?? Agent(agent_id: id, role: role, status: "seen", last_seen: "", current_task: nil, last_event: "")
            agent.last_seen = envelope.timestamp?.description ?? entry.id
            agent.last_event = envelope.eventType.rawValue
            switch envelope.eventType {
            case .agentReady:
                agent.status = "ready"
                agent.current_task = nil
            case .agentBusy, .systemHealth:
                agent.status = "busy"
                agent.current_task = envelope.payload["task_id"]?.stringValue ?? agent.current_task
            case .gatePassed, .gateFailed, .agentError:
                agent.current_task = nil
            default:
                break
            }
            agents[id] = agent
        }
        let roster = agents.values.sorted { $0.agent_id < $1.agent_id }
        if self.global.json {
            struct Output: Encodable {
                var project: String
                var agents: [Agent]
            }
            print(try JSONOutput.line(Output(project: self.project, agents: roster)))
            return
        }
        if roster.isEmpty { print("no agent has signalled on \(Channels.signals(name)) (in the newest \(self.count) entries)") }
        for agent in roster {
            print(
                "\(agent.agent_id.padding(toLength: 10, withPad: " ", startingAt: 0)) \(agent.role.padding(toLength: 4, withPad: " ", startingAt: 0)) \(agent.status.padding(toLength: 6, withPad: " ", startingAt: 0)) last seen \(agent.last_seen) (\(agent.last_event))\(agent.current_task.map { ", task \($0)" } ?? "")"
            )
        }
    }
}
