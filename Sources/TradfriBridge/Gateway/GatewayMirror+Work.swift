import CoAP
import Foundation
import HubModel
import TradfriModel

/// One observation of the current session.
@CoAPActor
final class Observation {
    var token: [UInt8] = []
    /// When the gateway last told us the resource's state (a notification or a re-read).
    var checked = ContinuousClock.now
    /// The gateway accepted the observation (it answered with an Observe option).
    var established = false
    nonisolated init() {}
}

/// A resource to observe, or to read again.
struct Work {
    var resource: ObservedResource
    var attempts = 0
}

/// How the mirror keeps observing everything: the work queue, re-reads, the rolling audit and
/// resync. Everything runs on the libcoap actor, in `serve()`, a child task of each gateway
/// session.
extension GatewayMirror {
    // MARK: Session

    /// Runs while one gateway session lasts (the link runs it as a child task of the session and
    /// cancels it when the session ends): observes everything afresh (the last session's
    /// observations died with it), then keeps working through what is to be observed or read
    /// again, one request at a time, until cancelled.
    public func serve() async {
        resetSession()
        isConnected = true
        fullReadPending = true
        syncStarted = .now
        let current = generation
        for resource in [ObservedResource.details, .notifications, .deviceList, .groupList] { enqueue(resource) }
        scheduleAudit()
        await withTaskCancellationHandler {
            await work(current)
        } onCancel: {
            Task { @CoAPActor [weak self] in self?.wakeWorker() }
        }
        if current == generation { resetSession() }
    }

    private func resetSession() {
        generation += 1
        isConnected = false
        isSynced = false
        wakeWorker()
        observations.removeAll()
        queue.removeAll()
        queued.removeAll()
        rereadReasons.removeAll()
        for timer in confirmations.values { timer.cancel() }
        confirmations.removeAll()
        auditTimer?.cancel()
        auditTimer = nil
        notFoundCounts.removeAll()
    }

    // MARK: The queue

    /// Observes `resource`, or reads it again (for `reason`) if it is observed already.
    func enqueue(_ resource: ObservedResource, reason: RereadReason? = nil) {
        guard isConnected else { return }
        if let reason, observations[resource]?.established == true, rereadReasons[resource] == nil {
            rereadReasons[resource] = reason
        }
        guard queued.insert(resource).inserted else { return }
        queue.append(Work(resource: resource))
        wakeWorker()
    }

    private func wakeWorker() {
        workerWake?.resume()
        workerWake = nil
    }

    private func work(_ current: Int) async {
        while current == generation, !Task.isCancelled {
            guard !queue.isEmpty else {
                drained()
                await withCheckedContinuation { (continuation: CheckedContinuation<Void, Never>) in
                    if queue.isEmpty, current == generation, !Task.isCancelled {
                        workerWake = continuation
                    } else {
                        continuation.resume()
                    }
                }
                continue
            }
            var item = queue.removeFirst()
            queued.remove(item.resource)
            working = true
            let done = await process(item.resource, current)
            working = false
            guard current == generation else { return }
            guard !done else { continue }
            // Failed (no answer in time): try again after the others, a little later each time.
            item.attempts += 1
            if item.attempts == 5 {
                logger.warning(
                    "the gateway keeps not answering for a resource; still trying",
                    metadata: ["path": "\(item.resource)"])
            }
            if queued.insert(item.resource).inserted { queue.append(item) }
            try? await CoAPTimer.sleep(for: .milliseconds(100 * min(item.attempts, 10)))
        }
    }

    /// Observes or re-reads one resource. True when done (also when there is nothing to do any
    /// more); false to try again.
    private func process(_ resource: ObservedResource, _ current: Int) async -> Bool {
        guard isListed(resource) else { return true }
        if let observation = observations[resource], observation.established {
            rereads += 1
            do {
                // The answer reaches the observation's handler as `.refreshed`.
                _ = try await link.refresh(token: observation.token, path: resource.path)
                return true
            } catch CoAPError.sessionClosed {
                return true
            } catch {
                return false
            }
        }
        return await register(resource, current)
    }

    private func register(_ resource: ObservedResource, _ current: Int) async -> Bool {
        let observation = Observation()
        observations[resource] = observation
        do {
            let (token, initial) = try await link.observe(resource.path) { [weak self, weak observation] event in
                guard let self, let observation, current == self.generation,
                    self.observations[resource] === observation
                else { return }
                self.observed(event, of: resource, observation)
            }
            guard current == generation else { return true }
            guard observations[resource] === observation else {
                // Removed while the registration was under way.
                link.cancelObservation(token: token)
                return true
            }
            observation.token = token
            observation.checked = .now
            guard initial.code.isSuccess else {
                observations[resource] = nil
                if initial.code == .notFound {
                    notFound(resource)
                } else {
                    logger.warning(
                        "gateway refused an observation", metadata: ["path": "\(resource)", "code": "\(initial.code)"])
                }
                return true
            }
            observation.established = initial.observe != nil
            if notFoundCounts.removeValue(forKey: resource) != nil {
                logger.info(
                    "an observation ended with 4.04 but the item is still listed; observing it again",
                    metadata: ["path": "\(resource)"])
            }
            if !initial.payload.isEmpty { apply(initial.payload, of: resource) }
            if case .group(let id) = resource { enqueue(.sceneList(group: id)) }
            return true
        } catch {
            if observations[resource] === observation { observations[resource] = nil }
            return (error as? CoAPError) == .sessionClosed
        }
    }

