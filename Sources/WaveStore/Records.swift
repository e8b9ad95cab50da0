import WaveEngine
import WaveProtocol

/// A session as stored.
public struct SessionRecord: Sendable, Hashable {
    /// Its id (32 hex digits, as the reference stores it; print it with ``displayID``).
    public var id: String
    /// The project.
    public var project: String
    /// The wave number.
    public var wave: Int
    /// The status.
    public var status: SessionStatus
    /// When it was paused (`nil`: not paused).
    public var pausedAt: WaveTimestamp?
    /// The budget, USD (0 is a real budget).
    public var budgetUSD: Double
    /// Spent so far, derived from the stories.
    public var actualCostUSD: Double
    /// Tokens so far, derived from the stories.
    public var tokenCount: Int
    /// Stories in the session.
    public var storyCount: Int
    /// Stories complete.
    public var storiesCompleted: Int
    /// Stories failed.
    public var storiesFailed: Int
    /// When it was created.
    public var createdAt: WaveTimestamp?
    /// When it started.
    public var startedAt: WaveTimestamp?
    /// Metadata (`error_message` on failure, `budget_warned`, …).
    public var metadata: [String: JSONValue]

    /// The id with dashes.
    public var displayID: String { StoreIDs.display(self.id) }
    /// Whether it is paused.
    public var isPaused: Bool { self.pausedAt != nil }
}

/// A story as stored: the engine's state plus the descriptive columns.
public struct StoryRecord: Sendable, Hashable {
    /// The row id.
    public var rowID: String
    /// The engine's state.
    public var state: StoryState
    /// `story_title`.
    public var title: String
    /// `priority` (`P0`, …).
    public var priority: String?
    /// The row's other metadata keys, kept as they were.
    public var otherMetadata: [String: JSONValue]
}

/// A checkpoint as stored.
public struct CheckpointRecord: Sendable, Hashable {
    /// Its id.
    public var id: String
    /// Its order among all checkpoints.
    public var seq: Int
    /// The session.
    public var sessionID: String
    /// The story, if any.
    public var storyID: String?
    /// The type (`gate`, `story_start`, …).
    public var type: String
    /// The label.
    public var name: String
    /// The gate, if any.
    public var gate: String?
    /// The snapshot.
    public var state: [String: JSONValue]
    /// The agent.
    public var agentID: String?
    /// The previous checkpoint of the same story.
    public var parentID: String?
    /// Whether a recovery superseded it.
    public var superseded: Bool
    /// When it was written (the store's clock).
    public var createdAt: WaveTimestamp?
}

/// An escalation as stored.
public struct EscalationRecord: Sendable, Hashable {
    /// Its id.
    public var id: String
    /// The session and story, if any.
    public var sessionID: String?
    /// See ``sessionID``.
    public var storyID: String?
    /// `retries_exhausted`, `story_blocked`, …
    public var kind: String
    /// For people.
    public var reason: String
    /// When it was raised.
    public var createdAt: WaveTimestamp
    /// When and by whom it was acknowledged.
    public var acknowledgedAt: WaveTimestamp?
    /// See ``acknowledgedAt``.
    public var acknowledgedBy: String?
}

/// A story for a new session, from the reference's story JSON.
public struct NewStory: Sendable, Hashable {
    /// `id`.
    public var id: String
    /// `title`.
    public var title: String
    /// `domain`.
    public var domain: String
    /// `agent_assignment`.
    public var agent: String
    /// `priority`.
    public var priority: String?
    /// `story_points`.
    public var storyPoints: Int?
    /// `dependencies`.
    public var dependencies: [String]
    /// `acceptance_criteria` count.
    public var acceptanceCriteriaTotal: Int
    /// The whole JSON object, kept in metadata as `story`.
    public var source: [String: JSONValue]

