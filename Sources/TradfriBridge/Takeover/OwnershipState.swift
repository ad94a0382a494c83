import Logging
import MQTT

/// The ownership protocol of one instance, as a pure state machine: connection changes, received
/// messages and the passing of time go in; what to publish, what to report and what to log come
/// out. No I/O, no clock, no tasks: `GatewayOwnership` runs it on one task and feeds it the time
/// of its injected clock. The rules are written down in `GatewayOwnership`'s documentation; the
/// comments here say which rule a piece of code implements.
///
/// Times are `Duration`s since an arbitrary origin of one monotonic clock.
struct OwnershipState {
    enum Output: Equatable {
        case publish(MQTTMessage)
        /// This instance may drive the gateway from now on.
        case acquired(String)
        /// This instance must stop driving the gateway within `stopAllowance`.
        case lost(String, reason: String)
        case log(Logger.Level, String, [String: String])
    }

    /// One configured gateway as this instance sees it.
    struct Seat {
        /// The retained record as last received on this connection; nil when there is none.
        var record: OwnershipRecord?
        /// When `record` last changed (a silence is measured from here at the earliest).
        var changedAt: Duration = .zero
        /// When the owner named by `record` was last heard (a heartbeat).
        var ownerHeard: Duration?
        /// The record became `released` by its own owner, live on this connection.
        var releasedByOwner = false
        var role: Role = .standby
        var vacancy: Vacancy?
    }

    enum Role {
        case standby
        case claiming(Claim)
        case owner(Owned)
        /// Handing the gateway over (rule 6): `lost` was reported; the record is released once the
        /// bridge has surely stopped driving it.
        case yielding(Yield)

        var isStandby: Bool {
            if case .standby = self { return true }
            return false
        }

        /// Claiming or owning.
        var isHolding: Bool {
            switch self {
            case .claiming, .owner: true
            case .standby, .yielding: false
            }
        }
    }

    struct Yield {
        var token: String
        var since: String
        var releaseAt: Duration
    }

    /// A claim published and not yet confirmed.
    struct Claim {
        var token: String
        var since: String
        /// Wait `lease + stopAllowance` after the echo (someone may still drive the gateway), not
        /// only the race window.
        var long: Bool
        var publishedAt: Duration
        var echoedAt: Duration?
        var confirm: Sent?
    }

    struct Owned {
        var token: String
        var since: String
        /// Report `lost` at this time unless a heartbeat's echo moves it on.
        var leaseUntil: Duration
        var nextHeartbeat: Duration
        /// Heartbeats sent on this connection whose echo has not come back yet.
        var pending: [Sent] = []
        /// Our record, put back after a reconnect, has not come back yet.
        var restoring = false
    }

    struct Sent {
        var sequence: Int
        var at: Duration
    }

    /// A gateway this instance may claim: nobody live holds it.
    struct Vacancy {
        var since: Duration
        /// Found so on connecting (a previous owner may be about to reconnect): wait `syncHoldoff`.
        var atSync: Bool
        /// Its owner released it in a clean stop: it drives nothing, so only the race window is needed.
        var released: Bool
        /// A heartbeat from another instance was seen since: someone may still drive it.
        var activeSeen = false
    }

    let instance: String
    /// Sorted: every instance claims in the same order.
    let gateways: [String]
    let topics: OwnershipTopics
    let settings: GatewayOwnership.Settings
    /// A new unique token (claims, sessions).
    var makeToken: () -> String
    /// The wall-clock time for `since` fields (ISO 8601).
    var wallClock: () -> String

    private(set) var connected = false
    private(set) var session: String?
    private var sessionSince = ""
    /// When this instance's own record came back on this connection: everything retained has
    /// arrived before it. Nil while not synced.
    private(set) var syncedAt: Duration?
    private(set) var stopped = false
    /// Instance records present (nil value: present but unreadable).
    private(set) var instances: [String: InstanceRecord?] = [:]
    /// When an instance's record was seen deleted on this connection (its will, or a clean stop).
    private var goneAt: [String: Duration] = [:]
    private(set) var seats: [String: Seat] = [:]
    /// Records of gateways this instance is not configured for, as last received.
    private var others: [String: OwnershipRecord] = [:]
    private var nextSequence = 1
    /// The freshness check under way (rule 7): its number and when it was sent.
    private var check: (number: Int, sentAt: Duration)?
    /// True only while evaluating right after a check came back.
    private var fresh = false

