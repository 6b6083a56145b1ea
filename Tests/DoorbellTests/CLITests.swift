import Foundation
import Testing

/// The `doorbell` binary as a user runs it.
@Suite("Command line", .serialized)
struct CLITests {
    @Test("check: a good config prints a summary and exits 0; a bad one lists every error and exits 1")
    func check() throws {
        let folder = try TemporaryFolder.make()
        let good = folder.appendingPathComponent("good.yml")
        try TestConfigs.standard().write(to: good, atomically: true, encoding: .utf8)
        let ok = try ChildProcess.doorbell(["check", "--config", good.path])
        #expect(ok.status == 0)
        #expect(ok.stdout.contains("/hooks/stripe"))

        let bad = folder.appendingPathComponent("bad.yml")
        try """
            sources:
              - id: x
                provider: nope
              - id: y
                provider: stripe
                max_body: big
            """.write(to: bad, atomically: true, encoding: .utf8)
        let failed = try ChildProcess.doorbell(["check", "--config", bad.path])
        #expect(failed.status == 1)
        #expect(failed.stderr.contains("sources[0].provider: unknown provider 'nope'"))
        #expect(failed.stderr.contains("sources[1].max_body"))
        #expect(failed.stderr.contains("sources[1].secrets: missing"))
    }

    @Test("trigger sends signed fixtures that serve stores; events list and show find them")
    func triggerAndList() throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()
        defer { _ = server.terminate() }
        let listed = try ChildProcess.doorbell(["trigger", "--list"])
        for name in ["stripe payment_intent.succeeded", "stripe checkout.session.completed", "github push", "github pull_request", "shopify orders/create", "twilio sms", "standard order.created", "form"] {
            #expect(listed.stdout.contains(name))
        }
        for fixture in [["stripe", "payment_intent.succeeded"], ["stripe", "checkout.session.completed"], ["form"]] {
            let sent = try ChildProcess.doorbell(["trigger"] + fixture + ["--config", config.path, "--url", "\(server.baseURL)/hooks/\(fixture.count == 1 ? "contact-form" : "stripe")"])
            #expect(sent.status == 0, "\(fixture): \(sent.stdout) \(sent.stderr)")
            #expect(sent.stdout.contains("200"))
        }
        let wrongSecret = try ChildProcess.doorbell(["trigger", "stripe", "payment_intent.succeeded", "--config", config.path, "--url", "\(server.baseURL)/hooks/stripe", "--secret", "whsec_wrong"])
        #expect(wrongSecret.status == 1)
        #expect(wrongSecret.stdout.contains("401"))

        let list = try ChildProcess.doorbell(["events", "list", "--config", config.path, "--json"])
        #expect(list.status == 0)
        let events = try JSONSerialization.jsonObject(with: Data(list.stdout.utf8)) as! [[String: Any]]
        #expect(Set(events.compactMap { $0["type"] as? String }) == ["payment_intent.succeeded", "checkout.session.completed", "form.submitted"])
        let id = try #require(events.first?["id"] as? String)
        let show = try ChildProcess.doorbell(["events", "show", id, "--config", config.path])
        #expect(show.status == 0)
        #expect(show.stdout.contains(id))
        let unknown = try ChildProcess.doorbell(["events", "show", "evt_nope", "--config", config.path])
        #expect(unknown.status == 1)
    }
}

extension CLITests {
    @Test("sign and verify agree, and verify names what is wrong")
    func signAndVerify() throws {
        let folder = try TemporaryFolder.make()
        let body = folder.appendingPathComponent("body.json")
        try #"{"id":"evt_cli","type":"payment_intent.succeeded"}"#.write(to: body, atomically: true, encoding: .utf8)
        let signed = try ChildProcess.doorbell(["sign", "--provider", "stripe", "--secret", "whsec_cli", "--data", body.path])
        #expect(signed.status == 0)
        let header = signed.stdout.trimmingCharacters(in: .whitespacesAndNewlines)
        #expect(header.hasPrefix("stripe-signature: t="))
        let valid = try ChildProcess.doorbell(["verify", "--provider", "stripe", "--secret", "whsec_cli", "--data", body.path, "-H", header])
        #expect(valid.status == 0)
        #expect(valid.stdout.contains("valid"))
        let invalid = try ChildProcess.doorbell(["verify", "--provider", "stripe", "--secret", "whsec_other", "--data", body.path, "-H", header])
        #expect(invalid.status == 1)
        #expect(invalid.stdout.contains("invalid: signature mismatch"))
    }

    @Test("check warns about secrets that do not look like the provider's")
    func checkWarnsAboutSecrets() throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try """
            sources:
              - { id: s, provider: standard, secrets: ["MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"] }
              - { id: p, provider: stripe, secrets: ["sk_live_oops"] }
            """.write(to: config, atomically: true, encoding: .utf8)
        let result = try ChildProcess.doorbell(["check", "--config", config.path])
        #expect(result.status == 0)
        #expect(result.stdout.contains("sources[0].secrets[0]: Standard Webhooks secrets look like whsec_"))
        #expect(result.stdout.contains("sources[1].secrets[0]: Stripe signing secrets start with whsec_"))
    }
}
