// swift-tools-version:6.2
import PackageDescription

// Dependencies point one way: Gateway → Cache → Redis, Router. Router is pure logic and imports
// nothing of ours; Redis is the client; Cache holds the stores (response cache, rate limits,
// consistency tokens); Gateway does the I/O.
/// Release builds skip dynamic exclusivity checks on the data path: each check is a thread-local
/// lookup, and profiles showed them at ~3% of a proxied request. Debug builds (tests) keep them.
let hotPathSettings: [SwiftSetting] = [
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release))
]

let package = Package(
    name: "gateway",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "gateway", targets: ["GatewayMain"]),
        .library(name: "Gateway", targets: ["Gateway"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-http2", from: "1.46.0"),
    ],
    targets: [
        // hiredis's pkg-config file adds -D_FILE_OFFSET_BITS=64, which SwiftPM refuses; the
        // headers live in /usr/include/hiredis, and the shim includes them by that path.
        .systemLibrary(name: "CHiredis", providers: [.apt(["libhiredis-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "libcrypto", providers: [.apt(["libssl-dev"])]),
        .systemLibrary(
            name: "CLibpq",
            pkgConfig: "libpq",
            providers: [.apt(["libpq-dev"])]
        ),
        .systemLibrary(name: "CAres", pkgConfig: "libcares", providers: [.apt(["libc-ares-dev"])]),
        .systemLibrary(name: "CFDPassing"),
        .target(name: "Router", swiftSettings: hotPathSettings),
        .target(
            name: "Redis",
            dependencies: [
                "CHiredis",
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: hotPathSettings
        ),
        // JWTs: compact JWS parsing, JWK sets, signature and claim checks — OpenSSL's libcrypto
        // (already linked for HMAC and SHA-256) does the cryptography.
        .target(name: "JWT", dependencies: ["COpenSSL"], swiftSettings: hotPathSettings),
        // HTTP/1.1 on the wire: heads, the parser, chunked coding, raw head writing.
        .target(
            name: "HTTPWire",
            dependencies: ["Router", .product(name: "NIOCore", package: "swift-nio")],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "Cache",
            dependencies: [
                "Router",
                "Redis",
                "COpenSSL",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
            ],
            swiftSettings: hotPathSettings
        ),
        .target(
            name: "Gateway",
            dependencies: [
                "Cache",
                "HTTPWire",
                "JWT",
                "Redis",
                "Router",
                "CLibpq",
                "CAres",
                "CFDPassing",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ],
            swiftSettings: hotPathSettings
        ),
        .executableTarget(
            name: "GatewayMain",
            dependencies: [
                "Gateway",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ]
        ),
        // Micro-benchmarks of the pure logic: swift run -c release gateway-bench
        .executableTarget(name: "gateway-bench", dependencies: ["Router"], path: "Benchmarks/Micro", swiftSettings: hotPathSettings),
        // Real servers for tests (HTTP upstreams on loopback; later PostgreSQL, Redis, the sample API).
        .target(
            name: "TestSupport",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
            ],
            path: "Tests/TestSupport",
            exclude: ["chromium_cdp.py"]
        ),
        .testTarget(name: "RouterTests", dependencies: ["Router"]),
        .testTarget(name: "HTTPWireTests", dependencies: ["HTTPWire"]),
        .testTarget(name: "JWTTests", dependencies: ["JWT"], exclude: ["make_fixtures.py"]),
        .testTarget(
            name: "RedisTests",
            dependencies: ["Redis", "TestSupport", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        .testTarget(
            name: "CacheTests",
            dependencies: ["Cache", "TestSupport", .product(name: "NIOConcurrencyHelpers", package: "swift-nio")]
        ),
        .testTarget(
            name: "GatewayTests",
            dependencies: [
                "Gateway",
                "TestSupport",
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP2", package: "swift-nio-http2"),
                .product(name: "NIOHPACK", package: "swift-nio-http2"),
            ]
        ),
    ]
)
