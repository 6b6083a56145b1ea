import AsyncHTTPClient
import DoorbellCore
import Foundation
import NIOCore
import NIOHTTP1
import Synchronization
#if canImport(Glibc)
import Glibc
#endif

/// Every outbound request Doorbell makes (deliveries, `http` and `chat` steps) goes through here.
/// The SSRF guard: the host is resolved once (A and AAAA), every address is checked against the
/// `AddressPolicy`, and the connection goes to the checked address only — the name is never
/// resolved a second time, so a DNS answer that changes (rebinding) cannot redirect us.
///
/// How: plain `http` URLs are rewritten to the checked IP with the original `Host` header;
/// `https` names use an HTTPClient whose `dnsOverride` pins the name to the checked IP, so TLS still
/// sends the name (SNI) and verifies the certificate against it. Chosen over an egress proxy
/// (smokescreen-style) because it needs no extra hop or listener and keeps async-http-client's pooling.
/// Redirects are never followed.
public final class OutboundHTTP: Sendable {
    /// Resolves a host name to addresses (16 bytes each, IPv4 as IPv4-mapped). Injected in tests.
    public typealias Resolver = @Sendable (String) async throws -> [[UInt8]]

    private let policy: AddressPolicy
    private let resolver: Resolver
    private let shared: HTTPClient
    private let configuration: HTTPClient.Configuration
    /// One pinned client per https host, at most `PinnedClientPool.capacity`, re-pinned only when
    /// the host's answer no longer holds its address.
    private let pinned: Mutex<PinnedClientPool<HTTPClient>>
    /// DNS answers of the last half minute (bounded), so a burst to one host resolves it once.
    private let resolutions: Mutex<ResolutionCache>
    private let now: @Sendable () -> Date
    /// Verdicts for URLs whose host is an IP literal: nothing to resolve, so the verdict never
    /// changes, and parsing the URL was a visible part of every delivery. Bounded.
    private let literalRoutes = Mutex<[String: LiteralRoute]>([:])

    private enum LiteralRoute {
        case refused(OutboundRefusal)
        case rewritten(url: String, hostHeader: String?)
    }

    /// A response body is kept up to the caller's `keep`; beyond it at most this much more is read
    /// (and thrown away) before the connection is dropped.
    static let discardLimit = 64 << 20

    /// `pinnedClients`: most https hosts with a client of their own; `resolutionTTL`: seconds a DNS
    /// answer is reused (0: never); `now`: the clock for that, injected in tests.
    public init(
        policy: AddressPolicy, concurrency: Int = 16, resolver: Resolver? = nil, pinnedClients: Int = 32, resolutionTTL: Double = 30,
        now: @escaping @Sendable () -> Date = { Date() }
    ) {
        self.pinned = Mutex(PinnedClientPool(capacity: pinnedClients))
        self.resolutions = Mutex(ResolutionCache(ttl: resolutionTTL, capacity: 1024))
        self.now = now
        var configuration = HTTPClient.Configuration()
        configuration.redirectConfiguration = .disallow
        configuration.connectionPool.concurrentHTTP1ConnectionsPerHostSoftLimit = max(8, concurrency)
        configuration.timeout.connect = .seconds(10)
        self.configuration = configuration
        self.policy = policy
        self.resolver = resolver ?? Self.systemResolver
        self.shared = HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
    }

    /// Sends `request` after the guard has approved where it goes, and reads the answer within
    /// `timeout` (head and body together): the body's first `keep` bytes are kept, the rest is
    /// read and discarded. Throws only when no answer head came; how the body ended is in the result.
    public func fetch(_ request: HTTPClientRequest, timeout: Double, keep: Int) async throws -> OutboundResponse {
        let deadline = ContinuousClock.now.advanced(by: .milliseconds(Int64(timeout * 1000)))
        let (client, routed) = try await route(request)
        defer { checkIn(client) }
        let response = try await client.execute(routed, timeout: .milliseconds(Int64(timeout * 1000)))
        let body = await OutboundResponse.read(response.body, keep: keep, discardLimit: Self.discardLimit, until: deadline)
        return OutboundResponse(
            status: Int(response.status.code), headers: response.headers, body: body.kept, received: body.received, ending: body.ending,
            keptWhole: body.ending == .complete || body.kept.count >= keep
        )
    }

    /// A request on a pinned client ended; a client that left the pool meanwhile is closed now.
    private func checkIn(_ client: HTTPClient) {
        guard client !== shared, let idle = pinned.withLock({ $0.checkIn(client) }) else { return }
        Self.close([idle])
    }

    private static func close(_ clients: [HTTPClient]) {
        guard !clients.isEmpty else { return }
        Task { for client in clients { try? await client.shutdown() } }
    }

