// swift-tools-version:6.1
import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "smime-milter",
    platforms: [.macOS(.v13)],
    products: [
        .executable(name: "smime-milter", targets: ["smime-milter"])
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.6.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based", from: "2.0.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
    ],
    targets: [
        // MARK: system libraries (a module map and one shim header each)
        .systemLibrary(
            name: "CMilter", pkgConfig: "milter", providers: [.apt(["libmilter-dev"])]),
        .systemLibrary(
            name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CP11Kit", pkgConfig: "p11-kit-1", providers: [.apt(["libp11-kit-dev"])]),
        .systemLibrary(
            name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),
        .systemLibrary(
            name: "CPostgres", pkgConfig: "libpq", providers: [.apt(["libpq-dev"])]),

        // MARK: libraries
        .target(name: "MIME", swiftSettings: swiftSettings),
        .target(
            name: "Token",
            dependencies: ["CP11Kit", "COpenSSL", "CShims", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "SMIME",
            dependencies: ["COpenSSL", "Token", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "Gateway",
            dependencies: ["MIME", "SMIME", "Token", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .target(
            name: "Records",
            dependencies: ["CSQLite", "CPostgres", "CShims", "Gateway", "MIME", "SMIME", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // The metrics endpoint (MetricsListen): Prometheus exposition served over SwiftNIO's HTTP/1.1,
        // and the systemd notify protocol.
        .target(
            name: "Monitoring",
            dependencies: [
                "Gateway", "SMIME", "Token",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings),
        // C for what Swift cannot do: taking SIGHUP/SIGTERM/SIGINT away from libmilter (signals.c says
        // why), glibc's malloc threshold, thread names, OpenSSL initialised before main (openssl.c).
        .target(name: "CShims", linkerSettings: [.linkedLibrary("crypto")]),
        .target(
            name: "Milter",
            dependencies: ["CMilter", "CShims", "Gateway", "MIME", "Monitoring", "Records", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),

        // MARK: the executable
        .executableTarget(
            name: "smime-milter",
            dependencies: [
                "MIME", "Token", "SMIME", "Gateway", "Milter", "Monitoring", "Records",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings),

        // What the fuzz targets share: libFuzzer's entry points, and the file reproducer.
        .target(name: "FuzzDriver", swiftSettings: swiftSettings),
        // The MIME fuzz target (make fuzz); a file reproducer when built normally.
        .executableTarget(name: "MIMEFuzz", dependencies: ["FuzzDriver", "MIME"], swiftSettings: swiftSettings),
        // The verifying path (message bytes to verdict and header fields) under libFuzzer.
        .executableTarget(
            name: "VerifyFuzz",
            dependencies: ["FuzzDriver", "Gateway", "MIME", "SMIME", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        // The configuration and table parsers under libFuzzer.
        .executableTarget(name: "ConfigFuzz", dependencies: ["FuzzDriver", "Gateway"], swiftSettings: swiftSettings),

        // MARK: tests
        .target(
            name: "TestSupport", path: "Tests/TestSupport", exclude: ["ca_server.py"], swiftSettings: swiftSettings),
        .testTarget(
            name: "TokenTests", dependencies: ["Token", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "SMIMETests", dependencies: ["SMIME", "MIME", "Token", "Gateway", "TestSupport"],
            exclude: ["vgca"], swiftSettings: swiftSettings),
        .testTarget(
            name: "GatewayTests", dependencies: ["Gateway", "MIME", "SMIME", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "RecordsTests", dependencies: ["Records", "Gateway", "MIME", "TestSupport"], swiftSettings: swiftSettings),
        .testTarget(
            name: "MilterTests", dependencies: ["Milter", "Gateway", "MIME", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "MonitoringTests", dependencies: ["Monitoring", "Gateway", "SMIME", "Token", "TestSupport"],
            swiftSettings: swiftSettings),
        .testTarget(
            name: "MIMETests",
            dependencies: ["MIME", "TestSupport", .product(name: "PropertyBased", package: "swift-property-based")],
            exclude: ["Corpus", "email_parts.py"], resources: [], swiftSettings: swiftSettings),
    ],
    swiftLanguageModes: [.v6]
)
