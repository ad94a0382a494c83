import TradfriBridge

/// The configuration file (YAML through Yams and its libyaml).
struct ConfigurationTarget: FuzzTarget {
    static let name = "configuration"

    func run(_ input: [UInt8]) {
        if let configuration = try? BridgeConfiguration.parse(String(decoding: input, as: UTF8.self), file: "fuzz.yaml")
        {
            _ = "\(configuration)"
        }
    }
}
