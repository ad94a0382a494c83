internal import CAvahiClient

/// The C side of one `MDNSPublisher`: an avahi entry group holding one service (and optionally
/// address records for its host name).
///
/// Registration follows avahi's rules: entries are committed only while the daemon is running;
/// when the daemon re-registers its host name the group is reset and committed again once it is
/// running; a collision (on commit or later) renames the service with
/// `avahi_alternative_service_name` and commits again.
///
/// Threading: every method runs with the poll mutex held: `groupEvent` and the `ClientChild`
/// methods are called on the poll thread, the rest take the lock.
final class PublisherCore: ClientChild, @unchecked Sendable {
    // @unchecked: every `var` is guarded by the poll mutex (see AvahiLoop); `let`s are Sendable.
    private enum Phase {
        /// Not committed: waiting for the daemon to be running.
        case waiting
        case registering
        case registered
        /// Terminal.
        case ended(MDNSError)
    }

    /// More renames than this means something is wrong (a name that always collides).
    private static let maximumRenames = 50

    let owner: ClientCore
    let loop: AvahiLoop
    private let advertisement: MDNSAdvertisement
    private let sink: AsyncStream<MDNSPublishEvent>.Continuation
    private(set) var name: String
    private var txt: [String: String]
    private var group: OpaquePointer?
    private var phase: Phase = .waiting
    private var renames = 0
    private var waiters: [Int: CheckedContinuation<Result<String, MDNSError>, Never>] = [:]
    private var nextWaiter = 0

    init(owner: ClientCore, advertisement: MDNSAdvertisement, sink: AsyncStream<MDNSPublishEvent>.Continuation) {
        self.owner = owner
        self.loop = owner.loop
        self.advertisement = advertisement
        self.sink = sink
        self.name = advertisement.name
        self.txt = advertisement.txt
    }

    var isRegistered: Bool {
        if case .registered = phase { true } else { false }
    }

    func start() throws(MDNSError) {
        if !advertisement.addresses.isEmpty, advertisement.hostName == nil {
            throw .invalidArgument("addresses to publish need a host name")
        }
        try loop.withLock { () throws(MDNSError) in
            let client = try owner.usableClient()
            // Unretained: the owner's child table keeps this core alive while the group exists.
            let userdata = Unmanaged.passUnretained(self).toOpaque()
            guard let group = avahi_entry_group_new(client, entryGroupCallback, userdata) else {
                throw lastError(of: client, "creating an avahi entry group")
            }
            self.group = group
            if owner.state == .running {
                do throws(MDNSError) {
                    try commit()
                } catch {
                    avahi_entry_group_free(group)
                    self.group = nil
                    end(error)
                    throw error
                }
            }
            owner.register(self)
        }
    }

    /// Adds the service (renaming on a local collision) and any address records, then commits.
    private func commit() throws(MDNSError) {
        guard let group else { throw .closed }
        let ipProtocol = advertisement.ipProtocol.avahiProtocol
        while true {
            let list = makeStringList(txt)
            defer { avahi_string_list_free(list) }
            let result = avahi_entry_group_add_service_strlst(
                group, unspecifiedInterface, ipProtocol, AvahiPublishFlags(0), name, advertisement.type,
                advertisement.domain, advertisement.hostName, advertisement.port, list)
            if Int(result) == AVAHI_ERR_COLLISION {
                // Another group on this daemon already has the name.
                try rename()
                continue
            }
            try check(result, "publishing '\(name)' as \(advertisement.type)")
            break
        }
        if let hostName = advertisement.hostName {
            for text in advertisement.addresses {
                var address = try parseAddress(text)
                try check(
                    avahi_entry_group_add_address(
                        group, unspecifiedInterface, ipProtocol, AVAHI_PUBLISH_NO_REVERSE, hostName, &address),
                    "publishing address \(text) for \(hostName)")
            }
        }
        try check(avahi_entry_group_commit(group), "committing '\(name)'")
        phase = .registering
    }

    private func rename() throws(MDNSError) {
        renames += 1
        guard renames <= Self.maximumRenames, let alternative = avahi_alternative_service_name(name) else {
            throw .collision(name)
        }
        let old = name
        name = String(cString: alternative)
        avahi_free(alternative)
        owner.logger.notice(
            "mDNS service name in use, renaming", metadata: ["mdns.service": "\(old)", "mdns.renamed": "\(name)"])
        sink.yield(.renamed(from: old, to: name))
    }