    /// Creates a story.
    public init(
        id: String, title: String, domain: String, agent: String, priority: String? = nil, storyPoints: Int? = nil, dependencies: [String] = [],
        acceptanceCriteriaTotal: Int = 0, source: [String: JSONValue] = [:]
    ) {
        self.id = id
        self.title = title
        self.domain = domain
        self.agent = agent
        self.priority = priority
        self.storyPoints = storyPoints
        self.dependencies = dependencies
        self.acceptanceCriteriaTotal = acceptanceCriteriaTotal
        self.source = source
    }

    /// Reads one story object in the reference's format.
    /// - Throws: ``StoreError`` naming what is missing.
    public init(json object: [String: JSONValue]) throws(StoreError) {
        guard let id = object["id"]?.stringValue, !id.isEmpty else { throw StoreError(.invalidInput, "a story has no \"id\"") }
        guard let title = object["title"]?.stringValue, !title.isEmpty else { throw StoreError(.invalidInput, "story \(id) has no \"title\"") }
        var dependencies: [String] = []
        if let value = object["dependencies"] {
            guard case .array(let items) = value else { throw StoreError(.invalidInput, "story \(id): \"dependencies\" is not an array of story ids") }
            for item in items {
                guard let dependency = item.stringValue else {
                    throw StoreError(.invalidInput, "story \(id): \"dependencies\" holds a value that is not a story id")
                }
                dependencies.append(dependency)
            }
        }
        var criteria = 0
        if case .array(let items)? = object["acceptance_criteria"] { criteria = items.count }
        self.init(
            id: id, title: title, domain: object["domain"]?.stringValue ?? "general",
            agent: object["agent_assignment"]?.stringValue ?? object["agent"]?.stringValue ?? "",
            priority: object["priority"]?.stringValue, storyPoints: object["story_points"]?.numberValue.map { Int($0) },
            dependencies: dependencies, acceptanceCriteriaTotal: criteria, source: object
        )
    }
}

/// Ids: 32 lowercase hex digits in storage (the reference's SQLite form), dashes for people;
/// accepted with or without dashes.
public enum StoreIDs {
    /// A new id, 32 hex digits, time-ordered (UUID version 7), so that inserting rows keyed by it
    /// appends to the primary-key index rather than touching a random page of it.
    public static func make() -> String {
        self.normalize(MessageID.makeTimeOrdered(millisecondsSinceEpoch: WaveTimestamp.now().millisecondsSinceEpoch))
    }

    /// The stored form of an id given with or without dashes.
    public static func normalize(_ text: String) -> String {
        // Already stored form (no dash, no capital): the same string, no copy.
        if !text.utf8.contains(where: { $0 == UInt8(ascii: "-") || ($0 >= UInt8(ascii: "A") && $0 <= UInt8(ascii: "Z")) }) { return text }
        var bytes: [UInt8] = []
        bytes.reserveCapacity(32)
        for byte in text.utf8 where byte != UInt8(ascii: "-") {
            bytes.append(byte >= UInt8(ascii: "A") && byte <= UInt8(ascii: "Z") ? byte + 32 : byte)
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// The two forms an id may be stored in (32 hex digits, and with dashes), so that a lookup
    /// can use the primary key whichever form the table holds.
    public static func storedForms(_ text: String) -> (String, String) {
        let hex = self.normalize(text)
        return (hex, self.display(hex))
    }

    /// 8-4-4-4-12 for a 32-hex id; anything else unchanged.
    public static func display(_ id: String) -> String {
        let hex = self.normalize(id)
        guard hex.utf8.count == 32 else { return id }
        return String(unsafeUninitializedCapacity: 36) { buffer in
            var index = 0
            for (offset, byte) in hex.utf8.enumerated() {
                if offset == 8 || offset == 12 || offset == 16 || offset == 20 {
                    buffer[index] = UInt8(ascii: "-")
                    index += 1
                }
                buffer[index] = byte
                index += 1
            }
            return index
        }
    }
}
