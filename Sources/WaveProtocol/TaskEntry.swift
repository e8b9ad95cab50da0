/// A task on `wave:tasks:{project}:{role}` (`WIRE.md`, Tasks).
public struct TaskEntry: Hashable, Sendable {
    /// The task's id.
    public var taskID: String
    /// The story it works on.
    public var storyID: String
    /// The session of the story.
    public var sessionID: String
    /// The role that does it (`pm`, `cto`, `fe`, `be`, `qa`).
    public var role: String
    /// What to do: `plan`, `authorize`, `develop`, `validate`, `review`, `merge`, …
    public var action: String
    /// The gate it reports on.
    public var gate: GateID
    /// Instructions and context.
    public var payload: [String: JSONValue]
    /// Priority (`critical` and `high` are dispatched first).
    public var priority: Priority
    /// 1 for the first attempt.
    public var attempt: Int
    /// When the task times out.
    public var deadline: WaveTimestamp
    /// The message id: a result signal's `correlation_id` names it.
    public var messageID: String
    /// When it was dispatched.
    public var timestamp: WaveTimestamp
    /// The project as spelled by Wave's configuration.
    public var project: String
    /// The schema version (2).
    public var schemaVersion: Int

    /// Creates a task.
    public init(
        taskID: String, storyID: String, sessionID: String, role: String, action: String, gate: GateID,
        payload: [String: JSONValue] = [:], priority: Priority = .normal, attempt: Int = 1, deadline: WaveTimestamp,
        messageID: String, timestamp: WaveTimestamp = .now(), project: String, schemaVersion: Int = Envelope.currentSchemaVersion
    ) {
        self.taskID = taskID
        self.storyID = storyID
        self.sessionID = sessionID
        self.role = role
        self.action = action
        self.gate = gate
        self.payload = payload
        self.priority = priority
        self.attempt = attempt
        self.deadline = deadline
        self.messageID = messageID
        self.timestamp = timestamp
        self.project = project
        self.schemaVersion = schemaVersion
    }

    /// The entry's fields.
    public var fields: [StreamField] {
        [
            StreamField("task_id", self.taskID), StreamField("story_id", self.storyID),
            StreamField("session_id", self.sessionID), StreamField("role", self.role),
            StreamField("action", self.action), StreamField("gate", self.gate.description),
            StreamField("payload", JSONValue.object(self.payload).jsonText), StreamField("priority", self.priority.rawValue),
            StreamField("attempt", String(self.attempt)), StreamField("deadline", self.deadline.description),
            StreamField("message_id", self.messageID), StreamField("timestamp", self.timestamp.description),
            StreamField("project", self.project), StreamField("schema_version", String(self.schemaVersion)),
        ]
    }

    /// Decodes a task entry.
    /// - Throws: ``WaveProtocolError`` with code `invalidTask` naming the missing or bad field.
    public init(decoding fields: [StreamField]) throws(WaveProtocolError) {
        var values: [String: String] = [:]
        for field in fields where values[field.name] == nil { values[field.name] = field.value }
        func required(_ name: String) throws(WaveProtocolError) -> String {
            guard let value = values[name], !value.isEmpty else { throw WaveProtocolError(.invalidTask, "the task has no \(name)") }
            return value
        }
        func bad(_ name: String) -> WaveProtocolError { WaveProtocolError(.invalidTask, "the task's \(name) is invalid: \(values[name] ?? "")") }
        self.taskID = try required("task_id")
        self.storyID = try required("story_id")
        self.sessionID = try required("session_id")
        self.role = try required("role")
        self.action = try required("action")
        do { self.gate = try GateID(parsing: try required("gate")) } catch { throw bad("gate") }
        guard case .object(let payload)? = JSONValue(jsonText: try required("payload")) else { throw bad("payload") }
        self.payload = payload
        guard let priority = Priority(rawValue: values["priority"] ?? "normal") else { throw bad("priority") }
        self.priority = priority
        guard let attempt = Int(values["attempt"] ?? "1"), attempt >= 1 else { throw bad("attempt") }
        self.attempt = attempt
        guard let deadline = WaveTimestamp(parsing: try required("deadline")) else { throw bad("deadline") }
        self.deadline = deadline
        self.messageID = try required("message_id")
        guard let timestamp = WaveTimestamp(parsing: try required("timestamp")) else { throw bad("timestamp") }
        self.timestamp = timestamp
        self.project = try required("project")
        guard let version = Int(values["schema_version"] ?? "2") else { throw bad("schema_version") }
        self.schemaVersion = version
    }
}
