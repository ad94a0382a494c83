import Foundation

/// Points D-Bus system-bus connections made *inside the test process* (avahi-client, so
/// `MDNSClient`) at a chosen bus, typically a `NetworkLab` host's.
///
/// Why it works this way: libdbus reads `DBUS_SYSTEM_BUS_ADDRESS` once per process and caches
/// it, so the variable cannot be changed per connection. Instead it is set once, to a symlink
/// owned by this process (`linkPath`), and the symlink is re-pointed at the wanted socket
/// before each connection. A Unix socket connection follows the symlink when it is made
/// (`avahi_client_new` connects synchronously), and stays with that bus afterwards. The
/// re-pointing and the connection happen under one process-wide lock, so concurrent tests can
/// each connect clients to their own lab hosts.
///
/// Rules for tests:
/// - Create every in-process avahi client inside `connect(toSocket:_:)` (or
///   `NetworkLab.Host.withSystemBus`). A client created outside it connects to whatever the link
///   points at last.
/// - The variable is set on first use of this type (`NetworkLab.availability` touches it too, so
///   it happens before tests run in parallel). If anything in the process used the system bus
///   before that, libdbus has cached the real address and lab connections will not work.
/// - Child processes do not inherit the variable: `ChildProcess` drops it, so a program a test
///   starts talks to this machine's system bus (no avahi-daemon runs there) unless it is given
///   another one; commands run through `NetworkLab.Host` get their host's own bus.
public enum InProcessSystemBus {
    /// This process's switch symlink.
    public static let linkPath = "\(NetworkLab.baseDirectory)/bus-\(getpid())"
    private static let lock = NSLock()

    /// The value of `DBUS_SYSTEM_BUS_ADDRESS` that points at the switch.
    static let address = "unix:path=\(linkPath)"

    /// Sets `DBUS_SYSTEM_BUS_ADDRESS` (once).
    static let installed: Void = {
        try? FileManager.default.createDirectory(atPath: NetworkLab.baseDirectory, withIntermediateDirectories: true)
        setenv("DBUS_SYSTEM_BUS_ADDRESS", address, 1)
    }()

    /// Runs `body` (which should create D-Bus clients, e.g. `MDNSClient()`) with this process's
    /// system bus pointing at the Unix socket `socketPath`.
    public static func connect<T, E: Error>(toSocket socketPath: String, _ body: () throws(E) -> T) throws(E) -> T {
        _ = installed
        lock.lock()
        defer { lock.unlock() }
        retarget(to: socketPath)
        return try body()
    }

    /// Runs `body` with the system bus pointing at a socket that does not exist, as on a machine
    /// where D-Bus is not running.
    public static func withUnreachableBus<T, E: Error>(_ body: () throws(E) -> T) throws(E) -> T {
        try connect(toSocket: "\(NetworkLab.baseDirectory)/no-such-bus-\(getpid())", body)
    }

    private static func retarget(to socketPath: String) {
        let temporary = "\(linkPath).new"
        unlink(temporary)
        symlink(socketPath, temporary)
        rename(temporary, linkPath)  // atomic replacement of the link
    }
}