    /// Which client and (possibly rewritten) request reach the checked address.
    func route(_ original: HTTPClientRequest) async throws -> (HTTPClient, HTTPClientRequest) {
        if let cached = literalRoutes.withLock({ $0[original.url] }) {
            switch cached {
            case .refused(let refusal): throw refusal
            case .rewritten(let url, let hostHeader):
                var request = original
                if let hostHeader, !request.headers.contains(name: "Host") { request.headers.add(name: "Host", value: hostHeader) }
                request.url = url
                return (shared, request)
            }
        }
        guard let components = URLComponents(string: original.url), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme),
            let rawHost = components.host, !rawHost.isEmpty
        else {
            throw OutboundRefusal("not an http(s) URL: '\(RedactedURL(original.url))'")
        }
        let host = rawHost.hasPrefix("[") ? String(rawHost.dropFirst().dropLast()) : rawHost
        let literal = AddressPolicy.parseLiteral(host)
        let isLiteral = literal != nil
        let addresses: [[UInt8]]
        if let literal {
            addresses = [literal]
        } else {
            if let cached = resolutions.withLock({ $0.lookup(host, now: now()) }) {
                addresses = cached
            } else {
                do {
                    addresses = try await resolver(host)
                } catch {
                    throw OutboundResolutionError(host: host, reason: "\(error)")
                }
                guard !addresses.isEmpty else { throw OutboundResolutionError(host: host, reason: "no A or AAAA record") }
                resolutions.withLock { $0.store(host, addresses, now: now()) }
            }
        }
        // Every answer must pass, not just the first: a mixed answer is how rebinding starts.
        for address in addresses {
            if let reason = policy.refusal(for: address) {
                let refusal = OutboundRefusal("refused \(RedactedURL(original.url)): \(host) → \(reason); list its range in outbound.allow_private to allow it")
                if isLiteral { remember(original.url, .refused(refusal)) }
                throw refusal
            }
        }
        let address = AddressPolicy.format(addresses[0])
        let hostPart = address.contains(":") ? "[\(address)]" : address
        let port = components.port
        if scheme == "http" || isLiteral {
            var request = original
            var rewritten = components
            rewritten.percentEncodedHost = hostPart
            let hostHeader = scheme == "http" ? (port.map { "\(rawHost):\($0)" } ?? rawHost) : nil
            if let hostHeader, !request.headers.contains(name: "Host") { request.headers.add(name: "Host", value: hostHeader) }
            request.url = rewritten.string ?? original.url
            if isLiteral { remember(original.url, .rewritten(url: request.url, hostHeader: hostHeader)) }
            return (shared, request)
        }
        return (pinnedClient(host: host, addresses: addresses.map(AddressPolicy.format)), original)
    }

    private func remember(_ url: String, _ route: LiteralRoute) {
        literalRoutes.withLock { routes in
            if routes.count >= 4096 { routes.removeAll() }
            routes[url] = route
        }
    }

    /// The host's pinned client, checked out: `fetch` checks it back in when its request ends.
    private func pinnedClient(host: String, addresses: [String]) -> HTTPClient {
        let (client, _, retired) = pinned.withLock { pool in
            pool.checkOut(host: host, addresses: addresses) { address in
                var configuration = self.configuration
                configuration.dnsOverride = [host: address]
                return HTTPClient(eventLoopGroupProvider: .singleton, configuration: configuration)
            }
        }
        Self.close(retired)
        return client
    }

    public func shutdown() async throws {
        let clients = pinned.withLock { $0.removeAll() }
        for client in clients { try? await client.shutdown() }
        try await shared.shutdown()
    }

    /// `getaddrinfo` on a thread of its own (it blocks), A and AAAA.
    static let systemResolver: Resolver = { host in
        try await withCheckedThrowingContinuation { continuation in
            Thread.detachNewThread {
                var hints = addrinfo()
                hints.ai_family = AF_UNSPEC
                hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
                var result: UnsafeMutablePointer<addrinfo>?
                let status = getaddrinfo(host, nil, &hints, &result)
                guard status == 0 else {
                    continuation.resume(throwing: OutboundResolutionError(host: host, reason: String(cString: gai_strerror(status))))
                    return
                }
                defer { freeaddrinfo(result) }
                var addresses: [[UInt8]] = []
                var cursor = result
                while let info = cursor {
                    if info.pointee.ai_family == AF_INET, let raw = info.pointee.ai_addr {
                        let v4 = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { $0.pointee.sin_addr }
                        let bytes = withUnsafeBytes(of: v4) { Array($0) }
                        addresses.append([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff] + bytes)
                    } else if info.pointee.ai_family == AF_INET6, let raw = info.pointee.ai_addr {
                        let v6 = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { $0.pointee.sin6_addr }
                        addresses.append(withUnsafeBytes(of: v6) { Array($0) })
                    }
                    cursor = info.pointee.ai_next
                }
                continuation.resume(returning: addresses)
            }
        }
    }
}

/// The SSRF guard said no: a permanent failure (retrying cannot change where the URL points).
public struct OutboundRefusal: Error, CustomStringConvertible, Sendable {
    public let description: String
    init(_ description: String) { self.description = description }
}

/// The host name did not resolve: worth retrying (DNS outages end).
public struct OutboundResolutionError: Error, CustomStringConvertible, Sendable {
    public let host: String
    public let reason: String
    public var description: String { "cannot resolve \(host): \(reason)" }
}
