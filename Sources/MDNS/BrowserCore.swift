internal import CAvahiClient

/// The C side of one `MDNSBrowser`: a service browser, a resolver per sighting of an instance,
/// and record browsers that keep each instance's addresses and TXT record current.
///
/// avahi reports an instance once per interface and IP protocol it was seen on (a "sighting").
/// Each sighting is resolved once (SRV, TXT, one address). After the first resolution, record
/// browsers watch the host's A/AAAA records (all addresses, and changes such as a new DHCP
/// lease) and the instance's TXT record (avahi's resolver does not follow TXT changes). An
/// instance is reported `.found` when every sighting known so far has resolved (or failed) and
/// the address browsers have reported avahi's cache, so the first report carries every address
/// avahi knows.
///
/// Threading: every method runs with the poll mutex held: the `*Event` methods are called by C
/// callbacks on the poll thread, the rest through `loop.withLock`.
final class BrowserCore: ClientChild, @unchecked Sendable {
    // @unchecked: every `var` is guarded by the poll mutex (see AvahiLoop); `let`s are Sendable.
    private struct InstanceKey: Hashable {
        var name: String
        var type: String
        var domain: String
    }

    private struct Sighting: Hashable {
        var interface: AvahiIfIndex
        var proto: AvahiProtocol
    }

    private struct Resolution {
        var hostName: String
        var port: UInt16
        var txt: [String: String]
        var address: String?
    }

    private enum SightingState {
        case resolving(OpaquePointer)
        case resolved(Resolution)
        case failed
    }

    private final class Instance {
        var sightings: [(sighting: Sighting, state: SightingState)] = []
        var hostName: String?
        var txtBrowser: OpaquePointer?
        /// TXT records present in avahi's cache, oldest first; the newest is current. (On a TXT
        /// change the new record arrives before the old one is flushed.)
        var txtRecords: [(sighting: Sighting, rdata: [UInt8])] = []
        var reported: MDNSService?

        var isResolving: Bool {
            sightings.contains { if case .resolving = $0.state { true } else { false } }
        }
    }

    private final class HostRecords {
        var browsers: [OpaquePointer] = []
        /// Address browsers that have not yet reported the end of avahi's cache.
        var pending: Set<OpaquePointer> = []
        var addresses: [(sighting: Sighting, address: String)] = []
        var users: Set<InstanceKey> = []
    }

    private enum RecordRole {
        case hostAddresses(String)
        case txt(InstanceKey)
    }

    let owner: ClientCore
    let loop: AvahiLoop
    let type: String
    let domain: String?
    let ipProtocol: MDNSIPProtocol
    private let sink: AsyncStream<MDNSBrowseEvent>.Continuation

    private var browser: OpaquePointer?
    /// Events stop (stream finished) once ended; C objects are freed separately (see `cancel`).
    private var ended = false
    private(set) var failure: MDNSError?
    private var sawAllForNow = false
    private var instances: [InstanceKey: Instance] = [:]
    private var resolvers: [OpaquePointer: (key: InstanceKey, sighting: Sighting)] = [:]
    private var hosts: [String: HostRecords] = [:]
    private var recordRoles: [OpaquePointer: RecordRole] = [:]
    private var settleWaiters: [Int: CheckedContinuation<Void, Never>] = [:]
    private var nextWaiter = 0

    init(
        owner: ClientCore, type: String, domain: String?, ipProtocol: MDNSIPProtocol,
        sink: AsyncStream<MDNSBrowseEvent>.Continuation
    ) {
        self.owner = owner
        self.loop = owner.loop
        self.type = type
        self.domain = domain
        self.ipProtocol = ipProtocol
        self.sink = sink
    }

    private var userdata: UnsafeMutableRawPointer {
        // Unretained: the owner's child table holds this core until its C objects are freed.
        Unmanaged.passUnretained(self).toOpaque()
    }

    func start() throws(MDNSError) {
        try loop.withLock { () throws(MDNSError) in
            let client = try owner.usableClient()
            guard
                let browser = avahi_service_browser_new(
                    client, unspecifiedInterface, ipProtocol.avahiProtocol, type, domain, AvahiLookupFlags(0),
                    serviceBrowserCallback, userdata)
            else {
                let error = lastError(of: client, "browsing '\(type)'")
                end(error)
                throw error
            }
            self.browser = browser
            owner.register(self)
        }
    }

    /// Stops browsing: frees every C object (unless the client already freed them) and finishes
    /// the stream. Not on the poll thread.
    func cancel() {
        loop.withLock {
            end(nil)
            if owner.client != nil {
                for resolver in resolvers.keys { avahi_service_resolver_free(resolver) }
                for recordBrowser in recordRoles.keys { avahi_record_browser_free(recordBrowser) }
                if let browser { avahi_service_browser_free(browser) }
            }
            forgetHandles()
            owner.unregister(self)
        }
    }

