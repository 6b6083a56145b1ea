import DoorbellCore
import Foundation

/// One answer of a poll, read: its items and how to ask for the next page. Pure, so pagination
/// and item extraction are tested without a server.
public struct PollPage {
    public var items: [Any]
    /// The next page's URL (absolute), or nil when this was the last.
    public var next: URL?
    /// The cursor this page handed out (`pagination.cursor.from`), if any.
    public var cursor: String?

    /// Why an answer cannot be read; the poll fails (and moves nothing).
    public struct Problem: Error, CustomStringConvertible, Sendable {
        public let description: String
        init(_ description: String) { self.description = description }
    }

    /// Reads `body` (JSON) fetched from `url` with `headers`; `page` counts from 0 and
    /// `requested` is the next page's number or offset state.
    public static func read(
        body: [UInt8], url: URL, linkHeaders: [String], poller: Poller, pageIndex: Int, offset: Int
    ) throws(Problem) -> PollPage {
        let root: Any
        do {
            root = try JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])
        } catch {
            throw Problem("the answer is not JSON")
        }
        let list: Any?
        if let pointer = poller.items { list = pointer.resolve(in: root) } else { list = root }
        guard let items = list as? [Any] else {
            throw Problem(poller.items.map { "no list at \($0) in the answer" } ?? "the answer is not a list (set items: to a JSON pointer)")
        }
        guard items.count <= Poller.maxItemsPerPage else { throw Problem("a page listed \(items.count) items, more than \(Poller.maxItemsPerPage)") }
        var page = PollPage(items: items, next: nil, cursor: nil)
        switch poller.pagination {
        case .none:
            break
        case .nextLink(let pointer):
            if let link = pointer.string(in: root), !link.isEmpty { page.next = try resolve(link, against: url) }
        case .linkHeader:
            if let link = linkHeaders.lazy.compactMap(nextLink(in:)).first { page.next = try resolve(link, against: url) }
        case .cursor(let param, let from):
            if let cursor = from.string(in: root), !cursor.isEmpty {
                // The cursor is stored and sent back in the URL and headers: a hostile or broken
                // answer must not make it huge or smuggle line breaks; the poll fails, nothing moves.
                guard cursor.utf8.count <= Poller.maxCursorBytes else { throw Problem("the cursor at \(from) is longer than \(Poller.maxCursorBytes) bytes") }
                guard !cursor.unicodeScalars.contains(where: { $0.properties.generalCategory == .control }) else {
                    throw Problem("the cursor at \(from) holds control characters")
                }
                page.cursor = cursor
                // An empty page ends the walk even if the API hands out a cursor (it keeps it for next time).
                if !items.isEmpty { page.next = replacingQuery(url, param, cursor) }
            }
        case .page(let param, let start):
            if !items.isEmpty { page.next = replacingQuery(url, param, String(start + pageIndex + 1)) }
        case .offset(let param, let overlap):
            if !items.isEmpty { page.next = replacingQuery(url, param, String(offset + max(1, items.count - overlap))) }
        }
        return page
    }

    /// The `rel="next"` target of one `Link` header value (RFC 8288; several links, comma-separated).
    public static func nextLink(in header: String) -> String? {
        var rest = Substring(header)
        while let open = rest.firstIndex(of: "<") {
            guard let close = rest[open...].firstIndex(of: ">") else { return nil }
            let target = rest[rest.index(after: open)..<close]
            let afterTarget = rest[rest.index(after: close)...]
            let end = afterTarget.firstIndex(of: "<") ?? afterTarget.endIndex
            let params = afterTarget[..<end]
            for param in params.split(separator: ";") {
                let pair = param.split(separator: "=", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
                guard pair.count == 2, pair[0].lowercased() == "rel" else { continue }
                let rels = pair[1].trimmingCharacters(in: CharacterSet(charactersIn: "\", ")).lowercased().split(separator: " ")
                if rels.contains("next") { return String(target) }
            }
            rest = afterTarget[end...]
        }
        return nil
    }

    static func resolve(_ link: String, against base: URL) throws(Problem) -> URL {
        guard let url = URL(string: link, relativeTo: base)?.absoluteURL, let scheme = url.scheme?.lowercased(), ["http", "https"].contains(scheme) else {
            throw Problem("the next page's link is not an http(s) URL")
        }
        // Every page gets the poller's headers and auth: a next page elsewhere (another host, port
        // or scheme) would hand them to whoever the API's answer names.
        guard origin(of: url) == origin(of: base) else {
            throw Problem("the next page's link leads to another origin (\(origin(of: url))); next pages must be on \(origin(of: base)), where the poller's credentials go")
        }
        return url
    }

    /// scheme://host:port with the default port filled in, lowercased: what "same origin" compares.
    static func origin(of url: URL) -> String {
        let scheme = url.scheme?.lowercased() ?? ""
        let port = url.port ?? (scheme == "https" ? 443 : 80)
        return "\(scheme)://\(url.host?.lowercased() ?? ""):\(port)"
    }

    static func replacingQuery(_ url: URL, _ name: String, _ value: String) -> URL? {
        guard var components = URLComponents(url: url, resolvingAgainstBaseURL: true) else { return nil }
        // The other parameters stay byte for byte; the value is encoded but for unreserved
        // characters, so a cursor holding `&`, `=`, `#` or `+` arrives as itself.
        var parts = (components.percentEncodedQuery ?? "").split(separator: "&").map(String.init).filter {
            let key = $0.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
            return (key.removingPercentEncoding ?? key) != name
        }
        parts.append(queryPair(name, value))
        components.percentEncodedQuery = parts.joined(separator: "&")
        return components.url
    }

    /// `name=value`, both percent-encoded but for RFC 3986 unreserved characters.
    static func queryPair(_ name: String, _ value: String) -> String {
        let unreserved = CharacterSet(charactersIn: "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~")
        return (name.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "") + "=" + (value.addingPercentEncoding(withAllowedCharacters: unreserved) ?? "")
    }
}

