import Foundation

/// The MAC address of a LAN peer, from the kernel's ARP table (when the peer is on the same
/// segment and was seen recently).
enum NeighbourTable {
    static func mac(of ip: String, table: String = "/proc/net/arp") -> String? {
        guard let text = try? String(contentsOfFile: table, encoding: .utf8) else { return nil }
        for line in text.split(separator: "\n").dropFirst() {
            let fields = line.split(separator: " ", omittingEmptySubsequences: true)
            guard fields.count >= 4, fields[0] == ip else { continue }
            let mac = String(fields[3])
            return mac == "00:00:00:00:00:00" ? nil : mac
        }
        return nil
    }
}