    private func forgetHandles() {
        browser = nil
        resolvers.removeAll()
        recordRoles.removeAll()
        hosts.removeAll()
        for instance in instances.values { instance.txtBrowser = nil }
    }

    /// Finishes the stream, after a terminal `.failure` if there is an error.
    private func end(_ error: MDNSError?) {
        guard !ended else { return }
        ended = true
        if let error {
            failure = error
            sink.yield(.failure(error))
        }
        sink.finish()
        resumeSettleWaiters()
    }

    // MARK: ClientChild

    func serverStateChanged(_ state: MDNSClient.State) {}

    func clientEnded(_ error: MDNSError, handlesFreed: Bool) {
        // Closing the client is not a failure: the stream just finishes, as after cancel().
        end(error == .closed ? nil : error)
        if handlesFreed { forgetHandles() }
    }

    // MARK: Service browser

    fileprivate func browserEvent(
        interface: AvahiIfIndex, proto: AvahiProtocol, event: AvahiBrowserEvent,
        name: String, type: String, domain: String
    ) {
        guard !ended else { return }
        let key = InstanceKey(name: name, type: type, domain: domain)
        let sighting = Sighting(interface: interface, proto: proto)
        switch event {
        case AVAHI_BROWSER_NEW:
            addSighting(sighting, of: key)
        case AVAHI_BROWSER_REMOVE:
            removeSighting(sighting, of: key)
        case AVAHI_BROWSER_ALL_FOR_NOW:
            if !sawAllForNow {
                sawAllForNow = true
                sink.yield(.allForNow)
            }
            checkSettled()
        case AVAHI_BROWSER_FAILURE:
            end(owner.client.map { lastError(of: $0, "browsing '\(self.type)'") } ?? .closed)
        default:  // CACHE_EXHAUSTED
            break
        }
    }

    private func addSighting(_ sighting: Sighting, of key: InstanceKey) {
        let instance = instances[key] ?? Instance()
        instances[key] = instance
        guard !instance.sightings.contains(where: { $0.sighting == sighting }), let client = owner.client else {
            return
        }
        guard
            let resolver = avahi_service_resolver_new(
                client, sighting.interface, sighting.proto, key.name, key.type, key.domain,
                ipProtocol.avahiProtocol, AvahiLookupFlags(0), serviceResolverCallback, userdata)
        else {
            instance.sightings.append((sighting, .failed))
            resolveFailed(key, instance, lastError(of: client, "resolving '\(key.name)'"))
            return
        }
        instance.sightings.append((sighting, .resolving(resolver)))
        resolvers[resolver] = (key, sighting)
    }

    private func removeSighting(_ sighting: Sighting, of key: InstanceKey) {
        guard let instance = instances[key],
            let index = instance.sightings.firstIndex(where: { $0.sighting == sighting })
        else { return }
        if case .resolving(let resolver) = instance.sightings[index].state {
            resolvers[resolver] = nil
            avahi_service_resolver_free(resolver)
        }
        instance.sightings.remove(at: index)
        if instance.sightings.isEmpty {
            removeInstance(key, instance)
        } else {
            report(key, instance)
        }
    }

    private func removeInstance(_ key: InstanceKey, _ instance: Instance) {
        instances[key] = nil
        if let txtBrowser = instance.txtBrowser {
            recordRoles[txtBrowser] = nil
            avahi_record_browser_free(txtBrowser)
        }
        if let hostName = instance.hostName { releaseHost(hostName, by: key) }
        if let last = instance.reported { sink.yield(.removed(last)) }
        checkSettled()
    }

    // MARK: Resolvers

    fileprivate func resolverEvent(
        _ resolver: OpaquePointer, event: AvahiResolverEvent, hostName: String, address: String?, port: UInt16,
        txt: [String: String]
    ) {
        guard !ended, let (key, sighting) = resolvers.removeValue(forKey: resolver) else { return }
        // A resolver is used once; freeing it inside its own callback is allowed.
        avahi_service_resolver_free(resolver)
        guard let instance = instances[key],
            let index = instance.sightings.firstIndex(where: { $0.sighting == sighting })
        else { return }
        guard event == AVAHI_RESOLVER_FOUND else {
            instance.sightings[index].state = .failed
            let error = owner.client.map { lastError(of: $0, "resolving '\(key.name)'") } ?? .closed
            resolveFailed(key, instance, error)
            return
        }
        instance.sightings[index].state = .resolved(
            Resolution(hostName: hostName, port: port, txt: txt, address: address))
        if instance.hostName != hostName {
            if let old = instance.hostName { releaseHost(old, by: key) }
            instance.hostName = hostName
            retainHost(hostName, by: key)
        }
        if instance.txtBrowser == nil {
            let fullName = serviceFullName(name: key.name, type: key.type, domain: key.domain)
            instance.txtBrowser = makeRecordBrowser(
                name: fullName, type: UInt16(AVAHI_DNS_TYPE_TXT), role: .txt(key))
        }
        report(key, instance)
    }

