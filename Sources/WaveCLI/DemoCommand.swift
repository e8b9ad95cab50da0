import ArgumentParser

/// `wave demo`: the whole system on the embedded bus. Built by a later issue; until then it says
/// so instead of pretending.
struct DemoCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "demo",
        abstract: "Run a whole wave on the embedded bus with simulated agents (not built yet)."
    )

    @OptionGroup var global: GlobalOptions

    @Option(help: "Number of stories.")
    var count: Int?

    @Option(help: "Random seed, for a repeatable run.")
    var seed: Int?

    func run() async throws {
        throw CLIError(
            exitCode: 1,
            message: "the demo is not built yet: this version has the Redis client, the event bus, the story rules and the SQLite store ('wave session|story|approve|approvals|escalations|store', 'wave signal', 'wave tail', 'wave bench redis|bus|store'); the orchestrator runtime and the simulated agents come next (see ARCHITECTURE.md)"
        )
    }
}
