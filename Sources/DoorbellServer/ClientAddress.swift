import DoorbellCore

/// Works out the client's address for allowlists. `X-Forwarded-For` is believed only when the direct
/// peer is a trusted proxy, and then only up to the first hop that is not itself trusted — so a
/// client cannot spoof its address by sending the header itself.
struct ClientAddress: Sendable {
    let trustedProxies: [CIDR]

    func resolve(peer: String?, forwardedFor: [String]) -> String? {
        guard let peer else { return nil }
        guard isTrusted(peer), !forwardedFor.isEmpty else { return peer }
        // Right to left: the nearest hop first; the first untrusted one is the client.
        let hops = forwardedFor.flatMap { $0.split(separator: ",") }.map { $0.trimmingCharacters(in: .whitespaces) }
        for hop in hops.reversed() {
            guard CIDR.parseAddress(hop) != nil else { return hop }  // garbage: refuse by not matching
            if !isTrusted(hop) { return hop }
        }
        return hops.first ?? peer
    }

    private func isTrusted(_ address: String) -> Bool {
        trustedProxies.contains { $0.contains(address) }
    }
}
