import DoorbellCore
import Foundation

/// A fixture's request signed for one source, exactly as `doorbell trigger` builds it: the fixture's
/// content type and headers, then the provider's signature with the source's first secret. The
/// dashboard's set-up page sends it through the real ingest path.
public struct SampleRequest: Sendable {
    /// The fixture's name (`stripe payment_intent.succeeded`).
    public var fixture: String
    public var headers: [Header]
    public var body: [UInt8]

    /// The first fixture of the source's provider (the `form` fixture for `none`, sent unsigned).
    public static func make(for source: Source, signedURL: String, now: Date) -> SampleRequest {
        let fixture = Self.fixture(for: source.provider)
        let body = fixture.makeBody()
        var headers = [Header(name: "Content-Type", value: fixture.contentType)]
        for header in fixture.makeHeaders() {
            headers.removeAll { $0.name.lowercased() == header.name.lowercased() }
            headers.append(header)
        }
        if let scheme = source.provider.scheme(hmac: source.hmac), let secret = source.secrets.first {
            headers += scheme.sign(body: body, url: signedURL, secret: secret, now: now)
        }
        return SampleRequest(fixture: fixture.name, headers: headers, body: body)
    }

    /// The fixture a provider's samples use.
    public static func fixture(for provider: ProviderKind) -> Fixture {
        Fixture.all.first { $0.provider == provider } ?? Fixture.all.first { $0.name == "form" }!
    }
}
