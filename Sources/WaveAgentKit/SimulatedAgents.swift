import Logging
import Synchronization
import WaveBus
import WaveProtocol

/// How simulated agents behave.
public struct SimulationProfile: Sendable, Hashable {
    /// How long a task takes: uniformly between these bounds.
    public var workTime: ClosedRange<Duration> = .milliseconds(20)...(.milliseconds(80))
    /// Probability that a gate fails (`gate.failed`; QA's failure loops the story back).
    public var failureRate = 0.0
    /// Probability of a retryable `agent.error` instead of a result.
    public var errorRate = 0.0
    /// Cost per task, USD.
    public var costPerTask = 0.01
    /// Tokens per task.
    public var tokensPerTask = 1_000
    /// Seed for the random choices (the same seed gives the same choices per agent).
    public var seed: UInt64 = 1
    /// Outcomes decided in advance, by ``scriptKey(story:gate:role:attempt:)`` (the demo's
    /// agent error and QA failure); they take precedence over the rates.
    public var scripted: [String: TaskReport.Outcome] = [:]

    /// The key of a scripted outcome: `S-1/gate-4/qa/1`.
    public static func scriptKey(story: String, gate: GateID, role: String, attempt: Int) -> String {
        "\(story)/\(gate)/\(role)/\(attempt)"
    }

    /// The default profile: everything passes.
    public init() {}
}

/// A simulated agent: real consumption of real task streams through ``AgentKit``, with made-up
/// work (a delay, then a result chosen by the profile). Used by `wave run --simulate-agents`,
/// the demo and the tests.
public final class SimulatedAgent: Sendable {
    /// The kit it works through.
    public let kit: AgentKit
    /// Its behaviour.
    public let profile: SimulationProfile
    let random: Mutex<SplitMix64>

    /// Creates a simulated agent.
    public init(kit: AgentKit, profile: SimulationProfile) {
        self.kit = kit
        self.profile = profile
        // Stable per agent id and seed (Hasher is seeded per process, so fold the id by hand).
        let salt = kit.identity.agentID.utf8.reduce(UInt64(1469598103934665603)) { ($0 ^ UInt64($1)) &* 1099511628211 }
        self.random = Mutex(SplitMix64(seed: profile.seed ^ salt))
    }

    /// Works until cancelled.
    public func run() async throws {
        try await self.kit.run { task in try await self.work(on: task) }
    }

    func work(on task: TaskEntry) async throws -> TaskReport {
        let (delay, roll, errorRoll) = self.random.withLock { random -> (Duration, Double, Double) in
            let low = self.profile.workTime.lowerBound, high = self.profile.workTime.upperBound
            let fraction = random.nextUnit()
            return (low + (high - low) * fraction, random.nextUnit(), random.nextUnit())
        }
        // The simulated work itself (not a wait for an event).
        // sleep: simulated-work
        try await Task.sleep(for: delay)
        let cost = (costUSD: self.profile.costPerTask, tokens: self.profile.tokensPerTask)
        if let outcome = self.profile.scripted[SimulationProfile.scriptKey(story: task.storyID, gate: task.gate, role: task.role, attempt: task.attempt)] {
            if case .pass = outcome {
                return TaskReport(.pass, details: Self.evidence(for: task, passing: true), costUSD: cost.costUSD, tokens: cost.tokens)
            }
            return TaskReport(outcome, details: Self.evidence(for: task, passing: false), costUSD: cost.costUSD, tokens: cost.tokens)
        }
        if errorRoll < self.profile.errorRate {
            return TaskReport(.error("simulated agent error in \(task.action)", retryable: true), costUSD: cost.costUSD, tokens: cost.tokens)
        }
        if roll < self.profile.failureRate, task.action != "plan" {
            return TaskReport(
                .fail("simulated \(task.action) failure"), details: Self.evidence(for: task, passing: false), costUSD: cost.costUSD, tokens: cost.tokens)
        }
        return TaskReport(.pass, details: Self.evidence(for: task, passing: true), costUSD: cost.costUSD, tokens: cost.tokens)
    }

    /// What a real agent of the role would attach: the plan's dev roles, the build, tests and
    /// coverage of the development gates.
    static func evidence(for task: TaskEntry, passing: Bool) -> [String: JSONValue] {
        switch (task.action, task.gate.number) {
        case ("plan", _):
            let text = ((task.payload["domain"]?.stringValue ?? "") + " " + (task.payload["agent"]?.stringValue ?? "")).lowercased()
            let roles: [JSONValue] =
                text.contains("fullstack") || text.contains("both") ? ["fe", "be"] : text.contains("front") || text.hasPrefix("fe") ? ["fe"] : ["be"]
            return ["dev_roles": .array(roles)]
        case (_, 2):
            return ["build_success": .bool(passing)]
        case (_, 3):
            return ["tests_passing": .bool(passing), "coverage": .number(passing ? 85 : 40)]
        default:
            return [:]
        }
    }
}

/// A small, fast, seedable generator (SplitMix64).
struct SplitMix64: Sendable {
    var state: UInt64

    init(seed: UInt64) { self.state = seed }

    mutating func next() -> UInt64 {
        self.state &+= 0x9E37_79B9_7F4A_7C15
        var z = self.state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }

    /// A number in [0, 1).
    mutating func nextUnit() -> Double { Double(self.next() >> 11) / Double(1 << 53) }
}
