// swift-tools-version:6.0
// libFuzzer targets, one per parser of strangers' bytes. Build and run them with scripts/fuzz
// (it passes -sanitize=fuzzer,address); each target's seeds are in corpus/<target>.
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which is wherever Ferry was cloned to.
let ferryFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../..").standardizedFileURL.lastPathComponent

let targets = ["grpc-timeout", "message-framer", "dns-message", "config", "endpoints-file", "fixture", "h2-server", "h2-client", "h2-proxy", "xds"]

let package = Package(
    name: "FerryFuzz",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
    ],
    targets: [.target(name: "FuzzSupport", path: "Targets/FuzzSupport")] + targets.map { name in
        .executableTarget(
            name: "fuzz-\(name)",
            dependencies: [
                "FuzzSupport",
                .product(name: "FerryParsers", package: ferryFolder),
                .product(name: "FerryCallPath", package: ferryFolder),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            path: "Targets/\(name)",
            swiftSettings: [.unsafeFlags(["-parse-as-library"])]
        )
    }
)
