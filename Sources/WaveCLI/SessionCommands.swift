import ArgumentParser
import Foundation
import WaveEngine
import WaveProtocol
import WaveStore

/// `wave session …`
struct SessionCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "session",
        abstract: "Create, list, show, pause, resume and cancel sessions (one wave of stories for a project).",
        subcommands: [Create.self, List.self, Show.self, Pause.self, Resume.self, Cancel.self]
    )

    struct Create: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Create a pending session from story files in the reference's JSON format.",
            discussion: "Unknown dependencies and dependency cycles are refused, naming them. An orchestrator serving the project starts it, oldest first."
        )
        @OptionGroup var global: GlobalOptions
        @Option(help: "The project.") var project: String
        @Option(help: "The wave number (0 or more).") var wave: Int
        @Option(help: "A story JSON file (one story or an array) or a folder of them.") var stories: String
        @Option(help: "Budget in USD (0 is a real budget).") var budget = 2.00

        func run() async throws {
            let stories = try loadStories(from: self.stories)
            let store = try self.global.openStore()
            let session = try await storeCall {
                try await store.createSession(project: self.project, wave: self.wave, stories: stories, budgetUSD: self.budget)
            }
            let envelope = Envelope(
                eventType: .sessionCreated, payload: ["by": .string(defaultOperator())], source: "wave-cli", project: self.project, sessionID: session.displayID
            )
            try await self.global.announce(envelope, project: self.project)
            if self.global.json {
                print(try JSONOutput.line(SessionJSON(session)))
            } else {
                print(
                    "created session \(session.displayID): project \(session.project), wave \(session.wave), \(session.storyCount) stories, budget $\(String(format: "%.2f", session.budgetUSD)) (pending)"
                )
            }
        }
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List sessions, newest first.")
        @OptionGroup var global: GlobalOptions
        @Option(help: "Only this project.") var project: String?

        func run() async throws {
            let store = try self.global.openStore()
            let sessions = try await storeCall { try await store.sessions(project: self.project) }
            if self.global.json {
                print(try JSONOutput.line(["sessions": sessions.map(SessionJSON.init)]))
                return
            }
            if sessions.isEmpty { print("no sessions (create one with 'wave session create --project P --wave N --stories FILE')") }
            for session in sessions {
                print(
                    "\(session.displayID)  \(session.project)  wave \(session.wave)  \(session.status.rawValue)\(session.isPaused ? " (paused)" : "")  stories \(session.storiesCompleted)/\(session.storyCount) complete, \(session.storiesFailed) failed  $\(String(format: "%.2f", session.actualCostUSD)) of $\(String(format: "%.2f", session.budgetUSD))"
                )
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show a session and its stories.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id (with or without dashes).") var id: String

        func run() async throws {
            let store = try self.global.openStore()
            let session = try await storeCall { try await store.session(id: self.id) }
            let stories = try await storeCall { try await store.stories(session: session.id) }
            if self.global.json {
                struct Shown: Encodable {
                    var session: SessionJSON
                    var stories: [StoryJSON]
                    func encode(to encoder: any Encoder) throws {
                        try self.session.encode(to: encoder)
                        var container = encoder.container(keyedBy: Key.self)
                        try container.encode(self.stories, forKey: Key(stringValue: "stories")!)
                    }
                    struct Key: CodingKey {
                        var stringValue: String
                        var intValue: Int? { nil }
                        init?(stringValue: String) { self.stringValue = stringValue }
                        init?(intValue: Int) { nil }
                    }
                }
                print(try JSONOutput.line(Shown(session: SessionJSON(session), stories: stories.map(StoryJSON.init))))
                return
            }
            print(
                "session \(session.displayID): project \(session.project), wave \(session.wave), \(session.status.rawValue)\(session.isPaused ? " (paused)" : "")"
            )
            print(
                "  stories \(session.storyCount): \(session.storiesCompleted) complete, \(session.storiesFailed) failed; cost $\(String(format: "%.4f", session.actualCostUSD)) of $\(String(format: "%.2f", session.budgetUSD)), \(session.tokenCount) tokens"
            )
            for story in stories {
                let state = story.state
                print(
                    "  \(state.storyID)  \(state.status.rawValue)  \(state.currentGate)  retries \(state.retryCount)\(state.blockedReason.map { "  blocked: \($0)" } ?? "")  \(story.title)"
                )
            }
        }
    }

    struct Pause: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Pause a session: no new dispatch; in-flight tasks finish and their results apply.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var id: String
        @Option(help: "Why.") var reason = "paused by an operator"
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            try await operateOnSession(self.global, id: self.id, reason: self.reason, by: self.by, event: .sessionPaused, verb: "paused") { store, messageID in
                try await store.pauseSession(self.id, messageID: messageID)
            }
        }
    }

    struct Resume: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Resume a paused session.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var id: String
        @Option(help: "Why.") var reason = "resumed by an operator"
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            try await operateOnSession(self.global, id: self.id, reason: self.reason, by: self.by, event: .sessionResumed, verb: "resumed") {
                store, messageID in
                try await store.resumeSession(self.id, messageID: messageID)
            }
        }
    }

    struct Cancel: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Cancel a session and every story in it that is not finished.")
        @OptionGroup var global: GlobalOptions
        @Argument(help: "The session id.") var id: String
        @Option(help: "Why.") var reason = "cancelled by an operator"
        @Option(help: "Who (default $USER@hostname).") var by: String?

        func run() async throws {
            try await operateOnSession(self.global, id: self.id, reason: self.reason, by: self.by, event: .sessionCancelled, verb: "cancelled") {
                store, messageID in
                try await store.cancelSession(self.id, reason: self.reason, messageID: messageID)
            }
        }
    }
}

/// Commits a session change (its announcing event's message id in the ledger), announces it on
/// the project's system stream, and prints the session.
func operateOnSession(
    _ global: GlobalOptions, id: String, reason: String, by: String?, event: EventType, verb: String,
    _ change: (any StateStore, String) async throws -> SessionRecord
) async throws {
    let store = try global.openStore()
    let messageID = MessageID.makeTimeOrdered()
    let session = try await storeCall { try await change(store, messageID) }
    let envelope = Envelope(
        eventType: event, payload: ["reason": .string(reason), "by": .string(by ?? defaultOperator())],
        source: "wave-cli", project: session.project, messageID: messageID, sessionID: session.displayID)
    try await global.announce(envelope, project: session.project)
    try printSession(session, verb: verb, json: global.json)
}

func printSession(_ session: SessionRecord, verb: String, json: Bool) throws {
    if json {
        print(try JSONOutput.line(SessionJSON(session)))
    } else {
        print("\(verb) session \(session.displayID) (\(session.status.rawValue)\(session.isPaused ? ", paused" : ""))")
    }
}
