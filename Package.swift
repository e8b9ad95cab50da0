// swift-tools-version:6.2
// The Wave package: an event-driven orchestrator for teams of AI coding agents.
// Targets are split by dependency direction (see ARCHITECTURE.md): pure values at the
// bottom, NIO and I/O in the middle, the daemon wiring and a thin CLI on top.
import PackageDescription

let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error),
    .enableUpcomingFeature("ExistentialAny"),
]

let package = Package(
    name: "wave",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "wave", targets: ["WaveCLI"]),
        .library(name: "RESP", targets: ["RESP"]),
        .library(name: "WaveRedis", targets: ["WaveRedis"]),
        .library(name: "WaveProtocol", targets: ["WaveProtocol"]),
        .library(name: "WaveBus", targets: ["WaveBus"]),
        .library(name: "WaveEngine", targets: ["WaveEngine"]),
        .library(name: "WaveStore", targets: ["WaveStore"]),
        .library(name: "WaveRuntime", targets: ["WaveRuntime"]),
        .library(name: "WaveAgentKit", targets: ["WaveAgentKit"]),
        .library(name: "WaveOperations", targets: ["WaveOperations"]),
        .library(name: "WavePostgres", targets: ["WavePostgres"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-collections.git", from: "1.6.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-async-algorithms.git", from: "1.1.4"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
    ],
    targets: [
        // Pure RESP3 values: tokens, the incremental decoder, the command encoder.
        .target(
            name: "RESP",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        // The wire protocol as pure values: envelope, event types, names, tasks, dead letters.
        .target(
            name: "WaveProtocol",
            swiftSettings: strict
        ),
        // The story rules as a pure function: state machine, gates, retries, escalations.
        .target(
            name: "WaveEngine",
            dependencies: ["WaveProtocol"],
            swiftSettings: strict
        ),
        // Durable state in SQLite: schema and migrations, sessions, stories, checkpoints, ledger.
        .target(
            name: "WaveStore",
            dependencies: [
                "WaveEngine", "WaveProtocol",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "GRDBSQLite", package: "GRDB.swift"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The event bus: one interface; Redis Streams and in-memory implementations.
        .target(
            name: "WaveBus",
            dependencies: [
                "WaveProtocol", "WaveRedis", "RESP",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "AsyncAlgorithms", package: "swift-async-algorithms"),
            ],
            swiftSettings: strict
        ),
        // The orchestrator: the event dispatcher, the signal handlers, task dispatch.
        .target(
            name: "WaveRuntime",
            dependencies: [
                "WaveBus", "WaveStore", "WaveEngine", "WaveProtocol", "WaveRedis",
                .product(name: "HeapModule", package: "swift-collections"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // For agents: consume tasks, publish results and signals; simulated agents on top.
        .target(
            name: "WaveAgentKit",
            dependencies: [
                "WaveBus", "WaveProtocol",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The Redis client: connections, pool, blocking reads, pub/sub, breaker, typed commands.
        .target(
            name: "WaveRedis",
            dependencies: [
                "RESP",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "DequeModule", package: "swift-collections"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        // Helpers for tests that use real servers: the test script's URLs, private redis-servers.
        .target(
            name: "WaveTesting",
            dependencies: ["WaveRedis", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        // `wave bench …`: measurements beside the raw limits of the same run.
        .target(
            name: "WaveBench",
            dependencies: [
                "WaveRedis",
                "WaveBus",
                "WaveProtocol",
                "WaveStore",
                "WaveEngine",
                "WaveRuntime",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The PostgreSQL store (SCALE.md): connection from the store URL, the reference's schema
        // and Wave's additive migrations under an advisory lock.
        .target(
            name: "WavePostgres",
            dependencies: [
                "WaveStore", "WaveEngine", "WaveProtocol",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The operations every front end shares (the CLI now, the HTTP API next): configuration
        // and its precedence, the story-file format, dead-letter replay and purge, reaching Redis.
        .target(
            name: "WaveOperations",
            dependencies: [
                "WaveRedis", "WaveStore", "WaveEngine", "WaveProtocol",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        // The `wave` command.
        .executableTarget(
            name: "WaveCLI",
            dependencies: [
                "WaveOperations",
                "WavePostgres",
                "WaveRedis",
                "WaveStore",
                "WaveEngine",
                "WaveBus",
                "WaveProtocol",
                "WaveBench",
                "WaveRuntime",
                "WaveAgentKit",
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "RESPTests",
            dependencies: ["RESP", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveEngineTests",
            dependencies: ["WaveEngine", "WaveProtocol"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveStoreTests",
            dependencies: ["WaveStore", "WaveEngine", "WaveProtocol", "WaveTesting", "WaveRedis", .product(name: "GRDB", package: "GRDB.swift"), .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveRuntimeTests",
            dependencies: ["WaveRuntime", "WaveAgentKit", "WaveBus", "WaveStore", "WaveEngine", "WaveProtocol", "WaveRedis", "WaveTesting",
                           .product(name: "Logging", package: "swift-log"), .product(name: "NIOPosix", package: "swift-nio")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveProtocolTests",
            dependencies: ["WaveProtocol"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WavePostgresTests",
            dependencies: [
                "WavePostgres", "WaveStore", "WaveTesting", .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("Fixtures")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveOperationsTests",
            dependencies: ["WaveOperations", "WaveStore", "WaveProtocol", "WaveRedis", "WaveTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveBusTests",
            dependencies: ["WaveBus", "WaveProtocol", "WaveRedis", "WaveTesting", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "WaveRedisTests",
            dependencies: [
                "WaveRedis",
                "WaveTesting",
                "WaveBench",
                "WaveStore",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
    ]
)
