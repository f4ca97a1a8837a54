// swift-tools-version:6.0
import PackageDescription

/// The request path runs through class properties on every frame; dynamic exclusivity checks
/// cost about a tenth of the proxy's CPU there (measured with perf). Debug builds keep them.
let hotPathSettings: [SwiftSetting] = [.unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))]

let package = Package(
    name: "Ferry",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "ferry", targets: ["ferry"]),
        // For bench/micro (the micro-benchmarks package) and other tools built on Ferry's layers.
        .library(name: "FerryLayers", targets: ["FerryH2", "FerryGRPC", "FerryPolicy"]),
        // The parsers of strangers' bytes, for the fuzz targets in bench/fuzz.
        .library(name: "FerryParsers", targets: ["FerryGRPC", "FerryConfig", "FerryDiscovery", "FerryH2", "FerryFixtures", "FerryXDS"]),
        // The request path, for bench/fuzz's h2-proxy target (which imports it @testable in a debug build).
        .library(name: "FerryCallPath", targets: ["FerryProxy", "FerryUpstream"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-atomics.git", from: "1.2.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.6"),
    ],
    targets: [
        .systemLibrary(
            name: "CNghttp2",
            pkgConfig: "libnghttp2",
            providers: [.apt(["libnghttp2-dev"])]
        ),
        // YAML parsing for configuration (libyaml; Yams would bring Foundation and ~10 MB of resident size).
        .systemLibrary(
            name: "CYAML",
            pkgConfig: "yaml-0.1",
            providers: [.apt(["libyaml-dev"])]
        ),
        // nghttp2's allocator: per-thread free lists for its small per-stream blocks.
        .target(name: "CNghttp2Memory", dependencies: ["CNghttp2"]),
        // The build's version, stamped by scripts/build-ferry.
        .target(name: "CFerryVersion"),
        .target(
            name: "FerryH2",
            dependencies: [
                "CNghttp2", "CNghttp2Memory",
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "FerryGRPC",
            dependencies: [.product(name: "NIOCore", package: "swift-nio")]
        ),
        .target(name: "FerryPolicy", dependencies: [.product(name: "Atomics", package: "swift-atomics")]),
        .target(
            name: "FerryConfig",
            dependencies: ["FerryGRPC", "CYAML"]
        ),
        .target(
            name: "FerryDiscovery",
            dependencies: [
                "FerryConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ]
        ),
        .target(
            name: "FerryFixtures",
            dependencies: [
                "CNghttp2",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]
        ),
        // Counters, histograms and their Prometheus exposition; the access log.
        .target(
            name: "FerryMetrics",
            dependencies: [
                "FerryGRPC", "FerryPolicy", "FerryConfig", "FerryH2",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The admin HTTP/1.1 listener (/metrics, /ready, /config, /endpoints) and its JSON.
        .target(
            name: "FerryAdmin",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ]
        ),
        // TLS: contexts from the configuration's PEM files, workload identities (SPIFFE IDs) read
        // from verified certificates, the handshake checks on listener and upstream connections.
        .target(
            name: "FerryTLS",
            dependencies: [
                "FerryConfig",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
            ]
        ),
        // Upstream pools and connections: per-endpoint HTTP/2 connections, the attempts placed
        // on them, endpoint health (failure accrual, load shedding) shared by the loops.
        .target(
            name: "FerryUpstream",
            dependencies: [
                "FerryH2", "FerryPolicy", "FerryConfig", "FerryDiscovery", "FerryTLS", "FerryMetrics",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "FerryProxy",
            dependencies: [
                "CFerryVersion",
                "FerryH2", "FerryGRPC", "FerryPolicy", "FerryConfig", "FerryDiscovery", "FerryMetrics", "FerryAdmin", "FerryUpstream", "FerryTLS",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Atomics", package: "swift-atomics"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: hotPathSettings
        ),
        // The xDS client: the ADS protocol as a state machine (subscriptions, ACK/NACK, reconnects,
        // missing resources), pure like FerryPolicy, and protobuf's wire format for the xDS messages,
        // by hand (protos/xds holds the subset, checked against Envoy's own).
        .target(name: "FerryXDS", dependencies: ["FerryPolicy", "FerryConfig", "FerryGRPC"]),
        // The ADS stream to a control plane, on FerryH2's client role (FerryUpstream's pool).
        .target(
            name: "FerryXDSClient",
            dependencies: [
                "FerryXDS", "FerryUpstream", "FerryH2", "FerryGRPC", "FerryConfig", "FerryDiscovery", "FerryMetrics",
                .product(name: "Logging", package: "swift-log"), .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
            ]),
        // The demo's echo upstream and load client (FerryH2 on both sides), for `ferry demo` and tests.
        .target(
            name: "FerryDemo",
            dependencies: [
                "FerryH2", "FerryGRPC",
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ]
        ),
        .executableTarget(
            name: "ferry",
            dependencies: [
                "FerryProxy", "FerryDemo", "FerryConfig", "FerryFixtures", "FerryTLS", "FerryAdmin", "FerryXDS", "FerryXDSClient",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            // The Swift runtime linked in, not loaded as shared libraries: only the parts Ferry
            // uses are paged in, and the binary runs without a toolchain. lld packs the relative
            // relocations (otherwise ~1 MB read at every start) and folds identical code.
            linkerSettings: [
                .unsafeFlags(["-static-stdlib", "-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs",
                              "-Xlinker", "--icf=all"], .when(platforms: [.linux], configuration: .release)),
            ]
        ),
        .testTarget(
            name: "FerryH2Tests",
            dependencies: ["FerryH2", "CNghttp2Memory", .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio")]
        ),
        .testTarget(name: "FerryGRPCTests", dependencies: ["FerryGRPC", .product(name: "NIOCore", package: "swift-nio")]),
        .testTarget(name: "FerryPolicyTests", dependencies: ["FerryPolicy"]),
        .testTarget(name: "FerryXDSTests", dependencies: ["FerryXDS", "FerryPolicy", "FerryConfig"]),
        .testTarget(name: "FerryConfigTests", dependencies: ["FerryConfig"]),
        .testTarget(
            name: "FerryTLSTests",
            dependencies: ["FerryTLS", "FerryConfig", .product(name: "NIOCore", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "NIOSSL", package: "swift-nio-ssl")]
        ),
        .testTarget(name: "FerryDiscoveryTests", dependencies: ["FerryDiscovery", "FerryConfig"]),
        .testTarget(
            name: "FerryFixturesTests",
            dependencies: ["FerryFixtures", "FerryH2", "FerryProxy", "FerryConfig", "CNghttp2",
                           .product(name: "NIOCore", package: "swift-nio"), .product(name: "NIOEmbedded", package: "swift-nio"),
                           .product(name: "NIOPosix", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]
        ),
        .testTarget(
            name: "FerryProxyTests",
            dependencies: ["FerryProxy", "FerryUpstream", "FerryDemo", "FerryConfig", "FerryDiscovery", "FerryXDS", "FerryXDSClient",
                           .product(name: "NIOPosix", package: "swift-nio"),
                           .product(name: "NIOEmbedded", package: "swift-nio"), .product(name: "Logging", package: "swift-log")]
        ),
    ],
    swiftLanguageModes: [.v6]
)