    init(
        instance: String, gateways: [String], topics: OwnershipTopics, settings: GatewayOwnership.Settings,
        makeToken: @escaping () -> String, wallClock: @escaping () -> String
    ) {
        self.instance = instance
        self.gateways = Array(Set(gateways)).sorted()
        self.topics = topics
        self.settings = settings
        self.makeToken = makeToken
        self.wallClock = wallClock
        for id in self.gateways { seats[id] = Seat() }
    }

    var owned: [String] {
        gateways.filter {
            if case .owner = seats[$0]?.role { return true }
            return false
        }
    }

    // MARK: Inputs

    /// The ownership connection is up (and subscribed): announce this instance with a new session.
    /// Its record coming back is the sign that every retained record has arrived.
    mutating func connected(now: Duration) -> [Output] {
        guard !stopped else { return [] }
        connected = true
        syncedAt = nil
        session = makeToken()
        sessionSince = wallClock()
        var out: [Output] = [.publish(ownInstanceRecord().message(topics))]
        advance(now, &out)
        return out
    }

    /// The connection is gone: forget what it showed (it comes again on the next one). Claims end;
    /// ownerships continue until their lease runs out.
    mutating func disconnected(now: Duration) -> [Output] {
        connected = false
        syncedAt = nil
        check = nil
        instances = [:]
        goneAt = [:]
        others = [:]
        var out: [Output] = []
        for id in gateways {
            guard var seat = seats[id] else { continue }
            seat.record = nil
            seat.ownerHeard = nil
            seat.releasedByOwner = false
            seat.vacancy = nil
            switch seat.role {
            case .claiming:
                seat.role = .standby
                out.append(.log(.info, "claim abandoned: the broker connection was lost", ["gateway.id": id]))
            case .owner(var owned):
                // Their echoes will not come; the lease runs on from the last one.
                owned.pending = []
                owned.restoring = false
                seat.role = .owner(owned)
            case .standby, .yielding:
                break
            }
            seats[id] = seat
        }
        advance(now, &out)
        return out
    }

    mutating func received(topic: String, payload: [UInt8], now: Duration) -> [Output] {
        guard !stopped, connected else { return [] }
        var out: [Output] = []
        switch topics.parse(topic) {
        case .instance(let id):
            instanceRecord(id, payload: payload, now: now, &out)
        case .gateway(let id):
            switch GatewayMessage(payload: payload) {
            case .deleted: record(id, nil, now: now, &out)
            case .record(let record): self.record(id, record, now: now, &out)
            case .unreadable:
                record(id, OwnershipRecord(state: .owned, owner: "", token: "", since: ""), now: now, &out)
            case .heartbeat(let heartbeat): self.heartbeat(id, heartbeat, now: now, &out)
            }
        case nil:
            break
        }
        advance(now, &out)
        return out
    }

    /// Time has passed (a deadline of `nextDeadline` came).
    mutating func tick(now: Duration) -> [Output] {
        guard !stopped else { return [] }
        var out: [Output] = []
        advance(now, &out)
        return out
    }

    /// Ends the protocol for this instance. Every ownership is reported lost. Graceful: records of
    /// claims and ownerships are marked `released` (the caller has stopped driving them), so
    /// another instance takes them over at once; otherwise they stay, and the others wait the full
    /// settle time. Either way the instance record is deleted.
    mutating func stop(graceful: Bool, now: Duration) -> [Output] {
        guard !stopped else { return [] }
        stopped = true
        var out: [Output] = []
        for id in gateways {
            guard var seat = seats[id] else { continue }
            switch seat.role {
            case .owner(let owned):
                out.append(.lost(id, reason: "stopping"))
                if graceful, connected, seat.record?.token == owned.token {
                    out.append(.publish(released(token: owned.token, since: owned.since).message(topics, gateway: id)))
                }
            case .claiming(let claim):
                if graceful, connected, seat.record?.token == claim.token {
                    out.append(.publish(givenUp(claim).message(topics, gateway: id)))
                }
            case .yielding(let yield):
                if graceful, connected, seat.record?.token == yield.token {
                    out.append(.publish(released(token: yield.token, since: yield.since).message(topics, gateway: id)))
                }
            case .standby:
                break
            }
            seat.role = .standby
            seats[id] = seat
        }
        if connected { out.append(.publish(InstanceRecord.deletion(topics, instance: instance, qos: .atLeastOnce))) }
        return out
    }

