// swift-tools-version:6.2
import PackageDescription

/// Doorbell: a self-hosted webhook hub. Modules are split by concern and by how often they change:
/// domain types with no I/O (DoorbellCore), configuration, verification, storage, the HTTP server,
/// and the command line, with a thin `doorbell` executable on top.
let package = Package(
    name: "doorbell",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "doorbell", targets: ["doorbell"]),
        .library(name: "DoorbellServer", targets: ["DoorbellServer"]),
    ],
    dependencies: [
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.1"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/groue/GRDB.swift.git", from: "7.10.0"),
        .package(url: "https://github.com/apple/swift-crypto.git", from: "3.12.3"),
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/hummingbird-project/swift-mustache.git", from: "2.1.1"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
        .package(url: "https://github.com/swiftlang/swift-subprocess.git", from: "1.0.2"),
        .package(url: "https://github.com/vapor/postgres-nio.git", from: "1.33.2"),
        // Already under swift-prometheus; named so the worker can count through an injected factory.
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
    ],
    targets: [
        /// Vocabulary types (Source, Event, ...) and pure helpers. No I/O.
        .target(name: "DoorbellCore"),
        /// `doorbell.yml`: loading, `${VAR}` substitution, validation with precise paths.
        .target(
            name: "DoorbellConfig",
            dependencies: [
                "DoorbellCore", .product(name: "Yams", package: "Yams"),
                // Parses every template at load, so a malformed one is a config error, not a failed run.
                .product(name: "Mustache", package: "swift-mustache"),
            ]
        ),
        /// Signature schemes, one type per provider, behind the `SignatureScheme` protocol.
        .target(
            name: "DoorbellVerification",
            dependencies: ["DoorbellCore", .product(name: "Crypto", package: "swift-crypto")]
        ),
        /// The store contract (`EventStore`, `RunStore`, …) and its two backends: SQLite (GRDB) for one
        /// node, PostgreSQL (postgres-nio) for several.
        .target(
            name: "DoorbellStorage",
            dependencies: [
                "DoorbellCore",
                .product(name: "GRDB", package: "GRDB.swift"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ]
        ),
        /// Automations and deliveries: matching, templates, step executors, outbound webhooks (signing,
        /// endpoint health, the SSRF guard) and the worker that runs both from one queue.
        .target(
            name: "DoorbellAutomation",
            dependencies: [
                "DoorbellCore", "DoorbellStorage", "DoorbellVerification",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Mustache", package: "swift-mustache"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // `exec` steps: process groups, an explicit environment, SIGTERM→SIGKILL teardown, no leaked descriptors.
                .product(name: "Subprocess", package: "swift-subprocess"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
            ]
        ),
        /// The HTTP application: ingest, health, lifecycle.
        .target(
            name: "DoorbellServer",
            dependencies: [
                "DoorbellCore", "DoorbellConfig", "DoorbellVerification", "DoorbellStorage", "DoorbellAutomation",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Crypto", package: "swift-crypto"),
                // The dashboard's set-up page sends sample events through this server's own /hooks.
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        /// Commands: serve, check, events, trigger, hash-password. Sample events (fixtures) live in DoorbellVerification.
        .target(
            name: "DoorbellCLI",
            dependencies: [
                "DoorbellCore", "DoorbellConfig", "DoorbellVerification", "DoorbellStorage", "DoorbellServer",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ]
        ),
        .executableTarget(
            name: "doorbell",
            dependencies: ["DoorbellCLI", .product(name: "ArgumentParser", package: "swift-argument-parser")]
        ),
        /// The benchmark's reference targets: a bare Hummingbird endpoint (the ingest ceiling) and a plain
        /// async-http-client post loop (the delivery ceiling).
        .executableTarget(
            name: "doorbell-bench-bare",
            dependencies: [
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
            ],
            path: "Benchmarks/BareEndpoint"
        ),
        .testTarget(
            name: "DoorbellTests",
            dependencies: [
                "DoorbellCore", "DoorbellConfig", "DoorbellVerification", "DoorbellStorage", "DoorbellServer",
                "DoorbellCLI", "DoorbellAutomation",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "PostgresNIO", package: "postgres-nio"),
            ],
            resources: [.copy("Fixtures")]
        ),
    ]
)