    /// Reports a resolve failure if the instance has nothing left that could still resolve.
    private func resolveFailed(_ key: InstanceKey, _ instance: Instance, _ error: MDNSError) {
        owner.logger.debug(
            "mDNS service did not resolve", metadata: ["mdns.service": "\(key.name)", "mdns.error": "\(error)"])
        let anyResolved = instance.sightings.contains { if case .resolved = $0.state { true } else { false } }
        if instance.reported == nil, !anyResolved, !instance.isResolving {
            sink.yield(.resolveFailed(name: key.name, error: error))
        }
        report(key, instance)
    }

    // MARK: Record browsers (host addresses, TXT)

    private func makeRecordBrowser(name: String, type: UInt16, role: RecordRole) -> OpaquePointer? {
        guard let client = owner.client else { return nil }
        guard
            let recordBrowser = avahi_record_browser_new(
                client, unspecifiedInterface, ipProtocol.avahiProtocol, name, UInt16(AVAHI_DNS_CLASS_IN), type,
                AvahiLookupFlags(0), recordBrowserCallback, userdata)
        else {
            owner.logger.debug(
                "avahi record browser failed",
                metadata: ["mdns.name": "\(name)", "mdns.error": "\(lastError(of: client, "record browser"))"])
            return nil
        }
        recordRoles[recordBrowser] = role
        return recordBrowser
    }

    private func retainHost(_ hostName: String, by key: InstanceKey) {
        if let records = hosts[hostName] {
            records.users.insert(key)
            return
        }
        let records = HostRecords()
        records.users = [key]
        hosts[hostName] = records
        for recordType in ipProtocol.addressRecordTypes {
            if let recordBrowser = makeRecordBrowser(name: hostName, type: recordType, role: .hostAddresses(hostName)) {
                records.browsers.append(recordBrowser)
                records.pending.insert(recordBrowser)
            }
        }
    }

    private func releaseHost(_ hostName: String, by key: InstanceKey) {
        guard let records = hosts[hostName] else { return }
        records.users.remove(key)
        guard records.users.isEmpty else { return }
        for recordBrowser in records.browsers {
            recordRoles[recordBrowser] = nil
            avahi_record_browser_free(recordBrowser)
        }
        hosts[hostName] = nil
    }

    fileprivate func recordEvent(
        _ recordBrowser: OpaquePointer, interface: AvahiIfIndex, proto: AvahiProtocol, event: AvahiBrowserEvent,
        type: UInt16, rdata: UnsafeRawPointer?, size: Int
    ) {
        guard !ended, let role = recordRoles[recordBrowser] else { return }
        let sighting = Sighting(interface: interface, proto: proto)
        switch role {
        case .hostAddresses(let hostName):
            guard let records = hosts[hostName] else { return }
            switch event {
            case AVAHI_BROWSER_NEW:
                guard let address = formatAddress(rdata: rdata, size: size, type: type, interface: interface),
                    !records.addresses.contains(where: { $0.sighting == sighting && $0.address == address })
                else { return }
                records.addresses.append((sighting, address))
            case AVAHI_BROWSER_REMOVE:
                guard let address = formatAddress(rdata: rdata, size: size, type: type, interface: interface)
                else { return }
                records.addresses.removeAll { $0.sighting == sighting && $0.address == address }
            default:  // CACHE_EXHAUSTED, ALL_FOR_NOW, FAILURE: the cache has been reported
                guard records.pending.remove(recordBrowser) != nil else { return }
            }
            for key in records.users {
                if let instance = instances[key] { report(key, instance) }
            }
        case .txt(let key):
            guard let instance = instances[key], let rdata else { return }
            let bytes = Array(UnsafeRawBufferPointer(start: rdata, count: size))
            switch event {
            case AVAHI_BROWSER_NEW:
                instance.txtRecords.removeAll { $0.sighting == sighting && $0.rdata == bytes }
                instance.txtRecords.append((sighting, bytes))
            case AVAHI_BROWSER_REMOVE:
                instance.txtRecords.removeAll { $0.sighting == sighting && $0.rdata == bytes }
            default:
                return
            }
            report(key, instance)
        }
    }