    // MARK: Messages

    private mutating func instanceRecord(_ id: String, payload: [UInt8], now: Duration, _ out: inout [Output]) {
        guard !payload.isEmpty else {
            instances[id] = nil
            goneAt[id] = now
            // Only a heartbeat from after this counts as hearing from it again.
            for gateway in gateways where seats[gateway]?.record?.owner == id { seats[gateway]?.ownerHeard = nil }
            if id == instance, syncedAt != nil {
                // Our record went (a late will of an earlier connection, or someone cleaning up):
                // the others would take us for gone.
                out.append(.publish(ownInstanceRecord().message(topics)))
            }
            return
        }
        let record = InstanceRecord(payload: payload)
        instances[id] = .some(record)
        goneAt[id] = nil
        guard id == instance, let record, record.session == session else { return }
        if syncedAt == nil {
            syncedAt = now
            synced(now, &out)
        } else if let check, InstanceRecord.check(in: payload) == check.number {
            // Rule 7: everything processed before the check has arrived; decide now.
            self.check = nil
            fresh = true
            evaluate(now, atSync: false, &out)
            fresh = false
        }
    }

    /// Everything retained has arrived on this connection.
    private mutating func synced(_ now: Duration, _ out: inout [Output]) {
        out.append(
            .log(.debug, "ownership records read", ["instances": instances.keys.sorted().joined(separator: ",")]))
        for id in gateways {
            guard var seat = seats[id], case .owner(var owned) = seat.role else { continue }
            if seat.record == nil {
                // The broker lost its retained records (a restart without persistence): put ours back.
                owned.restoring = true
                seat.role = .owner(owned)
                seats[id] = seat
                out.append(.publish(owning(token: owned.token, since: owned.since).message(topics, gateway: id)))
                out.append(.log(.info, "ownership record restored", ["gateway.id": id]))
            }
        }
        for (id, record) in others.sorted(by: { $0.key < $1.key })
        where record.owner == instance && record.state == .owned {
            // A gateway this instance no longer serves (its configuration changed): hand it over.
            out.append(.publish(released(token: record.token, since: record.since).message(topics, gateway: id)))
            out.append(.log(.info, "releasing a gateway this instance is not configured for", ["gateway.id": id]))
        }
        evaluate(now, atSync: true, &out)
    }

    private mutating func record(_ id: String, _ record: OwnershipRecord?, now: Duration, _ out: inout [Output]) {
        guard var seat = seats[id] else {
            others[id] = record
            if syncedAt != nil, let record, record.owner == instance, record.state == .owned {
                out.append(.publish(released(token: record.token, since: record.since).message(topics, gateway: id)))
            }
            return
        }
        let previous = seat.record
        seat.record = record
        seat.changedAt = now
        seat.ownerHeard = nil
        // Rule: a release counts as such only from the owner of the record it replaces.
        seat.releasedByOwner =
            syncedAt != nil && record?.state == .released && previous?.state == .owned
            && previous?.owner == record?.owner && previous?.token == record?.token
        let ours = record.map { $0.state == .owned && $0.owner == instance } ?? false
        // Rule 1: the last record wins. A record that arrives before ours came back was processed
        // before ours, so ours replaces it; one that arrives after replaces ours.
        switch seat.role {
        case .claiming(var claim):
            if ours, record?.token == claim.token {
                if claim.echoedAt == nil { claim.echoedAt = now }
                seat.role = .claiming(claim)
            } else if claim.echoedAt != nil {
                // A claim overtaken stands back before driving anything.
                seat.role = .standby
                out.append(
                    .log(.info, "claim overtaken", ["gateway.id": id, "takeover.owner": record?.owner ?? "none"]))
            }
        case .owner(var owned):
            if ours, record?.token == owned.token {
                owned.restoring = false
                seat.role = .owner(owned)
            } else if !owned.restoring {
                seat.role = .standby
                let reason: String
                if let record, record.state == .owned, !record.owner.isEmpty {
                    reason = "taken over by \(record.owner)"
                } else {
                    reason = "ownership record replaced"
                }
                out.append(.lost(id, reason: reason))
            }
        case .yielding(let yield):
            if record?.token != yield.token { seat.role = .standby }  // nothing left to release
        case .standby:
            break
        }
        seats[id] = seat
    }

