// swift-tools-version:6.1
// Micro-benchmarks of Ferry's hot pieces (ordo-one/benchmark, with allocation counts).
// Run: cd bench/micro && swift package --allow-writing-to-package-directory benchmark
import Foundation
import PackageDescription

// A path dependency is known by its folder's name, which is wherever Ferry was cloned to.
let ferryFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    .appendingPathComponent("../..").standardizedFileURL.lastPathComponent

let package = Package(
    name: "FerryMicroBenchmarks",
    platforms: [.macOS(.v14)],
    dependencies: [
        .package(path: "../.."),
        .package(url: "https://github.com/ordo-one/benchmark.git", from: "1.38.1", traits: ["MallocInterposer"]),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.2"),
    ],
    targets: [
        .executableTarget(
            name: "FerryMicro",
            dependencies: [
                .product(name: "Benchmark", package: "benchmark"),
                .product(name: "FerryLayers", package: ferryFolder),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
            ],
            path: "Benchmarks/FerryMicro",
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]
        ),
    ]
)
