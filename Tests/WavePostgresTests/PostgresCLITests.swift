import Foundation
import Testing
import WaveStore
import WaveTesting

@Suite("wave store migrate on PostgreSQL (CLI)", .enabled(if: TestDatabase.available))
struct PostgresCLITests {
    @Test("dry run, apply, up to date, --json; DATABASE_URL and POSTGRES_* name the database; the password never shows")
    func migrateThroughTheCLI() async throws {
        let database = try TestDatabase.make()
        defer { database.drop() }
        let url = database.url.connectionURL
        let password = try #require(database.url.password)
        let dry = try await WaveBinary.run(["store", "migrate", "--dry-run", "--store", url])
        #expect(dry.status == 0, "\(dry.stderr)")
        #expect(dry.stdout.contains("9 migrations would apply to postgres://\(database.url.user):***@"))
        #expect(dry.stdout.contains("001-reference-tables") && dry.stdout.contains("007-runtime"))
        #expect(try database.psql(sql: "SELECT to_regclass('wave_sessions') IS NULL") == ["t"], "a dry run changes nothing")
        // From the reference's DATABASE_URL, with --json.
        let applied = try await WaveBinary.run(["store", "migrate", "--json"], environment: ["DATABASE_URL": url])
        #expect(applied.status == 0, "\(applied.stderr)")
        let object = try #require(try JSONSerialization.jsonObject(with: Data(applied.stdout.utf8)) as? [String: Any])
        #expect((object["applied"] as? [String])?.count == 9 && object["total"] as? Int == 9)
        // From its POSTGRES_* variables: nothing left to do.
        let again = try await WaveBinary.run(
            ["store", "migrate"],
            environment: [
                "POSTGRES_HOST": database.url.host, "POSTGRES_PORT": "\(database.url.port)", "POSTGRES_DB": database.url.database,
                "POSTGRES_USER": database.url.user, "POSTGRES_PASSWORD": password,
            ])
        #expect(again.status == 0, "\(again.stderr)")
        #expect(again.stdout.contains("was already up to date (9 migrations)"))
        for output in [dry, applied, again] {
            #expect(!output.stdout.contains(password) && !output.stderr.contains(password))
        }
    }

    @Test("a wrong password or an unreachable server exits 3 with a hint; a command the PostgreSQL store cannot run yet exits 2")
    func errorsThroughTheCLI() async throws {
        let server = try PostgresURL(url: try TestServers.require(TestServers.postgres, "WAVE_TEST_POSTGRES_URL"))
        var wrong = server
        wrong.password = "wrong-password-123"
        let refused = try await WaveBinary.run(["store", "migrate", "--store", wrong.connectionURL])
        #expect(refused.status == 3)
        #expect(refused.stderr.contains("check the user and password") && !refused.stderr.contains("wrong-password-123"))
        var absent = server
        absent.port = try freePort()
        let unreachable = try await WaveBinary.run(["store", "migrate", "--store", absent.connectionURL])
        #expect(unreachable.status == 3 && unreachable.stderr.contains("is PostgreSQL running there"), "\(unreachable.stderr)")
        let notYet = try await WaveBinary.run(["session", "list", "--store", server.connectionURL])
        #expect(notYet.status == 2 && notYet.stderr.contains("not built yet"), "\(notYet.stderr)")
    }
}
