// swift-tools-version: 6.2
// tradfri-bridge: an IKEA TRÅDFRI gateway ↔ MQTT bridge daemon.
//
// Layers, bottom to top (nothing above a wrapper ever sees a C symbol):
//   C modules      CCoap, CMosquitto, CAvahiClient, COpenSSL   (system libraries)
//   Wrappers       CoAP, MQTT, MDNS, TLS                        (the only importers of the C modules)
//                  SystemdNotify                                (systemd's notify socket: the only
//                                                               raw socket code for it)
//   Domain         HubModel                                     (pure, hub-neutral: devices and their
//                                                               capabilities, MQTT payloads, commands)
//                  TradfriModel                                 (pure: the TRÅDFRI gateway's JSON model,
//                                                               its translation to HubModel and back)
//   Products       GatewaySimulator, TradfriBridge              (libraries the executables and tests share)
//   Executables    tradfri-bridge, tradfri-gateway-sim, tradfri-bench
import PackageDescription

let strict: [SwiftSetting] = [
    .treatAllWarnings(as: .error)
]

let package = Package(
    name: "tradfri-bridge",
    products: [
        .executable(name: "tradfri-bridge", targets: ["TradfriBridgeCLI"]),
        .executable(name: "tradfri-gateway-sim", targets: ["GatewaySimulatorCLI"]),
        .executable(name: "tradfri-bench", targets: ["TradfriBench"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle", from: "2.13.0"),
        .package(url: "https://github.com/jpsim/Yams", from: "6.2.2"),
        // The optional /metrics endpoint's Prometheus text format (with swift-metrics and swift-atomics).
        .package(url: "https://github.com/swift-server/swift-prometheus", from: "2.4.1"),
        // Every HTTP(S) endpoint (pairing, the web page): Hummingbird on SwiftNIO, TLS by swift-nio-ssl.
        // No default traits: swift-configuration support is not used.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.3"),
        .package(url: "https://github.com/apple/swift-nio-ssl", from: "2.37.6"),
        .package(url: "https://github.com/apple/swift-nio-extras", from: "1.35.2"),
        .package(url: "https://github.com/apple/swift-http-types", from: "1.8.0"),
    ],
    targets: [
        // MARK: C libraries
        .systemLibrary(name: "CCoap", pkgConfig: "libcoap-3-openssl", providers: [.apt(["libcoap3-dev"])]),
        .systemLibrary(name: "CMosquitto", pkgConfig: "libmosquitto", providers: [.apt(["libmosquitto-dev"])]),
        // No pkgConfig: avahi-client.pc adds -D_REENTRANT, which SwiftPM warns about; the module map links it.
        .systemLibrary(name: "CAvahiClient", providers: [.apt(["libavahi-client-dev"])]),
        .systemLibrary(name: "COpenSSL", pkgConfig: "openssl", providers: [.apt(["libssl-dev"])]),

        // MARK: Wrappers (one per C library)
        .target(
            name: "CoAP", dependencies: ["CCoap", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "MQTT", dependencies: ["CMosquitto", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(
            name: "MDNS", dependencies: ["CAvahiClient", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict),
        .target(name: "TLS", dependencies: ["COpenSSL"], swiftSettings: strict),
        .target(name: "SystemdNotify", swiftSettings: strict),

        // MARK: Domain
        .target(name: "HubModel", swiftSettings: strict),
        .target(name: "TradfriModel", dependencies: ["HubModel"], swiftSettings: strict),

        // MARK: Products
        .target(
            name: "GatewaySimulator",
            dependencies: [
                "CoAP", "HubModel", "TradfriModel",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(
            name: "TradfriBridge",
            dependencies: [
                "CoAP", "MQTT", "MDNS", "TLS", "SystemdNotify", "HubModel", "TradfriModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            swiftSettings: strict
        ),

        // MARK: Executables
        .executableTarget(
            name: "TradfriBridgeCLI",
            dependencies: [
                "TradfriBridge", "CoAP", "MDNS", "HubModel", "TradfriModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: strict,
            linkerSettings: [
                // The daemon as it ships (release): lld (in the Swift toolchain) with packed relative
                // relocations (DT_RELR, glibc 2.36+) and identical-code folding, so start-up touches
                // 2 MB less of the binary: peak RSS 31.5 → 29.3 MiB (README, Performance).
                .unsafeFlags(
                    ["-use-ld=lld", "-Xlinker", "-z", "-Xlinker", "pack-relative-relocs", "-Xlinker", "--icf=all"],
                    .when(platforms: [.linux], configuration: .release)),
                // Full RELRO (the Debian package's hardening: lintian's hardening-no-bindnow).
                .unsafeFlags(
                    ["-Xlinker", "-z", "-Xlinker", "now"], .when(platforms: [.linux], configuration: .release)),
            ]
        ),
        .executableTarget(
            name: "GatewaySimulatorCLI",
            dependencies: [
                "GatewaySimulator", "MDNS",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict,
            linkerSettings: [
                .unsafeFlags(
                    ["-Xlinker", "-z", "-Xlinker", "now"], .when(platforms: [.linux], configuration: .release))
            ]
        ),

        .executableTarget(
            name: "TradfriBench",
            dependencies: [
                "GatewaySimulator", "CoAP", "MQTT", "HubModel", "TradfriModel",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),

        // MARK: Tests (mirror the source tree)
        .systemLibrary(name: "CTestSupport", path: "Tests/CTestSupport"),
        // One takeover coordinator as a process of its own, for the tests that kill or freeze it.
        .executableTarget(
            name: "TakeoverProbe",
            dependencies: [
                "TradfriBridge", "MQTT",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            path: "Tests/TakeoverProbe", swiftSettings: strict),
        .target(name: "TestSupport", dependencies: ["CTestSupport"], path: "Tests/TestSupport", swiftSettings: strict),
        .testTarget(name: "HubModelTests", dependencies: ["HubModel"], swiftSettings: strict),
        .testTarget(name: "TradfriModelTests", dependencies: ["HubModel", "TradfriModel"], swiftSettings: strict),
        .testTarget(name: "CoAPTests", dependencies: ["CoAP", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "TradfriBridgeTests", dependencies: ["TradfriBridge", "TestSupport", "HubModel", "TradfriModel"],
            swiftSettings: strict),
        .testTarget(name: "MDNSTests", dependencies: ["MDNS", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "SystemdNotifyTests", dependencies: ["SystemdNotify", "TestSupport"], swiftSettings: strict),
        .testTarget(
            name: "MQTTTests",
            dependencies: ["MQTT", "TestSupport", .product(name: "Logging", package: "swift-log")],
            swiftSettings: strict
        ),
        .testTarget(
            name: "GatewaySimulatorTests",
            dependencies: ["GatewaySimulator", "CoAP", "HubModel", "TradfriModel", "TestSupport"],
            swiftSettings: strict
        ),
    ]
)

// MARK: Fuzzing
// libFuzzer targets for every parser of outside input (Tests/Fuzz). Only scripts/fuzz.sh builds
// them (TRADFRI_FUZZ=1, with -sanitize=fuzzer): libFuzzer provides their main.
if Context.environment["TRADFRI_FUZZ"] != nil {
    package.products.append(.executable(name: "tradfri-fuzz", targets: ["TradfriFuzz"]))
    package.targets.append(
        .executableTarget(
            name: "TradfriFuzz",
            dependencies: [
                "TradfriBridge", "TradfriModel", "GatewaySimulator", "CoAP", "HubModel",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "NIOHTTPTypes", package: "swift-nio-extras"),
                .product(name: "NIOHTTPTypesHTTP1", package: "swift-nio-extras"),
                .product(name: "HTTPTypes", package: "swift-http-types"),
            ],
            path: "Tests/Fuzz/TradfriFuzz",
            swiftSettings: strict
        ))
}
