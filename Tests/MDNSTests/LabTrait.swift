import MDNS
import TestSupport
import Testing

extension NetworkLab.Host {
    /// An `MDNSClient` that acts as a program on this host (talks to this host's avahi-daemon).
    func mdnsClient() throws -> MDNSClient {
        try withSystemBus { () throws(MDNSError) in try MDNSClient() }
    }

    /// Starts `avahi-publish -s` on this host and waits until the service is established.
    func publish(
        name: String, type: String, port: UInt16, txt: [String] = [], extra: [String] = []
    ) async throws -> ChildProcess {
        let publisher = try spawn("avahi-publish", extra + ["-s", name, type, String(port)] + txt)
        try await publisher.waitForLine(within: .seconds(30), "avahi-publish to establish '\(name)'") {
            $0.contains("Established under name")
        }
        return publisher
    }
}

/// The first `.found` (or `.updated`) event for `name`, as a service.
func found(_ name: String) -> @Sendable (MDNSBrowseEvent) -> MDNSService? {
    { event in
        if case .found(let service) = event, service.name == name { return service }
        return nil
    }
}

func updated(
    _ name: String, where condition: @escaping @Sendable (MDNSService) -> Bool
)
    -> @Sendable (MDNSBrowseEvent) -> MDNSService?
{
    { event in
        if case .updated(let service) = event, service.name == name, condition(service) { return service }
        return nil
    }
}

func removed(_ name: String) -> @Sendable (MDNSBrowseEvent) -> MDNSService? {
    { event in
        if case .removed(let service) = event, service.name == name { return service }
        return nil
    }
}

/// `avahi-browse -rp` resolved lines ("=;eth0;IPv4;name;type;domain;host;address;port;txt"),
/// split into fields.
func resolvedLines(_ output: String) -> [[String]] {
    output.split(separator: "\n").filter { $0.hasPrefix("=;") }.map {
        $0.split(separator: ";", omittingEmptySubsequences: false).map(String.init)
    }
}
