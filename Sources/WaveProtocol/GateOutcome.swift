/// The pass rule of `WIRE.md`: a gate result passes if and only if `result` is `pass`, `passed`,
/// `success` or `ok` (any case) and `approved` is not `false`. Anything else, a missing `result`
/// included, is a failure; so the reference agents' `gate.passed` with `result: fail` fails.
public enum GateOutcome: Sendable, Hashable {
    case passed
    case failed

    /// The words that mean a pass.
    public static let passingResults: Set<String> = ["pass", "passed", "success", "ok"]

    /// Applies the pass rule to a gate result's payload.
    public init(payload: [String: JSONValue]) {
        guard let result = payload["result"]?.stringValue?.lowercased(), Self.passingResults.contains(result) else {
            self = .failed
            return
        }
        if let approved = payload["approved"], approved.boolValue == false {
            self = .failed
            return
        }
        self = .passed
    }
}
