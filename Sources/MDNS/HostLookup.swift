internal import CAvahiClient

extension MDNSClient {
    /// Resolves a host name through avahi (multicast DNS), e.g. `emonpi.local` or
    /// `TRADFRI-Gateway-a0cc2b6f6b31.local`, and returns every address the host has, best first
    /// (same order as `MDNSService.addresses`).
    ///
    /// Returns once avahi has reported its cache and waited for answers from the network ("all
    /// for now", about a second) and at least one address is known; an answer arriving later,
    /// but before `timeout`, still counts.
    /// - Throws: `.notFound` if no address arrived within `timeout`; `.invalidArgument` for a
    ///   malformed name; the client's failure; `.cancelled`.
    public func resolveHost(
        _ hostName: String, protocol ipProtocol: MDNSIPProtocol = .any, timeout: Duration = .seconds(5)
    ) async throws(MDNSError) -> [String] {
        let lookup = HostLookup(owner: core, hostName: trimmedName(hostName), ipProtocol: ipProtocol)
        try lookup.start()
        defer { lookup.cancel() }
        let timer = Task {
            try? await Task.sleep(for: timeout)
            if !Task.isCancelled { lookup.timeOut() }
        }
        defer { timer.cancel() }
        return try await lookup.result().get()
    }
}

/// One `resolveHost` call: an A and/or AAAA record browser for the name. Every method runs with
/// the poll mutex held (callbacks) or takes it.
final class HostLookup: ClientChild, @unchecked Sendable {
    // @unchecked: every `var` is guarded by the poll mutex (see AvahiLoop); `let`s are Sendable.
    let owner: ClientCore
    let loop: AvahiLoop
    let hostName: String
    let ipProtocol: MDNSIPProtocol
    private var browsers: [OpaquePointer] = []
    /// Record browsers that have not said "all for now" yet.
    private var pending: Set<OpaquePointer> = []
    private var addresses: [(key: String, address: String)] = []
    private var outcome: Result<[String], MDNSError>?
    private var waiter: CheckedContinuation<Result<[String], MDNSError>, Never>?
    private var freed = false

    init(owner: ClientCore, hostName: String, ipProtocol: MDNSIPProtocol) {
        self.owner = owner
        self.loop = owner.loop
        self.hostName = hostName
        self.ipProtocol = ipProtocol
    }

    func start() throws(MDNSError) {
        try loop.withLock { () throws(MDNSError) in
            let client = try owner.usableClient()
            // Unretained: the owner's child table keeps this object alive while its browsers exist.
            let userdata = Unmanaged.passUnretained(self).toOpaque()
            for recordType in ipProtocol.addressRecordTypes {
                guard
                    let browser = avahi_record_browser_new(
                        client, unspecifiedInterface, ipProtocol.avahiProtocol, hostName, UInt16(AVAHI_DNS_CLASS_IN),
                        recordType, AvahiLookupFlags(0), hostRecordCallback, userdata)
                else {
                    let error = lastError(of: client, "resolving host '\(hostName)'")
                    freeBrowsers()
                    throw error
                }
                browsers.append(browser)
                pending.insert(browser)
            }
            owner.register(self)
        }
    }

    func cancel() {
        loop.withLock {
            finish(.failure(.cancelled))
            freeBrowsers()
            owner.unregister(self)
        }
    }

    private func freeBrowsers() {
        if !freed, owner.client != nil {
            for browser in browsers { avahi_record_browser_free(browser) }
        }
        freed = true
        browsers.removeAll()
        pending.removeAll()
    }

    func timeOut() {
        loop.withLock {
            if addresses.isEmpty {
                finish(.failure(.notFound("no answer for host '\(hostName)'")))
            } else {
                finish(.success(currentAddresses))
            }
        }
    }

    /// Waits for the outcome; cancelling the task ends the wait with `.cancelled`.
    func result() async -> Result<[String], MDNSError> {
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<[String], MDNSError>, Never>) in
                loop.withLock {
                    if Task.isCancelled { finish(.failure(.cancelled)) }
                    if let outcome {
                        continuation.resume(returning: outcome)
                    } else {
                        waiter = continuation
                    }
                }
            }
        } onCancel: {
            loop.withLock { finish(.failure(.cancelled)) }
        }
    }

    private var currentAddresses: [String] {
        var seen: Set<String> = []
        return sortedAddresses(addresses.map(\.address).filter { seen.insert($0).inserted })
    }

    /// Records the first outcome and hands it to the waiter, if one is waiting.
    private func finish(_ result: Result<[String], MDNSError>) {
        guard outcome == nil else { return }
        outcome = result
        waiter?.resume(returning: result)
        waiter = nil
    }

    // MARK: ClientChild

    func serverStateChanged(_ state: MDNSClient.State) {}

    func clientEnded(_ error: MDNSError, handlesFreed: Bool) {
        finish(.failure(error))
        if handlesFreed {
            freed = true
            browsers.removeAll()
        }
    }

    fileprivate func recordEvent(
        _ browser: OpaquePointer, interface: AvahiIfIndex, proto: AvahiProtocol, event: AvahiBrowserEvent,
        type: UInt16, rdata: UnsafeRawPointer?, size: Int
    ) {
        guard outcome == nil else { return }
        switch event {
        case AVAHI_BROWSER_NEW:
            guard let address = formatAddress(rdata: rdata, size: size, type: type, interface: interface) else {
                return
            }
            addresses.append(("\(interface)/\(proto)/\(address)", address))
        case AVAHI_BROWSER_REMOVE:
            guard let address = formatAddress(rdata: rdata, size: size, type: type, interface: interface) else {
                return
            }
            addresses.removeAll { $0.key == "\(interface)/\(proto)/\(address)" }
        case AVAHI_BROWSER_ALL_FOR_NOW, AVAHI_BROWSER_FAILURE:
            pending.remove(browser)
        default:  // CACHE_EXHAUSTED: the network has not been asked yet
            break
        }
        if pending.isEmpty, !addresses.isEmpty {
            finish(.success(currentAddresses))
        }
    }
}

/// `AvahiRecordBrowserCallback` for host lookups (poll thread, mutex held).
private let hostRecordCallback: AvahiRecordBrowserCallback = {
    browser, interface, proto, event, _, _, type, rdata, size, _, userdata in
    guard let browser, let userdata else { return }
    // Unretained: see HostLookup.start.
    let lookup = Unmanaged<HostLookup>.fromOpaque(userdata).takeUnretainedValue()
    lookup.recordEvent(browser, interface: interface, proto: proto, event: event, type: type, rdata: rdata, size: size)
}