    /// A notification, a re-read answer, or the end of an observation.
    private func observed(_ event: CoAPObservationEvent, of resource: ObservedResource, _ observation: Observation) {
        switch event {
        case .notification(let response):
            observation.checked = .now
            handle(response, of: resource, reason: nil)
        case .refreshed(let response):
            observation.checked = .now
            handle(response, of: resource, reason: rereadReasons.removeValue(forKey: resource) ?? .audit)
        case .ended(let error):
            // A registration that failed is `register`'s business.
            guard observation.established else { return }
            observations[resource] = nil
            // The gateway ended it (a 4.04 was handled already) while the session lives on:
            // observe it again if it is still there.
            if error == nil, isListed(resource) { enqueue(resource) }
        }
    }

    private func handle(_ response: CoAPResponse, of resource: ObservedResource, reason: RereadReason?) {
        if response.code.isSuccess {
            guard !response.payload.isEmpty else { return }
            let changed = apply(response.payload, of: resource)
            guard changed, let reason, resource.reportsRepairs else { return }
            repaired(resource, reason: reason)
        } else if response.code == .notFound {
            observations[resource] = nil
            notFound(resource)
        }
    }

    private func repaired(_ resource: ObservedResource, reason: RereadReason) {
        repairs += 1
        let (kind, id): (String, Int) =
            switch resource {
            case .device(let id): ("device", id)
            case .group(let id): ("group", id)
            case .scene(let id, _): ("scene", id)
            case .sceneList(let group): ("scene list", group)
            default: ("list", 0)
            }
        logger.notice(
            "a re-read found a change the gateway had not notified",
            metadata: ["path": "\(resource)", "reason": "\(reason.rawValue)"])
        onChange(.repaired(Repair(kind: kind, id: id, name: name(of: resource), reason: reason)))
        if reason == .audit { notificationsStalled(resource) }
    }

    /// A periodic check found a change that no notification had brought: the gateway may have
    /// dropped observations without a word (what users of other integrations see as "no more
    /// updates until a restart"). Every observation is registered again with its own token (the
    /// re-registration answers the current state too), at most once per audit interval; items the
    /// gateway keeps silent about are still caught by the next periodic check.
    private func notificationsStalled(_ resource: ObservedResource) {
        let now = ContinuousClock.now
        if let last = lastStallRecovery, now - last < (settings.auditInterval ?? .seconds(600)) { return }
        lastStallRecovery = now
        let detail =
            "\(name(of: resource).map { "'\($0)' (\(resource))" } ?? "\(resource)") changed without a notification"
        logger.warning(
            "the gateway stopped notifying a change; observing everything again",
            metadata: ["path": "\(resource)"])
        onChange(.notificationsStalled(detail))
        for other in observations.keys.sorted(by: { $0.path < $1.path }) where other != resource {
            enqueue(other, reason: .stall)
        }
    }

    /// The gateway says `resource` does not exist. An item goes only once its list, read again,
    /// no longer names it (a gateway shutting down says 4.04 to every observer); one still
    /// listed is observed again, a few times at most.
    private func notFound(_ resource: ObservedResource) {
        observations[resource] = nil
        guard let list = resource.list else {
            if case .sceneList(let group) = resource { sceneListMissing(group: group) }
            return
        }
        let count = notFoundCounts[resource, default: 0] + 1
        notFoundCounts[resource] = count
        enqueue(list, reason: .gone)
        if count <= 3 {
            enqueue(resource)
        } else {
            logger.warning(
                "the gateway lists an item but answers 4.04 for it; leaving it to the next check",
                metadata: ["path": "\(resource)"])
        }
    }

    func stopObserving(_ resource: ObservedResource) {
        confirmations.removeValue(forKey: resource)?.cancel()
        guard let observation = observations.removeValue(forKey: resource), observation.established else { return }
        link.cancelObservation(token: observation.token)
    }

