import Foundation
import Hummingbird
import NIOCore

/// The page around every view, and the headers every dashboard answer carries.
enum Layout {
    enum Tab: String, CaseIterable {
        case overview, setup, events, runs, deliveries, endpoints

        var title: String {
            switch self {
            case .overview: "Overview"
            case .setup: "Set-up"
            case .events: "Events"
            case .runs: "Runs"
            case .deliveries: "Deliveries"
            case .endpoints: "Endpoints"
            }
        }

        var path: String { self == .overview ? "/ui" : "/ui/\(rawValue)" }
    }

    /// No inline script or style anywhere, so the policy can forbid both; nothing may frame the
    /// dashboard; forms post only to it.
    static let contentSecurityPolicy = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'"

    static func securityHeaders(_ headers: inout HTTPFields) {
        headers[.contentSecurityPolicy] = contentSecurityPolicy
        headers[.xContentTypeOptions] = "nosniff"
        headers[.init("Referrer-Policy")!] = "no-referrer"
        headers[.init("X-Frame-Options")!] = "DENY"
        headers[.cacheControl] = "no-store"
    }

    static func page(_ title: String, tab: Tab?, signedIn: SignedIn?, status: HTTPResponse.Status = .ok, notice: String? = nil, error: String? = nil, _ content: HTML) -> Response {
        let navigation: HTML = signedIn.map { signedIn -> HTML in
            let links = Tab.allCases.map { item -> HTML in
                "<a href=\"\(item.path)\"\(HTML.when(item == tab, " class=\"active\""))>\(item.title)</a>"
            }
            return """
            <header><a class="brand" href="/ui">Doorbell</a>\(links)<span id="live">offline</span>
            <form class="inline" method="post" action="/ui/sign-out"><input type="hidden" name="_csrf" value="\(signedIn.csrfToken)"><button type="submit">Sign out</button></form></header>
            """
        } ?? "<header><span class=\"brand\">Doorbell</span></header>"
        let document: HTML = """
        <!doctype html>
        <html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
        <title>\(title) · Doorbell</title><link rel="stylesheet" href="/ui/static/app.css"><script src="/ui/static/app.js" defer></script></head>
        <body>\(navigation)<main>
        \(notice.map { HTML("<div class=\"notice\" role=\"status\">\($0)</div>") } ?? .empty)\(error.map { HTML("<div class=\"error\" role=\"alert\">\($0)</div>") } ?? .empty)
        \(content)
        </main></body></html>
        """
        return respond(status, contentType: "text/html; charset=utf-8", document.text)
    }

    static func respond(_ status: HTTPResponse.Status, contentType: String, _ text: String) -> Response {
        var headers = HTTPFields()
        headers[.contentType] = contentType
        securityHeaders(&headers)
        return Response(status: status, headers: headers, body: .init(byteBuffer: ByteBuffer(string: text)))
    }

    /// 303 See Other: after a form post, the browser loads `location` with GET.
    static func redirect(_ location: String, cookies: [Cookie] = []) -> Response {
        var headers = HTTPFields()
        headers[.location] = location
        securityHeaders(&headers)
        var response = Response(status: .seeOther, headers: headers)
        for cookie in cookies { response.setCookie(cookie) }
        return response
    }

    static func status(_ text: String) -> HTML { "<span class=\"status \(text)\">\(text.replacingOccurrences(of: "_", with: " "))</span>" }
}
