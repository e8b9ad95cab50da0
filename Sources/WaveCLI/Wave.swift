import ArgumentParser
import Foundation
import Logging

/// The `wave` command.
struct Wave: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "wave",
        abstract: "Wave: an event-driven orchestrator for teams of AI coding agents.",
        discussion: """
            Exit codes: 0 success, 1 failure, 2 bad input (one-line error on stderr), \
            3 a server could not be reached (with a hint).
            """,
        subcommands: [
            DemoCommand.self, RunCommand.self, StatusCommand.self, StopCommand.self, DlqCommand.self, AgentsCommand.self, ConfigCommand.self,
            SessionCommand.self, StoryCommand.self, ApproveCommand.self, ApprovalsCommand.self, EscalationsCommand.self,
            SignalCommand.self, TailCommand.self, StoreCommand.self, BenchCommand.self,
        ]
    )
}

@main
enum WaveMain {
    static func main() async {
        LoggingSystem.bootstrap { label in
            var handler = StreamLogHandler.standardError(label: label)
            handler.logLevel = Logger.Level(rawValue: ProcessInfo.processInfo.environment["WAVE_LOG_LEVEL"] ?? "") ?? .info
            return handler
        }
        do {
            var command = try Wave.parseAsRoot()
            if var asyncCommand = command as? any AsyncParsableCommand {
                try await asyncCommand.run()
            } else {
                try command.run()
            }
        } catch let error as CLIError {
            FileHandle.standardError.write(Data("wave: \(error.message)\n".utf8))
            exit(error.exitCode)
        } catch {
            let code = Wave.exitCode(for: error)
            if code == .success {
                Wave.exit(withError: error)  // --help, --version
            }
            if code == .validationFailure || error is ValidationError {
                let message = Wave.message(for: error).split(whereSeparator: \.isNewline).first.map(String.init) ?? "\(error)"
                FileHandle.standardError.write(Data("wave: \(message) (see 'wave --help')\n".utf8))
                exit(2)
            }
            let mapped = CLIError.from(error)
            FileHandle.standardError.write(Data("wave: \(mapped.message)\n".utf8))
            exit(mapped.exitCode)
        }
    }
}
