import Foundation

/// The https clients pinned to checked addresses, one per host and at most `capacity` of them: a
/// host name can come from webhook data (`http: { url: "https://{{body.shop}}/…" }`), so the pool
/// must not grow with every name it is shown. The least recently used client goes first.
///
/// A client leaves the pool (evicted, or its host re-pinned) while requests may still run on it; it
/// is handed back for shutdown only when its last request has checked in. Generic over the client so
/// the bookkeeping is tested without a network.
struct PinnedClientPool<Client: AnyObject> {
    private struct Entry {
        var address: String
        var client: Client
        var lastUse: UInt64
        var inUse: Int
    }

    let capacity: Int
    private var entries: [String: Entry] = [:]
    /// Out of the pool, still serving requests: shut down at their last check-in.
    private var retiring: [ObjectIdentifier: (client: Client, inUse: Int)] = [:]
    private var tick: UInt64 = 0

    init(capacity: Int) {
        self.capacity = max(1, capacity)
    }

    /// Hosts in the pool, least recently used first.
    var hosts: [String] { entries.sorted { $0.value.lastUse < $1.value.lastUse }.map(\.key) }
    /// Clients out of the pool whose requests have not all ended.
    var retiringCount: Int { retiring.count }

    /// The client for `host`. Its pin is kept while the pinned address is still among `addresses`
    /// (each already checked by the guard), so a round-robin DNS answer does not make a client per
    /// request; otherwise a client pinned to the first address replaces it. Check the client back in
    /// when its request ends. `retired`: clients with no request left, to shut down now.
    mutating func checkOut(host: String, addresses: [String], make: (String) -> Client) -> (client: Client, address: String, retired: [Client]) {
        tick += 1
        var retired: [Client] = []
        if var entry = entries[host] {
            if addresses.contains(entry.address) {
                entry.lastUse = tick
                entry.inUse += 1
                entries[host] = entry
                return (entry.client, entry.address, [])
            }
            entries[host] = nil
            retired += retire(entry)
        }
        while entries.count >= capacity, let oldest = entries.min(by: { $0.value.lastUse < $1.value.lastUse }) {
            entries[oldest.key] = nil
            retired += retire(oldest.value)
        }
        let address = addresses[0]
        let client = make(address)
        entries[host] = Entry(address: address, client: client, lastUse: tick, inUse: 1)
        return (client, address, retired)
    }

    /// A request on `client` ended. Returns the client when it was retiring and is now idle.
    mutating func checkIn(_ client: Client) -> Client? {
        let id = ObjectIdentifier(client)
        if let host = entries.first(where: { $0.value.client === client })?.key {
            entries[host]?.inUse -= 1
            return nil
        }
        guard var retiree = retiring[id] else { return nil }
        retiree.inUse -= 1
        guard retiree.inUse <= 0 else {
            retiring[id] = retiree
            return nil
        }
        retiring[id] = nil
        return retiree.client
    }

    /// Empties the pool: every client, busy or not, for a shutdown.
    mutating func removeAll() -> [Client] {
        defer {
            entries.removeAll()
            retiring.removeAll()
        }
        return entries.values.map(\.client) + retiring.values.map(\.client)
    }

    private mutating func retire(_ entry: Entry) -> [Client] {
        guard entry.inUse > 0 else { return [entry.client] }
        retiring[ObjectIdentifier(entry.client)] = (entry.client, entry.inUse)
        return []
    }
}

/// Recent DNS answers, kept `ttl` seconds and at most `capacity` hosts, so a burst of requests to
/// one host resolves it once and a pinned client keeps its address. Each answer is still checked
/// by the guard on every use; only the lookup is saved.
struct ResolutionCache {
    let ttl: Double
    let capacity: Int
    private var entries: [String: (addresses: [[UInt8]], expires: Date)] = [:]

    init(ttl: Double, capacity: Int) {
        self.ttl = ttl
        self.capacity = max(1, capacity)
    }

    var count: Int { entries.count }

    /// The answer for `host` if it was stored less than `ttl` seconds before `now`.
    func lookup(_ host: String, now: Date) -> [[UInt8]]? {
        guard let entry = entries[host], entry.expires > now else { return nil }
        return entry.addresses
    }

    mutating func store(_ host: String, _ addresses: [[UInt8]], now: Date) {
        guard ttl > 0 else { return }
        if entries[host] == nil && entries.count >= capacity {
            entries = entries.filter { $0.value.expires > now }
            if entries.count >= capacity, let soonest = entries.min(by: { $0.value.expires < $1.value.expires }) {
                entries[soonest.key] = nil
            }
        }
        entries[host] = (addresses, now.addingTimeInterval(ttl))
    }
}
