import DoorbellConfig
import DoorbellCore
import Foundation
import Testing

@Suite("Configuration")
struct ConfigTests {
    func parse(_ yaml: String, environment: [String: String] = [:]) throws -> Configuration {
        try ConfigLoader.parse(yaml: yaml, directory: "/srv/doorbell", environment: environment)
    }

    func issues(_ yaml: String, environment: [String: String] = [:]) -> [String] {
        do {
            _ = try parse(yaml, environment: environment)
            return []
        } catch let error as ConfigError {
            return error.issues.map(\.description)
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    @Test("the contract's keys parse, with ${VAR}, units and relative paths")
    func contract() throws {
        let configuration = try parse("""
            server:
              listen: "0.0.0.0:9090"
              public_url: "https://hooks.example.com/"
            storage: "sqlite:data/doorbell.db"
            api:
              tokens: ["${DOORBELL_API_TOKEN}"]
            sources:
              - id: stripe
                provider: stripe
                secrets: ["${STRIPE_WEBHOOK_SECRET}", "whsec_old"]
                tolerance: 300
                allow_ips: ["3.18.12.63/32", "2600:1f18::/32"]
                max_body: 1MiB
              - id: contact-form
                provider: hmac
                hmac: { header: X-Signature, algorithm: sha256, encoding: hex, prefix: "sha256=" }
                secrets: ["${FORM_SECRET:-fallback}"]
                event_type: form.submitted
                event_id: /submission_id
            """, environment: ["DOORBELL_API_TOKEN": "token-0123456789abcdef", "STRIPE_WEBHOOK_SECRET": "whsec_abc"])
        #expect(configuration.server.host == "0.0.0.0")
        #expect(configuration.server.port == 9090)
        #expect(configuration.server.publicURL == "https://hooks.example.com")
        #expect(configuration.storage == .sqlite(path: "/srv/doorbell/data/doorbell.db"))
        #expect(configuration.api.tokens == ["token-0123456789abcdef"])
        let stripe = try #require(configuration.source(id: "stripe"))
        #expect(stripe.secrets == ["whsec_abc", "whsec_old"])
        #expect(stripe.maxBody == 1_048_576)
        #expect(stripe.allowIPs.count == 2)
        let form = try #require(configuration.source(id: "contact-form"))
        #expect(form.secrets == ["fallback"])
        #expect(form.hmac == HMACSettings(header: "X-Signature", algorithm: .sha256, encoding: .hex, prefix: "sha256="))
        #expect(form.eventType == .fixed("form.submitted"))
        #expect(form.eventID == .pointer(JSONPointer("/submission_id")!))
    }

    @Test("every error is listed with its path")
    func errorsNamePaths() {
        let found = issues("""
            server:
              listen: "localhost"
            storage: "mysql://x"
            sources:
              - id: stripe
                provider: strpe
                secrets: ["${MISSING_SECRET}"]
                max_body: lots
              - id: "bad id!"
                provider: hmac
                secret: x
                hmac: { header: X-Signature, algorithm: md5 }
                tolerance: -1
              - id: stripe
                provider: none
                secert: x
            colour: blue
            """)
        let expected = [
            "server.listen: expected host:port",
            "storage: expected sqlite:<file> or postgres://",
            "sources[0].provider: unknown provider 'strpe'",
            "sources[0].secrets[0]: environment variable MISSING_SECRET is not set",
            "sources[0].max_body: expected a size",
            "sources[1].id: 'bad id!' must use only letters",
            "sources[1].hmac.algorithm: expected sha1, sha256 or sha512, found 'md5'",
            "sources[1].tolerance: expected seconds",
            "sources[2].secert: unknown key",
            "colour: unknown key",
        ]
        for prefix in expected {
            #expect(found.contains { $0.hasPrefix(prefix) }, "no error starting '\(prefix)' in:\n\(found.joined(separator: "\n"))")
        }
    }

    @Test("an error quotes a value as written in the file, never what ${VAR} put there (a secret in the wrong field)")
    func errorsQuoteTheFile() {
        let secret = "smtp-password-4f9a2c"
        let found = issues("""
            smtp: { host: mail.example.com, port: "${SMTP_PASSWORD}", from: shop@example.com }
            sources:
              - { id: a, provider: none, max_body: "${SMTP_PASSWORD}" }
            """, environment: ["SMTP_PASSWORD": secret])
        #expect(found.contains { $0.hasPrefix("smtp.port:") && $0.contains("${SMTP_PASSWORD}") }, "\(found)")
        #expect(found.contains { $0.hasPrefix("sources[0].max_body:") }, "\(found)")
        #expect(!found.contains { $0.contains(secret) }, "\(found)")
    }

    @Test("duplicate ids, missing secrets and secret files are checked")
    func sourceRules() throws {
        let folder = try TemporaryFolder.make()
        try "file-secret\n".write(to: folder.appendingPathComponent("stripe.secret"), atomically: true, encoding: .utf8)
        let configuration = try ConfigLoader.parse(yaml: """
            sources:
              - id: a
                provider: stripe
                secret_file: stripe.secret
              - id: b
                provider: hmac
                secrets: [{ secret_file: stripe.secret }, "inline"]
            """, directory: folder.path, environment: [:])
        #expect(configuration.source(id: "a")?.secrets == ["file-secret"])
        #expect(configuration.source(id: "b")?.secrets == ["file-secret", "inline"])

        let found = issues("""
            sources:
              - id: a
                provider: stripe
              - id: a
                provider: none
              - id: c
                provider: hmac
                secret_file: /nonexistent/secret
            """)
        #expect(found.contains { $0.hasPrefix("sources[0].secrets: missing") })
        #expect(found.contains { $0.hasPrefix("sources[1].id: duplicate source id 'a'") })
        #expect(found.contains { $0.hasPrefix("sources[2].secret_file: cannot read secret file") })
    }

    @Test("broken YAML and empty files are clear errors")
    func brokenYAML() {
        #expect(issues("sources: [\n  - id: x").first?.contains("not valid YAML") == true)
        #expect(issues("").first?.contains("empty") == true)
    }

    @Test("units: sizes and durations")
    func units() {
        #expect(Units.parseSize("1MiB") == 1_048_576)
        #expect(Units.parseSize("512KB") == 512_000)
        #expect(Units.parseSize("100") == 100)
        #expect(Units.parseSize("1 GiB") == 1_073_741_824)
        #expect(Units.parseSize("lots") == nil)
        #expect(Units.parseSize("-1") == nil)
        #expect(Units.parseDuration("5s") == 5)
        #expect(Units.parseDuration("2h") == 7200)
        #expect(Units.parseDuration("1h30m") == 5400)
        #expect(Units.parseDuration("250ms") == 0.25)
        #expect(Units.parseDuration("300") == 300)
        #expect(Units.parseDuration("5 parsecs") == nil)
    }

    @Test("CIDRs: v4, v6 and IPv4-mapped v6")
    func cidr() throws {
        let v4 = try #require(CIDR("3.18.12.0/24"))
        #expect(v4.contains("3.18.12.63"))
        #expect(v4.contains("::ffff:3.18.12.63"))
        #expect(!v4.contains("3.18.13.1"))
        let v6 = try #require(CIDR("2600:1f18::/32"))
        #expect(v6.contains("2600:1f18:abcd::1"))
        #expect(!v6.contains("2600:1f19::1"))
        #expect(CIDR("300.1.1.1/8") == nil)
        #expect(CIDR("10.0.0.0/33") == nil)
        #expect(CIDR("::1")?.contains("::1") == true)
    }

    @Test("event ids sort by time and do not repeat")
    func eventIDs() {
        let earlier = EventID.generate(now: Date(timeIntervalSince1970: 1_700_000_000))
        let later = EventID.generate(now: Date(timeIntervalSince1970: 1_700_000_001))
        #expect(earlier < later)
        #expect(earlier.count == 30)
        let many = (0..<10_000).map { _ in EventID.generate() }
        #expect(Set(many).count == many.count)
    }
}