    private mutating func heartbeat(_ id: String, _ heartbeat: OwnershipHeartbeat, now: Duration, _ out: inout [Output])
    {
        guard var seat = seats[id] else { return }
        defer { seats[id] = seat }
        guard heartbeat.owner != instance else {
            switch seat.role {
            case .owner(var owned) where heartbeat.token == owned.token:
                // Rule (lease): the broker had processed the heartbeat sent at `sent.at`, and
                // nothing replaced our record before it.
                if let sent = owned.pending.first(where: { $0.sequence == heartbeat.sequence }) {
                    owned.leaseUntil = max(owned.leaseUntil, sent.at + settings.lease)
                    owned.pending.removeAll { $0.sequence <= heartbeat.sequence }
                    seat.role = .owner(owned)
                }
            case .claiming(var claim) where heartbeat.token == claim.token:
                guard let confirm = claim.confirm, confirm.sequence == heartbeat.sequence else { return }
                if now < confirm.at + settings.lease {
                    seat.role = .owner(
                        Owned(
                            token: claim.token, since: claim.since, leaseUntil: confirm.at + settings.lease,
                            nextHeartbeat: confirm.at + settings.heartbeatInterval))
                    out.append(.acquired(id))
                } else {
                    claim.confirm = nil  // too late to prove anything: another one goes out
                    seat.role = .claiming(claim)
                }
            default:
                break
            }
            return
        }
        if heartbeat.owner == seat.record?.owner { seat.ownerHeard = now }
        // Someone drives or is about to drive the gateway: a claim waits the full settle time.
        seat.vacancy?.activeSeen = true
        if case .claiming(var claim) = seat.role, !claim.long {
            claim.long = true
            claim.confirm = nil  // a confirmation sent before this proves too little now
            seat.role = .claiming(claim)
        }
    }

    // MARK: Time

    /// Heartbeats, lease expiry, settled claims, then new claims.
    private mutating func advance(_ now: Duration, _ out: inout [Output]) {
        guard !stopped else { return }
        for id in gateways {
            guard var seat = seats[id] else { continue }
            switch seat.role {
            case .owner(var owned):
                if now >= owned.leaseUntil {
                    seat.role = .standby
                    out.append(.lost(id, reason: "lease expired: the broker confirmed nothing for \(settings.lease)"))
                } else if connected, syncedAt != nil, now >= owned.nextHeartbeat {
                    let sent = Sent(sequence: sequence(), at: now)
                    owned.pending.append(sent)
                    owned.nextHeartbeat = now + settings.heartbeatInterval
                    out.append(.publish(heartbeatMessage(id, token: owned.token, sequence: sent.sequence)))
                    seat.role = .owner(owned)
                }
            case .claiming(var claim):
                if let echoedAt = claim.echoedAt {
                    let settled = echoedAt + (claim.long ? settings.takeoverSettle : settings.raceWindow)
                    if let confirm = claim.confirm, now >= confirm.at + settings.lease {
                        claim.confirm = nil
                    }
                    if claim.confirm == nil, now >= settled {
                        // Rule: the echo of a heartbeat sent after the settle time proves that no
                        // record replaced ours before the broker processed it.
                        let sent = Sent(sequence: sequence(), at: now)
                        claim.confirm = sent
                        out.append(.publish(heartbeatMessage(id, token: claim.token, sequence: sent.sequence)))
                    }
                    seat.role = .claiming(claim)
                } else if now >= claim.publishedAt + settings.lease {
                    seat.role = .standby
                    out.append(.log(.warning, "claim not echoed by the broker; trying again", ["gateway.id": id]))
                }
            case .yielding(let yield):
                if now >= yield.releaseAt {
                    seat.role = .standby
                    if connected, syncedAt != nil, seat.record?.token == yield.token {
                        out.append(
                            .publish(released(token: yield.token, since: yield.since).message(topics, gateway: id)))
                    }
                }
            case .standby:
                break
            }
            seats[id] = seat
        }
        handOver(now, &out)
        evaluate(now, atSync: false, &out)
    }

    /// Rule 6: what another instance should serve with the rest of the set goes to it. The leader
    /// of a set is the instance holding its first gateway.
    private func leader(for id: String) -> String? {
        guard syncedAt != nil, let first = gateways.first, id != first, let seat = seats[first],
            !seat.role.isHolding, let record = seat.record, record.state == .owned, record.owner != instance,
            let present = instances[record.owner], let leader = present, leader.gateways.contains(id)
        else { return nil }
        return record.owner
    }