/// One item of a poll, identified: its id, its version's hash and text, and what it is to us.
public struct PolledItem {
    public enum Kind: Sendable, Equatable { case new, changed, unchanged }
    public var id: String
    public var idHash: UInt64
    public var version: UInt64
    /// The version as text for a changed item's provider id (`id@version`): the pointer's value when
    /// short, else the hash in hex.
    public var versionText: String
    public var kind: Kind
    public var value: Any
    /// The JSON to emit, set by the runner for items it will emit (then `value` is dropped).
    public var body: [UInt8]? = nil
}

/// Sorts a page's items into new, changed and unchanged against what the poller remembers; ids seen
/// earlier in the same poll (an item pushed across a page boundary) are skipped. Pure and cheap:
/// per item one pointer walk, one or two FNV hashes and one dictionary lookup.
public struct PollDiff {
    public let poller: Poller
    public private(set) var seenThisPoll: Set<UInt64> = []
    /// Items without a usable id (missing, too long, control characters): skipped, counted.
    public private(set) var skipped = 0

    public init(poller: Poller) {
        self.poller = poller
    }

    public mutating func classify(_ items: [Any], against seen: SeenSet) -> [PolledItem] {
        var result: [PolledItem] = []
        for value in items {
            guard let id = poller.itemID.string(in: value), EventLimits.providerIDProblem(id) == nil, id.utf8.count <= 400 else {
                skipped += 1
                continue
            }
            let idHash = ItemDigest.of(id)
            guard seenThisPoll.insert(idHash).inserted else { continue }
            let version: UInt64
            var versionText: String?
            if let pointer = poller.itemVersion {
                if let text = pointer.string(in: value) {
                    version = ItemDigest.of(text)
                    if text.utf8.count <= 64, EventLimits.providerIDProblem(text) == nil { versionText = text }
                } else {
                    version = pointer.resolve(in: value).map(ItemDigest.canonical) ?? 0
                }
            } else {
                version = ItemDigest.canonical(value)
            }
            let kind: PolledItem.Kind
            switch seen.version(ofID: idHash) {
            case nil: kind = .new
            case version?: kind = .unchanged
            default: kind = .changed
            }
            result.append(PolledItem(id: id, idHash: idHash, version: version, versionText: versionText ?? String(version, radix: 16), kind: kind, value: value))
        }
        return result
    }
}

/// When to poll again after a failure: the interval doubled per failure in a row, ±20 % jitter, at
/// most `backoff_max`; a `Retry-After` asks for at least its wait.
public enum PollBackoff {
    public static func delay(failures: Int, interval: Double, cap: Double, retryAfter: Double?, jitter: Double = Double.random(in: 0.8...1.2)) -> Double {
        let exponent = min(max(failures, 1), 30)
        let base = min(cap, interval * pow(2, Double(exponent)))
        let delayed = min(cap, base * jitter)
        return max(delayed, retryAfter ?? 0)
    }
}
