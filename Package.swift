// swift-tools-version:6.2
import PackageDescription

/// Settings shared by every target of ours: Swift 6 mode, strict concurrency, warnings are errors.
let strict: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("MemberImportVisibility"),
    .treatAllWarnings(as: .error),
]

let package = Package(
    name: "imds",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "imds", targets: ["IMDSCommand"]),
        /// The transport-free engine: request in, response out.
        .library(name: "IMDSCore", targets: ["IMDSCore"]),
        /// The SwiftNIO listeners (data plane and control plane).
        .library(name: "IMDSServer", targets: ["IMDSServer"]),
        /// Finds IMDSv1 usage in source trees and rewrites shell requests into the token form.
        .library(name: "IMDSScan", targets: ["IMDSScan"]),
        /// The EC2 Query API subset the AWS CLI drives (transport-free).
        .library(name: "IMDSControlPlane", targets: ["IMDSControlPlane"]),
        /// An IMDS to run inside your own tests, in-process or on a live port-0 listener.
        .library(name: "IMDSTesting", targets: ["IMDSTesting"]),
        /// An IMDS client following the AWS SDK conventions (endpoint resolution, tokens, v1 fallback,
        /// credentials with static stability).
        .library(name: "IMDSClient", targets: ["IMDSClient"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-collections", from: "1.1.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.0"),
        .package(url: "https://github.com/apple/swift-crypto", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.0"),
        .package(url: "https://github.com/apple/swift-certificates", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1", from: "1.7.0"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.0"),
        .package(url: "https://github.com/vapor/postgres-nio", from: "1.33.0"),
    ],
    targets: [
        /// What servers and clients share on the wire, with no server code: the status → reason table.
        .target(
            name: "IMDSWire",
            dependencies: [],
            swiftSettings: strict
        ),
        /// The AWS Query protocol for servers and clients alike: SigV4 signing and verification, form
        /// encoding and decoding, XML writing and reading. No server code.
        .target(
            name: "AWSQuery",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSCore",
            dependencies: [
                "IMDSWire",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        /// <sys/epoll.h> and <sys/eventfd.h> for the lean data-plane loop, recvmmsg for caller
        /// attribution's batched netlink lookups (Glibc's module lacks them).
        .target(name: "CLinuxEpoll"),
        .target(
            name: "IMDSServer",
            dependencies: [
                "IMDSCore",
                "IMDSWire",
                "CLinuxEpoll",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSScan",
            dependencies: [],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSCredentials",
            dependencies: [
                "IMDSCore", "IMDSClient", "AWSQuery",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSControlPlane",
            dependencies: [
                "AWSQuery",
                "IMDSCore",
                "IMDSWire",
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSAdmin",
            dependencies: ["IMDSCore", "IMDSWire"],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSIdentity",
            dependencies: [
                "IMDSCore",
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "_CryptoExtras", package: "swift-crypto"),
            ],
            swiftSettings: strict
        ),
        /// Metrics, the access log, caller attribution (/proc) and the dashboard; transport-free.
        .target(
            name: "IMDSObservability",
            dependencies: [
                "IMDSCore",
                "IMDSWire",
                "CLinuxEpoll",
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        /// The PostgreSQL-backed `InstanceStore`: N hosts share one database (docs/postgres.md). The
        /// only target that imports PostgresNIO.
        .target(
            name: "IMDSPostgres",
            dependencies: [
                "IMDSCore",
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        /// The composition of one server (`imds serve` and `IMDSTesting` alike): configuration →
        /// store, engine, control plane, observability and listeners, run as a `ServiceGroup`.
        .target(
            name: "IMDSRuntime",
            dependencies: [
                "IMDSCore", "IMDSServer", "IMDSControlPlane", "IMDSAdmin", "IMDSIdentity", "IMDSCredentials",
                "IMDSObservability",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSTesting",
            dependencies: ["IMDSCore", "IMDSServer", "IMDSIdentity", "IMDSRuntime"],
            swiftSettings: strict
        ),
        .target(
            name: "IMDSClient",
            dependencies: [
                "IMDSWire",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "IMDSCommand",
            dependencies: [
                "IMDSCore",
                "IMDSServer",
                "IMDSRuntime",
                "IMDSControlPlane",
                "IMDSIdentity",
                "IMDSAdmin",
                "IMDSClient",
                "IMDSCredentials",
                "IMDSScan",
                "IMDSObservability",
                "IMDSPostgres",
                "IMDSWire",
                "AWSQuery",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSCoreTests",
            dependencies: [
                "IMDSCore", "IMDSTesting", "IMDSPostgres", .product(name: "Crypto", package: "swift-crypto"),
                // The PostgreSQL fault tests hold locks on their own connection.
                .product(name: "PostgresNIO", package: "postgres-nio"),
                .product(name: "HashTreeCollections", package: "swift-collections"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSClientTests",
            dependencies: [
                "IMDSClient", "IMDSCore", "IMDSServer", "IMDSTesting",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSControlPlaneTests",
            dependencies: ["AWSQuery", "IMDSControlPlane", "IMDSCore", "IMDSServer", "IMDSTesting"],
            exclude: ["Fixtures"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSServerTests",
            dependencies: [
                "IMDSCore", "IMDSServer", "IMDSTesting", "IMDSAdmin", "IMDSControlPlane", "IMDSObservability", "IMDSWire", "IMDSRuntime",
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSScanTests",
            dependencies: ["IMDSScan"],
            exclude: ["Corpus"],
            swiftSettings: strict
        ),
        .testTarget(
            name: "IMDSObservabilityTests",
            dependencies: ["IMDSObservability", "IMDSCore", "IMDSServer", "IMDSTesting", "IMDSAdmin"],
            swiftSettings: strict
        ),
    ]
)

// Opt-in targets that the default build never compiles. They live in this manifest, behind
// environment variables, because a separate package cannot name this one reliably: the identity of
// a `.package(path: "..")` dependency is the checkout folder's name, which differs between clones.
//   IMDS_BENCHMARKS=1 swift package --scratch-path .build-bench benchmark   (docs/benchmarks.md)
//   IMDS_FUZZ=1 swift build --scratch-path .build-fuzz --sanitize=fuzzer  (scripts/test-fuzz.sh)
if Context.environment["IMDS_BENCHMARKS"] == "1" {
    package.dependencies.append(
        .package(url: "https://github.com/ordo-one/benchmark", from: "1.38.0", traits: ["MallocInterposer"]))
    package.targets.append(
        .executableTarget(
            name: "IMDSBenchmarks",
            dependencies: ["IMDSCore", "IMDSObservability", .product(name: "Benchmark", package: "benchmark")],
            path: "Benchmarks/IMDSBenchmarks",
            swiftSettings: strict,
            plugins: [.plugin(name: "BenchmarkPlugin", package: "benchmark")]))
}
if Context.environment["IMDS_FUZZ"] == "1" {
    package.targets.append(.target(name: "FuzzSupport", dependencies: ["IMDSCore"], path: "fuzz/FuzzSupport", swiftSettings: strict))
    for (name, extra) in [("FuzzEngine", []), ("FuzzConfig", []), ("FuzzControlPlane", ["IMDSAdmin"]), ("FuzzEC2Query", ["IMDSControlPlane"]),
                          ("FuzzSigV4", ["IMDSControlPlane", "AWSQuery"]), ("FuzzHTTPParser", [])] {
        package.targets.append(
            .executableTarget(
                name: name,
                dependencies: (["FuzzSupport", "IMDSCore"] + extra).map { .target(name: $0) }
                    + [.product(name: "Crypto", package: "swift-crypto")],
                path: "fuzz/\(name)",
                swiftSettings: strict))
    }
}
