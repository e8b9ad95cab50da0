/// What an emergency stop covers: one project, or every project (`WIRE.md`, Emergency stop).
///
/// Its ``key`` is what the store's `scope` column, the Redis key and `wave status` say:
/// `global`, or the project's key. `global` is reserved as a project name, so the two never meet.
public enum StopScope: Hashable, Sendable, Comparable, CustomStringConvertible {
    /// Every project.
    case global
    /// One project.
    case project(ProjectName)

    /// The scope a stored or typed key names: `global`, else a project name (normalized).
    /// - Throws: ``WaveProtocolError`` when the text is neither.
    public init(key: String) throws(WaveProtocolError) {
        if key.trimmingCharacters(in: .whitespaces).lowercased() == "global" {
            self = .global
        } else {
            self = .project(try ProjectName(key))
        }
    }

    /// `global`, or the project's key.
    public var key: String {
        switch self {
        case .global: "global"
        case .project(let project): project.key
        }
    }

    /// The stream its announcements go to: `wave:system:global` or `wave:system:{p}`.
    public var systemStream: String {
        switch self {
        case .global: Channels.systemGlobal
        case .project(let project): Channels.system(project)
        }
    }

    /// Its key in Redis: `wave:emergency:global` or `wave:emergency:{p}` (JSON, no TTL).
    public var emergencyKey: String {
        switch self {
        case .global: Channels.emergencyGlobal
        case .project(let project): Channels.emergency(project)
        }
    }

    /// Whether a stop of this scope halts the project with key `project`.
    public func covers(project: String) -> Bool {
        switch self {
        case .global: true
        case .project(let name): name.key == project
        }
    }

    public var description: String { self.key }

    public static func < (lhs: StopScope, rhs: StopScope) -> Bool { lhs.key < rhs.key }
}