    // MARK: Reporting

    /// Emits `.found` or `.updated` if the instance is complete and differs from what was reported.
    private func report(_ key: InstanceKey, _ instance: Instance) {
        defer { checkSettled() }
        guard !ended, !instance.isResolving, let hostName = instance.hostName else { return }
        let resolved = instance.sightings.compactMap { entry -> (Sighting, Resolution)? in
            if case .resolved(let resolution) = entry.state { (entry.sighting, resolution) } else { nil }
        }
        guard let (sighting, resolution) = resolved.first else { return }
        let records = hosts[hostName]
        if let records, !records.pending.isEmpty { return }
        var addresses = unique(records?.addresses.map(\.address) ?? [])
        if addresses.isEmpty, instance.reported == nil {
            // No address records (yet): fall back to what the resolvers saw. Only for the first
            // report, so that an address that was withdrawn never comes back from a stale resolution.
            addresses = unique(resolved.compactMap(\.1.address))
        }
        // Between a host dropping its old address and announcing the new one there is none; wait.
        guard !addresses.isEmpty else { return }
        var txt = resolution.txt
        if let current = instance.txtRecords.last {
            txt = current.rdata.withUnsafeBytes { parseTXT(rdata: $0.baseAddress, size: $0.count) }
        }
        let service = MDNSService(
            name: key.name, type: key.type, domain: key.domain, hostName: hostName,
            addresses: sortedAddresses(addresses), port: resolution.port, txt: txt,
            interfaceIndex: sighting.interface)
        if instance.reported == nil {
            sink.yield(.found(service))
        } else if instance.reported != service {
            sink.yield(.updated(service))
        }
        instance.reported = service
    }

    var currentServices: [MDNSService] {
        instances.values.compactMap(\.reported).sorted { ($0.name, $0.type) < ($1.name, $1.type) }
    }

    // MARK: Settling (for the one-shot browse)

    /// Browsing has ended, or avahi said "all for now" and no instance is still being resolved.
    private var isSettled: Bool {
        if ended { return true }
        guard sawAllForNow else { return false }
        return instances.values.allSatisfy { instance in
            if instance.reported != nil { return true }
            if instance.isResolving { return false }
            if let hostName = instance.hostName, let records = hosts[hostName], !records.pending.isEmpty {
                return false
            }
            return true
        }
    }

    private func checkSettled() {
        if isSettled { resumeSettleWaiters() }
    }

    private func resumeSettleWaiters() {
        for waiter in settleWaiters.values { waiter.resume() }
        settleWaiters.removeAll()
    }

    /// Returns once the browser has settled (see `isSettled`), ended, or the task is cancelled.
    func waitUntilSettled() async {
        let id = loop.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                loop.withLock {
                    if isSettled || Task.isCancelled {
                        continuation.resume()
                    } else {
                        settleWaiters[id] = continuation
                    }
                }
            }
        } onCancel: {
            loop.withLock { settleWaiters.removeValue(forKey: id)?.resume() }
        }
    }
}

private func unique(_ values: [String]) -> [String] {
    var seen: Set<String> = []
    return values.filter { seen.insert($0).inserted }
}

// MARK: C callbacks (poll thread, mutex held). Every C string and buffer is copied before use
// leaves the callback.

private func browserCore(_ userdata: UnsafeMutableRawPointer?) -> BrowserCore? {
    guard let userdata else { return nil }
    // Unretained: the owner's child table keeps the core alive while any of its C objects exist,
    // and it is removed only under the mutex this callback holds.
    return Unmanaged<BrowserCore>.fromOpaque(userdata).takeUnretainedValue()
}

private let serviceBrowserCallback: AvahiServiceBrowserCallback = {
    _, interface, proto, event, name, type, domain, _, userdata in
    browserCore(userdata)?.browserEvent(
        interface: interface, proto: proto, event: event,
        name: copyString(name), type: copyString(type), domain: copyString(domain))
}

private let serviceResolverCallback: AvahiServiceResolverCallback = {
    resolver, interface, _, event, _, _, _, hostName, address, port, txt, _, userdata in
    guard let resolver else { return }
    browserCore(userdata)?.resolverEvent(
        resolver, event: event, hostName: copyString(hostName),
        address: address.map { formatAddress($0, interface: interface) }, port: port, txt: copyTXT(txt))
}

private let recordBrowserCallback: AvahiRecordBrowserCallback = {
    recordBrowser, interface, proto, event, _, _, type, rdata, size, _, userdata in
    guard let recordBrowser else { return }
    browserCore(userdata)?.recordEvent(
        recordBrowser, interface: interface, proto: proto, event: event, type: type, rdata: rdata, size: size)
}
