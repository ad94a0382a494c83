/// The bridge's version, published in `bridge/info` and mDNS TXT records.
public enum BridgeVersion {
    public static let current = "0.1.0"
}