    private mutating func handOver(_ now: Duration, _ out: inout [Output]) {
        for id in gateways {
            guard var seat = seats[id], seat.role.isHolding, let leader = leader(for: id) else { continue }
            switch seat.role {
            case .claiming(let claim):
                seat.role = .standby
                if connected {
                    // Never driven by us: given up at once (after our record, which may still be on its way).
                    out.append(.publish(givenUp(claim).message(topics, gateway: id)))
                }
            case .owner(let owned):
                seat.role = .yielding(
                    Yield(token: owned.token, since: owned.since, releaseAt: now + settings.stopAllowance))
                out.append(.lost(id, reason: "handed over to \(leader), which serves the rest of the set"))
            default:
                continue
            }
            out.append(.log(.info, "handing over a gateway", ["gateway.id": id, "takeover.owner": leader]))
            seats[id] = seat
        }
    }

    /// Rules for claiming, for every gateway this instance stands by for.
    private mutating func evaluate(_ now: Duration, atSync: Bool, _ out: inout [Output]) {
        guard connected, let syncedAt, !stopped else { return }
        for id in gateways {
            guard var seat = seats[id], seat.role.isStandby else { continue }
            if let cause = vacancyCause(seat, now: now, syncedAt: syncedAt) {
                if seat.vacancy == nil {
                    seat.vacancy = Vacancy(since: now, atSync: atSync, released: cause == .released)
                    out.append(
                        .log(
                            .debug, "gateway without a live owner",
                            ["gateway.id": id, "cause": "\(cause)", "takeover.owner": seat.record?.owner ?? "none"]))
                }
            } else {
                seat.vacancy = nil
            }
            seats[id] = seat
        }
        let holding = gateways.contains { seats[$0]?.role.isHolding == true }
        let ready = gateways.filter { id in
            guard let seat = seats[id], seat.role.isStandby, let vacancy = seat.vacancy, leader(for: id) == nil
            else { return false }
            return now >= readyTime(vacancy, holding: holding)
        }
        // Rule 6: holding nothing, start with the first gateway in the common order; the rest
        // once that claim stands.
        let wanted = holding ? (anchorSettled(now) ? ready : []) : Array(ready.prefix(1))
        guard !wanted.isEmpty else { return }
        guard fresh || atSync else {
            // Rule 7: a claim is decided on a view that is known to be current. (A process that
            // was frozen, or a connection that lags, may still have a dead owner's heartbeats or
            // a new owner's record on the way.)
            if let check, now < check.sentAt + settings.lease { return }
            let number = sequence()
            check = (number, now)
            out.append(.publish(ownInstanceRecord().check(topics, number)))
            return
        }
        for id in wanted { claim(id, now: now, &out) }
    }

    enum VacancyCause: Equatable, CustomStringConvertible {
        case noRecord, released, removed, mine, ownerGone, silent

        var description: String {
            switch self {
            case .noRecord: "no record"
            case .released: "released by its owner"
            case .removed: "record removed"
            case .mine: "a record of this instance it does not hold"
            case .ownerGone: "owner gone"
            case .silent: "owner silent"
            }
        }
    }

    private func vacancyCause(_ seat: Seat, now: Duration, syncedAt: Duration) -> VacancyCause? {
        guard let record = seat.record else { return .noRecord }
        if record.state != .owned { return seat.releasedByOwner ? .released : .removed }
        if record.owner == instance { return .mine }
        if instances[record.owner] == nil {
            // Rule 4: gone, unless it is heard again at once. (Mosquitto publishes every client's
            // will when it shuts down; the owner puts back a record deleted under it.)
            let gone = goneAt[record.owner] ?? syncedAt
            if now >= gone + settings.goneGrace, seat.ownerHeard == nil { return .ownerGone }
            return nil
        }
        if now >= silenceReference(seat, syncedAt: syncedAt) + settings.ownerSilence { return .silent }
        return nil
    }

    private func silenceReference(_ seat: Seat, syncedAt: Duration) -> Duration {
        max(seat.changedAt, syncedAt, seat.ownerHeard ?? .zero)
    }

    private func readyTime(_ vacancy: Vacancy, holding: Bool) -> Duration {
        var time = vacancy.since
        if vacancy.atSync { time = max(time, vacancy.since + settings.syncHoldoff) }
        if !holding, let claimed = othersLatestClaim { time = max(time, claimed + settings.deferral) }
        return time
    }

