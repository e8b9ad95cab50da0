/// A value that breaks a rule of the wire protocol.
public struct WaveProtocolError: Error, Sendable, Hashable, CustomStringConvertible {
    /// Which rule.
    public struct Code: Sendable, Hashable, CustomStringConvertible {
        let name: String
        /// The project name breaks the project-name rule.
        public static let invalidProject = Code(name: "invalid_project")
        /// A gate id is not `gate-0` … `gate-7`.
        public static let invalidGate = Code(name: "invalid_gate")
        /// A role or agent id is empty or malformed.
        public static let invalidRole = Code(name: "invalid_role")
        /// A task entry lacks a field or has a bad value.
        public static let invalidTask = Code(name: "invalid_task")
        public var description: String { self.name }
    }
    /// Which rule.
    public var code: Code
    /// What was wrong, for people.
    public var message: String

    /// Creates an error.
    public init(_ code: Code, _ message: String) {
        self.code = code
        self.message = message
    }

    public var description: String { self.message }
}
