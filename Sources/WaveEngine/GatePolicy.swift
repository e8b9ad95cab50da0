import WaveProtocol

/// How one gate is run: who owns it, whether it is automatic, its thresholds, timeout and
/// retry limit. The set of gates is fixed; their policies are configurable.
public struct GatePolicy: Sendable, Hashable {
    /// The role whose pass approves a manual gate (`cto`, `qa`, `pm`); `agent` for automatic gates.
    public var owner: String
    /// Whether the gate is decided by evidence from the developing agent (gates 1–3).
    public var automatic: Bool
    /// The task action at this gate (`authorize`, `develop`, `validate`, `review`, `merge`).
    public var action: String
    /// Failures allowed before the story fails (the next failure fails it). Default 3.
    public var maxRetries: Int
    /// How long a task at this gate may run, from dispatch.
    public var timeout: Duration
    /// Gate-3: the least coverage that passes, inclusive. Default 70.
    public var requiredCoverage: Double
    /// Gate-1: checklist items that must all be present. Default none (0/0 passes).
    public var requiredChecklist: [String]

    /// Creates a policy.
    public init(
        owner: String, automatic: Bool, action: String, maxRetries: Int = 3, timeout: Duration, requiredCoverage: Double = 70, requiredChecklist: [String] = []
    ) {
        self.owner = owner
        self.automatic = automatic
        self.action = action
        self.maxRetries = maxRetries
        self.timeout = timeout
        self.requiredCoverage = requiredCoverage
        self.requiredChecklist = requiredChecklist
    }
}

/// The engine's configuration: a policy per gate, the retry backoff and the parallel limit.
public struct EngineConfiguration: Sendable, Hashable {
    /// Policies for gate-0 … gate-7, in order.
    public var gates: [GatePolicy]
    /// First retry delay. Default 1 s.
    public var backoffBase: Duration = .seconds(1)
    /// Longest retry delay. Default 300 s.
    public var backoffCap: Duration = .seconds(300)
    /// Stories a session runs at once (what Wave dispatches by itself). Default 10.
    public var parallelLimit = 10
    /// The share of the budget at which a warning is raised. Default 0.8.
    public var budgetWarningRatio = 0.8

    /// The reference's gates, owners and timeouts (PM 300 s, FE/BE 180 s, QA and CTO 120 s).
    public static let standard = EngineConfiguration(gates: [
        GatePolicy(owner: "cto", automatic: false, action: "authorize", timeout: .seconds(120)),
        GatePolicy(owner: "agent", automatic: true, action: "develop", timeout: .seconds(180)),
        GatePolicy(owner: "agent", automatic: true, action: "develop", timeout: .seconds(180)),
        GatePolicy(owner: "agent", automatic: true, action: "develop", timeout: .seconds(180)),
        GatePolicy(owner: "qa", automatic: false, action: "validate", timeout: .seconds(120)),
        GatePolicy(owner: "pm", automatic: false, action: "validate", timeout: .seconds(300)),
        GatePolicy(owner: "cto", automatic: false, action: "review", timeout: .seconds(120)),
        GatePolicy(owner: "cto", automatic: false, action: "merge", timeout: .seconds(120)),
    ])

    /// Creates a configuration; `gates` must hold exactly eight policies.
    public init(gates: [GatePolicy]) {
        precondition(gates.count == 8, "the gate set is fixed: gate-0 … gate-7")
        self.gates = gates
    }

    /// The policy of a gate.
    public subscript(gate: GateID) -> GatePolicy { self.gates[gate.number] }

    /// The delay before attempt `failures + 1`: exponential (base × 2ⁿ⁻¹), capped, with full
    /// jitter from `unit` in [0, 1).
    public func backoff(failures: Int, unit: Double) -> Duration {
        let exponent = max(0, min(failures - 1, 30))
        let raw = self.backoffBase * (1 << exponent)
        let capped = raw > self.backoffCap ? self.backoffCap : raw
        // Full jitter keeps at least half the delay, so a retry storm never fires at once.
        return capped / 2 + (capped / 2) * max(0, min(unit, 1))
    }
}
