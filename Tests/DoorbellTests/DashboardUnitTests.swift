import DoorbellConfig
@testable import DoorbellServer
@testable import DoorbellStorage
@testable import DoorbellVerification
import Foundation
import Testing

/// The dashboard's building blocks without a browser: the password hash is real PBKDF2-HMAC-SHA256,
/// interpolated text is escaped, CSRF tokens belong to one session.
@Suite("Dashboard parts")
struct DashboardUnitTests {
    @Test("PasswordHash is PBKDF2-HMAC-SHA256: RFC 7914's vector and Python's hashlib agree")
    func pbkdf2Vectors() {
        let hex = { (bytes: [UInt8]) in bytes.map { String(format: "%02x", $0) }.joined() }
        #expect(hex(PasswordHash.pbkdf2(password: Array("passwd".utf8), salt: Array("salt".utf8), iterations: 1)) == "55ac046e56e3089fec1691c22544b605f94185216dde0465e68b9d57c20dacbc")
        // python3 -c "import hashlib; print(hashlib.pbkdf2_hmac('sha256', b'Password', b'NaCl', 80000).hex())"
        #expect(hex(PasswordHash.pbkdf2(password: Array("Password".utf8), salt: Array("NaCl".utf8), iterations: 80000)) == "4ddcd8f60b98be21830cee5ef22701f9641a4418d04c0414aeff08876b34ab56")
    }

    @Test("a stored hash round-trips, matches only its password, and refuses malformed text")
    func passwordHash() throws {
        let made = PasswordHash.make(password: "open sesame", iterations: 2000)
        let read = try #require(PasswordHash(made.description))
        #expect(read == made)
        #expect(read.matches("open sesame"))
        #expect(!read.matches("open sesame "))
        #expect(PasswordHash.make(password: "open sesame", iterations: 2000).description != made.description, "a fresh salt each time")
        for bad in ["open sesame", "pbkdf2_sha256$10$AAAAAAAAAAA=$AAAA", "sha1$2000$\(Data(made.salt).base64EncodedString())$\(Data(made.hash).base64EncodedString())"] {
            #expect(PasswordHash(bad) == nil, "\(bad)")
        }
    }

    @Test("interpolated text is escaped; only HTML goes in as markup")
    func escaping() {
        let hostile = "\"><img src=x onerror=alert(1)><script>alert('x')</script>&"
        let page: HTML = "<p title=\"\(hostile)\">\(hostile)</p>\(HTML("<b>\("<i>")</b>"))"
        #expect(page.text == "<p title=\"&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;\">&quot;&gt;&lt;img src=x onerror=alert(1)&gt;&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;&amp;</p><b>&lt;i&gt;</b>")
    }

    @Test("a CSRF token is tied to its session id")
    func csrf() {
        let a = DashboardAuth.csrfToken(sessionID: DashboardAuth.randomToken())
        let b = DashboardAuth.csrfToken(sessionID: DashboardAuth.randomToken())
        #expect(a != b)
        #expect(a.count == 64)
        #expect(DashboardAuth.constantTimeEqual(a, a))
        #expect(!DashboardAuth.constantTimeEqual(a, b))
    }

    @Test("dashboard: config is checked with its path; a password instead of a hash is refused")
    func dashboardConfig() throws {
        let hash = PasswordHash.make(password: "open sesame", iterations: 2000).description
        let good = try ConfigLoader.parse(yaml: "dashboard: { password_hash: \"\(hash)\", session_idle: 2h }\nsources: []", directory: "/tmp", environment: [:])
        #expect(good.dashboard.passwordHash == hash)
        #expect(good.dashboard.sessionIdle == 7200)
        #expect(good.dashboard.sessionMax == 7 * 86400)
        do {
            _ = try ConfigLoader.parse(yaml: "dashboard: { password_hash: hunter2, session_max: 5s, colour: blue }\nsources: []", directory: "/tmp", environment: [:])
            Issue.record("a clear-text password was accepted")
        } catch let error as ConfigError {
            let text = error.description
            #expect(text.contains("dashboard.password_hash: expected the output of `doorbell hash-password`"))
            #expect(text.contains("dashboard.session_max"))
            #expect(text.contains("colour"))
            #expect(!text.contains("hunter2"), "the password is not echoed back")
        }
    }

    @Test("the session cookie is HttpOnly and SameSite=Strict; Secure exactly when public_url is https")
    func cookieFlags() throws {
        let store = try SQLiteEventStore(path: TemporaryFolder.make().appendingPathComponent("doorbell.db").path)
        for (publicURL, secure) in [(nil, false), ("http://hooks.example.com", false), ("https://hooks.example.com", true)] as [(String?, Bool)] {
            let configuration = Configuration(server: ServerSettings(publicURL: publicURL), storage: .sqlite(path: "x"), sources: [], directory: "/tmp")
            let cookie = DashboardAuth(configuration: configuration, store: store, now: { Date() }).cookie(DashboardAuth.cookieName, "v", maxAge: 60)
            #expect(cookie.httpOnly && cookie.sameSite == .strict && cookie.path == "/ui")
            #expect(cookie.secure == secure, "\(publicURL ?? "no public_url")")
        }
    }
}
