import Testing
import WaveStore

@Suite("Store URLs: SQLite files and PostgreSQL databases")
struct StoreURLTests {
    @Test("a PostgreSQL URL's parts, defaults and sslmode; both schemes; a percent-encoded password")
    func parsesPostgresURLs() throws {
        let url = try PostgresURL(url: "postgres://wave:s%40cr%3At@db.example:6543/waves?sslmode=verify-full")
        #expect(url.host == "db.example" && url.port == 6543 && url.user == "wave" && url.database == "waves")
        #expect(url.password == "s@cr:t")
        #expect(url.sslMode == .verifyFull)
        let plain = try PostgresURL(url: "postgresql://u@localhost/d")
        #expect(plain.port == 5432 && plain.password == nil && plain.sslMode == .prefer)
        guard case .postgres(let routed) = try StoreURL("postgres://u:p@h/d?sslmode=disable") else {
            Issue.record("a postgres:// store URL is PostgreSQL")
            return
        }
        #expect(routed.sslMode == .disable)
        guard case .sqlite(let file) = try StoreURL("sqlite:.wave/x.sqlite") else {
            Issue.record("sqlite:PATH is SQLite")
            return
        }
        #expect(file.path == ".wave/x.sqlite")
    }

    @Test("passwords never show: the description masks them, the connection URL keeps them")
    func masksPasswords() throws {
        let url = try PostgresURL(url: "postgres://wave:hunter2@h:5432/d?sslmode=require")
        #expect(url.description == "postgres://wave:***@h:5432/d?sslmode=require")
        #expect(try StoreURL("postgres://wave:hunter2@h:5432/d").description.contains("hunter2") == false)
        #expect(try PostgresURL(url: url.connectionURL) == url)
        let odd = PostgresURL(host: "h", user: "u", password: "p@ss:w/rd?", database: "d")
        #expect(try PostgresURL(url: odd.connectionURL).password == "p@ss:w/rd?")
    }

    @Test(
        "bad PostgreSQL URLs are clear errors that do not show the password",
        arguments: [
            ("postgres://u:pw@/d", "no host"), ("postgres://u:pw@h", "no database"), ("mysql://u:pw@h/d", "not a PostgreSQL URL"),
            ("postgres://u:pw@h/d?sslmode=sometimes", "sslmode=sometimes is not one of"), ("postgres://u:pw@h/d?timeout=3", "only sslmode"),
        ])
    func refusesBadURLs(text: String, expected: String) {
        #expect {
            try PostgresURL(url: text)
        } throws: { error in
            guard let error = error as? StoreError, error.code == .invalidURL else { return false }
            return error.message.contains(expected) && !error.message.contains("pw")
        }
    }

    @Test("the reference's POSTGRES_* variables, with its defaults; none set: no database")
    func readsTheReferenceVariables() throws {
        #expect(try PostgresURL(environment: [:]) == nil)
        let partial = try #require(try PostgresURL(environment: ["POSTGRES_HOST": "pg", "POSTGRES_PASSWORD": "x"]))
        #expect(partial == PostgresURL(host: "pg", port: 5432, user: "wave", password: "x", database: "wave"))
        #expect(throws: StoreError.self) { try PostgresURL(environment: ["POSTGRES_PORT": "http"]) }
    }
}