    /// The queue is empty: the first time in a session that is the end of the sync.
    private func drained() {
        guard isConnected else { return }
        if !isSynced {
            isSynced = true
            let statistics = link.statistics
            logger.info(
                "in sync with the gateway",
                metadata: [
                    "seconds": "\(((ContinuousClock.now - syncStarted) / .milliseconds(10)).rounded() / 100)",
                    "observed": "\(observedCount)", "devices": "\(devices.count)", "groups": "\(groups.count)",
                    "retransmissions": "\(statistics?.retransmissions ?? 0)",
                    "retransmission_timeout":
                        "\(statistics.map { ($0.retransmissionTimeout * 1000).rounded() / 1000 } ?? 0)",
                ])
            onChange(.synced)
        }
        if fullReadPending {
            fullReadPending = false
            lastFullRead = Date()
            onChange(.fullRead)
        }
        let waiting = drainWaiters
        drainWaiters.removeAll()
        for (_, continuation) in waiting { continuation.resume(returning: true) }
    }

    // MARK: Re-reading what may be stale

    /// A command was answered now: each of `resources` must notify its new state within
    /// `confirmWindow`, or it is read again.
    public func expectNotification(from resources: [ObservedResource]) {
        let since = ContinuousClock.now
        for resource in resources {
            confirmations[resource]?.cancel()
            confirmations[resource] = CoAPTimer(after: settings.confirmWindow) { [weak self] in
                guard let self else { return }
                self.confirmations[resource] = nil
                guard let observation = self.observations[resource], observation.checked < since else { return }
                self.enqueue(resource, reason: .command)
            }
        }
    }

    /// The devices a command to `target` changes.
    public func affected(by target: CommandQueue.Target) -> [ObservedResource] {
        switch target {
        case .device(let id): [.device(id)]
        case .group(let id): (groups[id]?.memberIDs ?? []).map { .device($0) }
        }
    }

    /// Reads one item again every `auditInterval / items`: the item heard from longest ago
    /// first. That also re-creates an observation the gateway dropped without telling.
    func scheduleAudit() {
        auditTimer?.cancel()
        auditTimer = nil
        guard let interval = settings.auditInterval, isConnected else { return }
        // Until the first sync is done the number of items is not known: look again shortly
        // (a step of the whole interval here once delayed the first check by an interval).
        let step =
            isSynced && !observations.isEmpty
            ? max(interval / observations.count, .seconds(1)) : min(interval, .seconds(5))
        auditTimer = CoAPTimer(after: step) { [weak self] in
            guard let self else { return }
            if self.isSynced, self.queue.isEmpty,
                let oldest = self.observations.filter({ $0.value.established }).min(by: {
                    $0.value.checked < $1.value.checked
                })
            {
                self.enqueue(oldest.key, reason: .audit)
            }
            self.scheduleAudit()
        }
    }

    /// Reads every observed resource again (and observes what was missing); returns once all of
    /// it is done, true, or false after `limit` (a session that ends meanwhile is synced anew by
    /// the next one, which the wait includes).
    public func resync(within limit: Duration) async -> Bool {
        guard isConnected else { return false }
        fullReadPending = true
        var resources: [ObservedResource] = [.deviceList, .groupList]
        resources += observations.keys.filter { $0 != .deviceList && $0 != .groupList }.sorted {
            $0.path < $1.path
        }
        for resource in resources { enqueue(resource, reason: .resync) }
        return await waitUntilDrained(within: limit)
    }

    private func waitUntilDrained(within limit: Duration) async -> Bool {
        if isSynced, queue.isEmpty, !working { return true }
        waiterCount += 1
        let id = waiterCount
        let timer = CoAPTimer(after: limit) { [weak self] in
            self?.drainWaiters.removeValue(forKey: id)?.resume(returning: false)
        }
        defer { timer.cancel() }
        return await withCheckedContinuation { drainWaiters[id] = $0 }
    }

    /// Asks the gateway for a device again (for `<name>/get`); the answer is applied like a
    /// notification and the device returned.
    public func reread(device id: Int) async throws -> Device? {
        if let observation = observations[.device(id)], observation.established {
            rereads += 1
            rereadReasons[.device(id)] = .request
            _ = try await link.refresh(token: observation.token, path: GatewayPath.device(id), priority: .command)
            return devices[id]
        }
        let response = try await link.request(.get, GatewayPath.device(id), priority: .command)
        guard response.code == .content else {
            if response.code == .notFound { removeDevice(id) }
            return nil
        }
        apply(response.payload, of: .device(id))
        return devices[id]
    }

    // MARK: Figures

    /// Reads waiting to be done (registrations and re-reads).
    public var pendingRereads: Int { queue.count + (working ? 1 : 0) }

    /// The longest time since the gateway last told us an observed item's state.
    public var oldestCheck: Duration? {
        observations.values.filter(\.established).map(\.checked).min().map { ContinuousClock.now - $0 }
    }

    public var observedCount: Int { observations.values.filter(\.established).count }
}