    fileprivate func groupEvent(_ state: AvahiEntryGroupState, group: OpaquePointer) {
        guard group == self.group else { return }
        switch state {
        case AVAHI_ENTRY_GROUP_ESTABLISHED:
            phase = .registered
            owner.logger.debug("mDNS service registered", metadata: ["mdns.service": "\(name)"])
            sink.yield(.registered(name: name))
            resumeWaiters(.success(name))
        case AVAHI_ENTRY_GROUP_COLLISION:
            // Another host has the name: pick the alternative and register again.
            do throws(MDNSError) {
                try rename()
                avahi_entry_group_reset(group)
                try commit()
            } catch {
                end(error)
            }
        case AVAHI_ENTRY_GROUP_FAILURE:
            end(lastError(of: avahi_entry_group_get_client(group), "publishing '\(name)'"))
        default:  // UNCOMMITED, REGISTERING
            break
        }
    }

    // MARK: ClientChild

    func serverStateChanged(_ state: MDNSClient.State) {
        guard let group else { return }
        switch (state, phase) {
        case (.running, .waiting):
            do throws(MDNSError) {
                try commit()
            } catch {
                end(error)
            }
        case (.registering, .registering), (.registering, .registered),
            (.hostNameCollision, .registering), (.hostNameCollision, .registered):
            // avahi's rule: drop the entries while the daemon re-establishes its host name.
            avahi_entry_group_reset(group)
            phase = .waiting
            sink.yield(.withdrawn)
        default:
            break
        }
    }

    func clientEnded(_ error: MDNSError, handlesFreed: Bool) {
        end(error)
        if handlesFreed { group = nil }
    }

    // MARK: Calls from callers (take the lock)

    func update(txt newTXT: [String: String]) throws(MDNSError) {
        try loop.withLock { () throws(MDNSError) in
            if case .ended(let error) = phase { throw error }
            guard let group else { throw .closed }
            txt = newTXT
            switch phase {
            case .registering, .registered:
                let list = makeStringList(newTXT)
                defer { avahi_string_list_free(list) }
                try check(
                    avahi_entry_group_update_service_txt_strlst(
                        group, unspecifiedInterface, advertisement.ipProtocol.avahiProtocol, AvahiPublishFlags(0),
                        name, advertisement.type, advertisement.domain, list),
                    "updating the TXT record of '\(name)'")
            case .waiting, .ended:
                break  // used by the next commit
            }
        }
    }

    func withdraw() {
        loop.withLock {
            end(.closed)
            if let group, owner.client != nil {
                avahi_entry_group_free(group)
            }
            group = nil
            owner.unregister(self)
        }
    }

    func registrationTimedOut(after timeout: Duration) {
        loop.withLock {
            guard !isRegistered else { return }
            resumeWaiters(
                .failure(.timeout("registering '\(name)' as \(advertisement.type) took longer than \(timeout)")))
        }
    }

    func waitForRegistration() async -> Result<String, MDNSError> {
        let id = loop.withLock {
            nextWaiter += 1
            return nextWaiter
        }
        return await withTaskCancellationHandler {
            await withCheckedContinuation { (continuation: CheckedContinuation<Result<String, MDNSError>, Never>) in
                loop.withLock {
                    switch phase {
                    case .registered:
                        continuation.resume(returning: .success(name))
                    case .ended(let error):
                        continuation.resume(returning: .failure(error))
                    case .waiting, .registering:
                        if Task.isCancelled {
                            continuation.resume(returning: .failure(.cancelled))
                        } else {
                            waiters[id] = continuation
                        }
                    }
                }
            }
        } onCancel: {
            loop.withLock { waiters.removeValue(forKey: id)?.resume(returning: .failure(.cancelled)) }
        }
    }

    // MARK: Internals

    private func end(_ error: MDNSError) {
        if case .ended = phase { return }
        phase = .ended(error)
        if error != .closed {
            owner.logger.warning(
                "mDNS advertisement failed", metadata: ["mdns.service": "\(name)", "mdns.error": "\(error)"])
            sink.yield(.failure(error))
        }
        sink.finish()
        resumeWaiters(.failure(error))
    }

    private func resumeWaiters(_ result: Result<String, MDNSError>) {
        for waiter in waiters.values { waiter.resume(returning: result) }
        waiters.removeAll()
    }
}

/// `AvahiEntryGroupCallback` (poll thread, mutex held; also possibly inside `avahi_entry_group_new`
/// and `commit`, which run under the caller's lock).
private let entryGroupCallback: AvahiEntryGroupCallback = { group, state, userdata in
    guard let group, let userdata else { return }
    // Unretained: see PublisherCore.start.
    let core = Unmanaged<PublisherCore>.fromOpaque(userdata).takeUnretainedValue()
    core.groupEvent(state, group: group)
}
