import Crypto
import DoorbellCore
import Foundation

/// Twilio: `X-Twilio-Signature` = base64(HMAC-SHA1(auth token, URL + each POST param name and value,
/// sorted by name)). For JSON bodies the URL carries `bodySHA256=<hex>`, which is what is signed, and
/// the body must hash to it. Like Twilio's own validator, the URL is tried with and without its
/// default port, since Twilio is inconsistent about it.
public struct TwilioScheme: SignatureScheme {
    public static let header = "X-Twilio-Signature"

    private var prepared: PreparedKeys<SymmetricKey>?

    public init() {}

    public func preparing(secrets: [String]) -> any SignatureScheme {
        var scheme = self
        scheme.prepared = PreparedKeys(secrets, derive: Self.key)
        return scheme
    }

    private static func key(_ secret: String) -> SymmetricKey { SymmetricKey(data: Array(secret.utf8)) }

    public func verify(_ request: SignedRequest, secrets: [String], tolerance: Int, now: Date) throws(VerificationFailure) {
        guard let value = request.header(Self.header) else { throw .missingHeader(Self.header) }
        guard let candidate = ByteEncoding.fromBase64(HeaderText.trimmingWhitespace(value)), candidate.count == Insecure.SHA1.byteCount else {
            throw .malformedHeader(Self.header, "not a base64 HMAC-SHA1")
        }
        var params: [(String, String)] = []
        if let bodyHash = Self.queryValue("bodySHA256", in: request.url) {
            let actual = ByteEncoding.hex(SHA256.hash(data: request.body))
            guard actual == bodyHash.lowercased() else { throw .signatureMismatch }
        } else if FormFields.isForm(contentType: request.header("content-type")) {
            // At most `FormFields.maxFields` (ingest refuses a longer form before this): sorting and
            // hashing a megabyte of unsigned fields would cost more than the request is worth.
            params = FormFields.pairs(request.body)
        }
        // The sorted parameters are the same for every URL variant and secret: built once.
        let signedParams = Self.signedParams(params)
        for key in prepared?.keys(for: secrets, derive: Self.key) ?? secrets.map(Self.key) {
            for url in Self.portVariants(request.url) {
                var mac = HMAC<Insecure.SHA1>(key: key)
                mac.update(data: Array(url.utf8))
                mac.update(data: signedParams)
                if mac.finalize() == candidate { return }  // constant-time comparison
            }
        }
        throw .signatureMismatch
    }

    public func sign(body: [UInt8], url: String, secret: String, now: Date) -> [Header] {
        let params = Self.queryValue("bodySHA256", in: url) == nil ? FormFields.pairs(body) : []
        let mac = HMAC<Insecure.SHA1>.authenticationCode(for: Self.signedPayload(url: url, params: params), using: SymmetricKey(data: Array(secret.utf8)))
        return [
            Header(name: Self.header, value: Data(mac).base64EncodedString()),
            Header(name: "I-Twilio-Idempotency-Token", value: UUID().uuidString.lowercased()),
        ]
    }

    /// URL, then name+value of each parameter sorted by name (values sorted within a name, repeats once).
    static func signedPayload(url: String, params: [(String, String)]) -> [UInt8] {
        Array(url.utf8) + signedParams(params)
    }

    /// What follows the URL in the signed text: name+value of each parameter, sorted.
    static func signedParams(_ params: [(String, String)]) -> [UInt8] {
        var grouped: [String: Set<String>] = [:]
        for (name, value) in params { grouped[name, default: []].insert(value) }
        var payload: [UInt8] = []
        for name in grouped.keys.sorted(by: Self.codepointOrder) {
            for value in grouped[name]!.sorted(by: Self.codepointOrder) {
                payload.append(contentsOf: name.utf8)
                payload.append(contentsOf: value.utf8)
            }
        }
        return payload
    }

    /// Python's `sorted` compares code points; Swift's `<` on String uses Unicode canonical order.
    private static func codepointOrder(_ a: String, _ b: String) -> Bool {
        a.unicodeScalars.lexicographicallyPrecedes(b.unicodeScalars) { $0.value < $1.value }
    }

    /// The URL as given, without its port, and with the scheme's default port.
    static func portVariants(_ url: String) -> [String] {
        guard let schemeEnd = url.range(of: "://") else { return [url] }
        let afterScheme = url[schemeEnd.upperBound...]
        let authorityEnd = afterScheme.firstIndex { $0 == "/" || $0 == "?" } ?? afterScheme.endIndex
        let authority = afterScheme[..<authorityEnd]
        let rest = afterScheme[authorityEnd...]
        let scheme = url[..<schemeEnd.lowerBound].lowercased()
        let hostEnd = authority.hasPrefix("[") ? (authority.firstIndex(of: "]").map { authority.index(after: $0) } ?? authority.endIndex) : authority.endIndex
        let host: Substring
        if let colon = authority[hostEnd...].firstIndex(of: ":") ?? (authority.hasPrefix("[") ? nil : authority.firstIndex(of: ":")) {
            host = authority[..<colon]
        } else {
            host = authority
        }
        let prefix = url[..<schemeEnd.upperBound]
        let withoutPort = String(prefix) + host + rest
        let withPort = String(prefix) + host + ":\(scheme == "https" ? 443 : 80)" + rest
        return host == authority ? [url, withPort] : [withoutPort, url]
    }

    static func queryValue(_ name: String, in url: String) -> String? {
        guard let question = url.firstIndex(of: "?") else { return nil }
        for pair in url[url.index(after: question)...].split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1)
            if parts.count == 2, parts[0] == name { return String(parts[1]).removingPercentEncoding }
        }
        return nil
    }
}
