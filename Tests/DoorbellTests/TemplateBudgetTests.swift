@testable import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import Foundation
import Mustache
import Testing

/// Issue 10, an attack on the debug binary: a small webhook rendered a 200 MB file through a Mustache
/// section (each item re-renders a large parent value), and a file path of 20,000 `d/` created as
/// many nested folders. Every render is bounded while it renders; file paths are capped.
@Suite("Template budget", .serialized)
struct TemplateBudgetTests {
    static let invoiceTemplate = "{{#body.items}}<tr><td>{{name}}</td><td>{{amount}} {{body.currency}}</td></tr>{{/body.items}}"

    /// The attack's body: 108 KB that the template above multiplies 2,000 times (200 MB).
    static let attackBody: [UInt8] = {
        let items = Array(repeating: "{}", count: 2000).joined(separator: ",")
        return Array(#"{"type":"invoice","currency":"\#(String(repeating: "U", count: 100_000))","items":[\#(items)]}"#.utf8)
    }()

    static func config(_ automations: String) -> String {
        TestConfigs.standard() + """

            retry: { schedule: [0s, 50ms, 50ms], jitter: 0 }
            files_dir: out
            automations:
            \(automations)
            """
    }

    /// Posts `body` to the `open` source and waits until its one run has ended.
    static func run(_ server: TestServer, body: [UInt8]) async throws -> RunRecord {
        let store = try #require(server.store as? any RunStore)
        let reply = try await post("\(server.baseURL)/hooks/open", body: body)
        let eventID = try #require(reply.json["id"] as? String, "\(reply.status) \(reply.body)")
        #expect(try await eventually(30) {
            let status = try await store.runs(eventID: eventID, limit: 1).first?.status
            return status == .succeeded || status == .dead
        })
        return try #require(try await store.runs(eventID: eventID, limit: 1).first)
    }

    static func json(_ object: [String: Any]) throws -> [UInt8] {
        Array(try JSONSerialization.data(withJSONObject: object))
    }

    /// A line of /proc/self/status in bytes (`VmRSS`, `VmHWM`).
    static func memory(_ field: String) throws -> Int {
        let status = try String(contentsOfFile: "/proc/self/status", encoding: .utf8)
        let line = try #require(status.split(separator: "\n").first { $0.hasPrefix("\(field):") })
        let kilobytes = try #require(Int(line.split(separator: " ", omittingEmptySubsequences: true)[1]))
        return kilobytes * 1024
    }

    /// Starts the peak (`VmHWM`) over from the current RSS (Linux: writing 5 to clear_refs).
    static func resetPeakMemory() throws {
        try "5".write(toFile: "/proc/self/clear_refs", atomically: false, encoding: .utf8)
    }

    @Test("the attack's 108 KB body against a file step's section fails for good, writes no file and does not make the server's memory jump; a normal invoice renders as before")
    func fileSectionAttack() async throws {
        let folder = try TemporaryFolder.make()
        try Self.invoiceTemplate.write(to: folder.appendingPathComponent("invoice.html"), atomically: true, encoding: .utf8)
        let config = Self.config("""
              - id: invoice
                on: ["open:invoice"]
                steps:
                  - { id: file, file: { path: "invoices/{{event.id}}.html", template: invoice.html } }
            """)
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let invoices = folder.appendingPathComponent("out/invoices")
            // The control: a normal invoice, HTML-escaped as before.
            let normal = try await Self.run(server, body: try Self.json([
                "type": "invoice", "currency": "EUR",
                "items": [["name": "Tea <green>", "amount": 3], ["name": "Cake", "amount": 4.5]],
            ]))
            #expect(normal.status == .succeeded, "\(normal.lastError ?? "")")
            let written = try FileManager.default.contentsOfDirectory(atPath: invoices.path)
            #expect(written.count == 1)
            let text = try String(contentsOf: invoices.appendingPathComponent(try #require(written.first)), encoding: .utf8)
            #expect(text == "<tr><td>Tea &lt;green&gt;</td><td>3 EUR</td></tr><tr><td>Cake</td><td>4.5 EUR</td></tr>")

            let before = try Self.memory("VmRSS")
            try Self.resetPeakMemory()
            let attack = try await Self.run(server, body: Self.attackBody)
            let peak = try Self.memory("VmHWM")
            #expect(attack.status == .dead)
            #expect(attack.attempt <= 1, "refused for good, not retried")
            #expect(attack.lastError?.contains("rendered file output would exceed \(Templates.fileLimit) bytes") == true, "\(attack.lastError ?? "")")
            #expect(try FileManager.default.contentsOfDirectory(atPath: invoices.path) == written, "no file written")
            // Unbounded, this render held 200 MB (and more in copies); bounded, about 16 MiB twice.
            #expect(peak - before < 100 * 1024 * 1024, "peak RSS rose by \((peak - before) / 1024 / 1024) MB")
        }
    }

    @Test("exec arguments are bounded too: the same section, and a section nested in one over the same list, fail for good naming the argument")
    func execArgumentAttack() async throws {
        let folder = try TemporaryFolder.make()
        let nestedItems = Array(repeating: "1", count: 100_000).joined(separator: ",")
        let config = Self.config("""
              - id: argv
                on: ["open:invoice"]
                steps:
                  - { id: e, exec: { argv: ["/bin/echo", "ok", "\(Self.invoiceTemplate)"] } }
              - id: nested
                on: ["open:nested"]
                steps:
                  - { id: e, exec: { argv: ["/bin/echo", "{{#body.items}}{{#body.items}}{{/body.items}}{{/body.items}}"] } }
            """)
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let attack = try await Self.run(server, body: Self.attackBody)
            #expect(attack.status == .dead)
            #expect(attack.attempt <= 1, "refused for good, not retried")
            #expect(attack.lastError?.contains("rendered exec.argv[2] would exceed \(Templates.fieldLimit) bytes") == true, "\(attack.lastError ?? "")")

            // 100,000 × 100,000 iterations of nothing: without a count of iterations this never ends.
            let nested = try await Self.run(server, body: Array(#"{"type":"nested","items":[\#(nestedItems)]}"#.utf8))
            #expect(nested.status == .dead)
            #expect(nested.lastError?.contains("rendered exec.argv[1] would exceed") == true, "\(nested.lastError ?? "")")
        }
    }

    @Test("values keep their meaning under the budget: booleans, numbers, transforms, inverted sections, sequence transforms, nested objects, missing values")
    func renderingUnchanged() throws {
        let body = try JSONSerialization.jsonObject(with: Data(#"""
            {"paid": false, "vip": true, "zero": 0, "n": 41, "name": "ada", "tags": [], "who": {"first": "Ada", "last": "L"},
             "items": [{"name": "a", "qty": 1}, {"name": "b", "qty": 2}], "words": ["x", "y"], "none": null}
            """#.utf8))
        let context: [String: Any] = ["body": body, "event": ["id": "evt_1"] as [String: Any]]
        let cases: [(String, String)] = [
            ("{{#body.paid}}PAID{{/body.paid}}{{^body.paid}}DUE{{/body.paid}}", "DUE"),
            ("{{#body.vip}}VIP{{/body.vip}}", "VIP"),
            ("{{body.zero}}/{{body.n}}/{{plusone(body.n)}}", "0/41/"),
            ("{{uppercased(body.name)}} {{capitalized(body.name)}}", "ADA Ada"),
            ("{{^body.tags}}no tags{{/body.tags}}{{#body.tags}}tag{{/body.tags}}", "no tags"),
            ("{{#body.who}}{{first}} {{last}} of {{event.id}}{{/body.who}}", "Ada L of evt_1"),
            ("{{#body.items}}{{name}}×{{qty}}{{^last()}}, {{/last()}}{{/body.items}}", "a×1, b×2"),
            ("{{#body.words}}[{{.}}]{{/body.words}} {{count(body.items)}} {{first(body.words)}} {{#reversed(body.words)}}{{.}}{{/reversed(body.words)}}", "[x][y] 2 x yx"),
            ("{{body.missing}}|{{body.none}}|{{#body.none}}x{{/body.none}}{{^body.none}}null{{/body.none}}", "||null"),
            ("{{body.who.first}}{{{body.name}}}{{& body.name}}", "Adaadaada"),
            ("{{#body.name}}[{{.}}]{{/body.name}}{{#body.zero}}zero{{/body.zero}}{{#body.n}}n{{/body.n}}", ""),
            // A sender may send a list where the template expects an object: its names find nothing, as before.
            ("{{#body.words.items}}x{{/body.words.items}}{{body.words.budget}}{{body.name.text}}{{body.who.object}}|", "|"),
        ]
        for (template, expected) in cases {
            let plain = try MustacheTemplate(string: "{{% CONTENT_TYPE: TEXT}}" + template).render(context)
            let budgeted = try Templates.render(template, context)
            // What swift-mustache renders over the plain context, and (where we say) what a reader expects.
            #expect(budgeted == plain, "\(template)")
            if !expected.isEmpty { #expect(budgeted.hasPrefix(expected), "\(template): \(budgeted)") }
        }
        #expect(try Templates.render("<{{body.name}}>", ["body": ["name": "<b>"]], html: true) == "<&lt;b&gt;>")
    }

    @Test("a render is refused as soon as its output would pass the limit, counting escaping, and not before")
    func limitIsExact() throws {
        let context: [String: Any] = ["body": ["v": String(repeating: "a", count: 100), "h": String(repeating: "<", count: 100)]]
        #expect(try Templates.render("{{body.v}}", context, limit: 100) == String(repeating: "a", count: 100))
        #expect(throws: Templates.RenderError.self) { try Templates.render("{{body.v}}!", context, limit: 100).count }
        #expect(throws: Templates.RenderError.self) { try Templates.render("{{body.v}}{{body.v}}", context, limit: 150) }
        // `<` is four bytes once escaped.
        #expect(try Templates.render("{{body.h}}", context, html: true, limit: 400).count == 400)
        #expect(throws: Templates.RenderError.self) { try Templates.render("{{body.h}}", context, html: true, limit: 399) }
        let error = #expect(throws: Templates.RenderError.self) {
            try Templates.render("{{body.v}}{{body.v}}", context, field: "http.body", limit: 150)
        }
        #expect(error?.description == "rendered http.body would exceed 150 bytes")
    }

    @Test("a block or parent tag inside a section does not end the section early: each row is charged the whole section")
    func blocksInsideSections() {
        let long = String(repeating: "A", count: 10_000)
        for inner in ["{{$b}}{{/b}}", "{{<p}}{{/p}}", "{{#x}}{{/x}}"] {
            let template = "{{#body.items}}\(inner)\(long){{/body.items}}"
            let measured = RenderBudget.sectionBodies(template).byName["items"] ?? 0
            #expect(measured >= long.utf8.count, "\(inner): the section was measured as \(measured) bytes")
        }
    }

    @Test("a long block in one section does not count against each row of another: 1,000 rows beside a 5 KB conditional block fit in 1 MiB; the same rows each 5 KB long do not")
    func iterationsChargeTheirOwnSection() throws {
        let items = (0..<1000).map { ["name": "item \($0)"] }
        let context: [String: Any] = ["body": ["vip": true, "items": items] as [String: Any]]
        let block = String(repeating: "v", count: 5000)
        let rendered = try Templates.render("{{#body.vip}}\(block){{/body.vip}}{{#body.items}}<tr>{{name}}</tr>{{/body.items}}", context)
        #expect(rendered.hasPrefix(block + "<tr>item 0</tr>") && rendered.hasSuffix("<tr>item 999</tr>"))
        #expect(throws: Templates.RenderError.self) {
            try Templates.render("{{#body.items}}<tr>\(block){{name}}</tr>{{/body.items}}", context)
        }
        // Reached without a name (a list in a list), a row is charged the template's longest section.
        let nested: [String: Any] = ["body": ["groups": [items.map { $0["name"]! }]]]
        #expect(throws: Templates.RenderError.self) {
            try Templates.render("{{#body.vip}}\(String(repeating: "v", count: 2000)){{/body.vip}}{{#body.groups}}{{#.}}<i>{{.}}</i>{{/.}}{{/body.groups}}", nested, limit: 1_000_000)
        }
    }

    @Test("a file path from the body is capped: 20,000 nested folders, 17 levels or a 256-byte name fail for good and create nothing; 16 levels are written")
    func filePathLimits() async throws {
        let folder = try TemporaryFolder.make()
        try "x".write(to: folder.appendingPathComponent("t.txt"), atomically: true, encoding: .utf8)
        let config = Self.config("""
              - id: write
                on: ["open:write"]
                steps:
                  - { id: file, file: { path: "{{body.p}}", template: t.txt } }
            """)
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let files = folder.appendingPathComponent("out")
            let refused: [(path: String, limit: String)] = [
                (String(repeating: "d/", count: 20000) + "f.txt", "at most 1024 are allowed"),
                (Array(repeating: "e", count: 16).joined(separator: "/") + "/f.txt", "at most 16 are allowed"),
                ("g/" + String(repeating: "n", count: 256), "at most 255 are allowed"),
            ]
            for (path, limit) in refused {
                let run = try await Self.run(server, body: try Self.json(["type": "write", "p": path]))
                #expect(run.status == .dead, "\(path.prefix(20))")
                #expect(run.attempt <= 1, "refused for good, not retried")
                #expect(run.lastError?.contains(limit) == true, "\(run.lastError ?? "")")
                #expect((run.lastError?.utf8.count ?? 0) < 500, "the error quotes only the path's start")
            }
            #expect(!FileManager.default.fileExists(atPath: files.appendingPathComponent("d").path), "no folder created")
            #expect(!FileManager.default.fileExists(atPath: files.appendingPathComponent("e").path), "no folder created")
            #expect(!FileManager.default.fileExists(atPath: files.appendingPathComponent("g").path), "no folder created")

            // The control: 16 levels, a 255-byte name, `..` resolved within the limit.
            let deep = Array(repeating: "k", count: 15).joined(separator: "/") + "/" + String(repeating: "f", count: 255)
            let ok = try await Self.run(server, body: try Self.json(["type": "write", "p": "x/../" + deep]))
            #expect(ok.status == .succeeded, "\(ok.lastError ?? "")")
            #expect(FileManager.default.fileExists(atPath: files.appendingPathComponent(deep).path))
        }
    }
}
