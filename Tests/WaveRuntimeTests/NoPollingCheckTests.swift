import Foundation
import Testing

@Suite("AC-03: the no-polling check")
struct NoPollingCheckTests {
    static func check(_ source: String, filePath: String = #filePath) throws -> (status: Int32, stderr: String) {
        var root = URL(fileURLWithPath: filePath)
        while !FileManager.default.fileExists(atPath: root.appendingPathComponent("Package.swift").path) { root.deleteLastPathComponent() }
        let directory = FileManager.default.temporaryDirectory.appendingPathComponent("wave-poll-\(UUID().uuidString.prefix(8))")
        try FileManager.default.createDirectory(at: directory, withIntermediateDirectories: true)
        try Data(source.utf8).write(to: directory.appendingPathComponent("Loop.swift"))
        let process = Process()
        process.executableURL = root.appendingPathComponent("scripts/check-no-polling")
        process.arguments = [directory.path]
        let err = Pipe()
        process.standardError = err
        try process.run()
        let data = err.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        return (process.terminationStatus, String(decoding: data, as: UTF8.self))
    }

    @Test("a loop that sleeps and then looks again fails the check, naming the line")
    func pollingFails() throws {
        let result = try Self.check(
            """
            func wait() async {
                while !isDone() {
                    try? await Task.sleep(for: .milliseconds(500))
                }
            }
            """)
        #expect(result.status == 1)
        #expect(result.stderr.contains("Loop.swift:3 sleeps without saying why"))
    }

    @Test("a sleep that says it is a backoff, a deadline or a named interval passes")
    func annotatedPasses() throws {
        let result = try Self.check(
            """
            func maintain() async {
                while !Task.isCancelled {
                    // sleep: interval reclaimInterval
                    try? await Task.sleep(for: reclaimInterval)
                    await reclaim()
                }
            }
            """)
        #expect(result.status == 0, "\(result.stderr)")
    }
}