    /// When another live instance last claimed one of this instance's gateways, if one holds (or
    /// claims) any: it is probably configured for the rest too and claims them in a moment.
    private var othersLatestClaim: Duration? {
        gateways.compactMap { id -> Duration? in
            guard let seat = seats[id], let record = seat.record, record.state == .owned, record.owner != instance,
                instances[record.owner] != nil
            else { return nil }
            return seat.changedAt
        }.max()
    }

    /// The first claim of a round survived the race window (or something is owned already): claim the rest.
    private func anchorSettled(_ now: Duration) -> Bool {
        gateways.contains { id in
            switch seats[id]?.role {
            case .owner: return true
            case .claiming(let claim): return claim.echoedAt.map { now >= $0 + settings.raceWindow } ?? false
            default: return false
            }
        }
    }

    private mutating func claim(_ id: String, now: Duration, _ out: inout [Output]) {
        guard var seat = seats[id], let vacancy = seat.vacancy else { return }
        let long = vacancy.atSync || !vacancy.released || vacancy.activeSeen
        let claim = Claim(token: makeToken(), since: wallClock(), long: long, publishedAt: now)
        seat.role = .claiming(claim)
        seat.vacancy = nil
        seats[id] = seat
        out.append(.publish(owning(token: claim.token, since: claim.since).message(topics, gateway: id)))
        out.append(
            .log(
                .info, "claiming gateway",
                [
                    "gateway.id": id, "takeover.previous_owner": seat.record?.owner ?? "none",
                    "settle": long ? "full" : "race window",
                ]))
    }

    // MARK: Deadlines

    /// The next time `tick` has something to do, if any.
    func nextDeadline(after now: Duration) -> Duration? {
        var candidates: [Duration] = []
        if let check { candidates.append(check.sentAt + settings.lease) }
        for id in gateways {
            guard let seat = seats[id] else { continue }
            switch seat.role {
            case .owner(let owned):
                candidates.append(owned.leaseUntil)
                if connected, syncedAt != nil { candidates.append(owned.nextHeartbeat) }
            case .claiming(let claim):
                if let echoedAt = claim.echoedAt {
                    candidates.append(echoedAt + settings.raceWindow)
                    if let confirm = claim.confirm {
                        candidates.append(confirm.at + settings.lease)
                    } else {
                        candidates.append(echoedAt + (claim.long ? settings.takeoverSettle : settings.raceWindow))
                    }
                } else {
                    candidates.append(claim.publishedAt + settings.lease)
                }
            case .yielding(let yield):
                candidates.append(yield.releaseAt)
            case .standby:
                guard connected, let syncedAt, !stopped else { break }
                if let vacancy = seat.vacancy {
                    candidates.append(vacancy.since + settings.syncHoldoff)
                    if let claimed = othersLatestClaim { candidates.append(claimed + settings.deferral) }
                } else if let record = seat.record {
                    candidates.append(silenceReference(seat, syncedAt: syncedAt) + settings.ownerSilence)
                    if instances[record.owner] == nil {
                        candidates.append((goneAt[record.owner] ?? syncedAt) + settings.goneGrace)
                    }
                }
            }
        }
        return candidates.filter { $0 > now }.min()
    }

    // MARK: Messages out

    private func ownInstanceRecord() -> InstanceRecord {
        InstanceRecord(instance: instance, session: session ?? "", since: sessionSince, gateways: gateways)
    }

    private func owning(token: String, since: String) -> OwnershipRecord {
        OwnershipRecord(state: .owned, owner: instance, token: token, since: since)
    }

    private func released(token: String, since: String) -> OwnershipRecord {
        OwnershipRecord(state: .released, owner: instance, token: token, since: since)
    }

    /// A claim given up: `released` only if nobody can have been driving the gateway (its previous
    /// owner released it and no heartbeat was seen since), else `withdrawn`.
    private func givenUp(_ claim: Claim) -> OwnershipRecord {
        OwnershipRecord(
            state: claim.long ? .withdrawn : .released, owner: instance, token: claim.token, since: claim.since)
    }

    private func heartbeatMessage(_ id: String, token: String, sequence: Int) -> MQTTMessage {
        OwnershipHeartbeat(sequence: sequence, owner: instance, token: token).message(topics, gateway: id)
    }

    private mutating func sequence() -> Int {
        defer { nextSequence += 1 }
        return nextSequence
    }
}
