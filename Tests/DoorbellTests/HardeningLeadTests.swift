import DoorbellStorage
import Foundation
import Testing

/// Holes an attack on the release binary found after the first round of hardening: a templated
/// recipient turned into a mailing list, backups written where attachments are read, terminal escapes
/// from webhook data in CLI output, unbounded endpoint fields, and a truncated database opened as new.
@Suite("Hardening: relays, backups, terminal, endpoints")
struct HardeningLeadTests {
    @Test("a templated recipient names one address: a body listing many fails for good and nothing is sent")
    func oneAddressPerTemplate() async throws {
        let smtp = try SMTPServer(mode: "plain", auth: false)
        defer { smtp.stop() }
        let config = TestConfigs.standard() + """

            retry: { schedule: [0s, 200ms], jitter: 0 }
            smtp: { host: 127.0.0.1, port: \(smtp.port), from: shop@example.com, tls: none, timeout: 5s }
            automations:
              - id: receipt
                on: ["open:paid"]
                steps:
                  - id: mail
                    email: { to: "{{body.email}}", cc: "a@example.com, b@example.com", subject: "Receipt", text: "Thanks" }
            """
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            let many = (0..<200).map { "r\($0)@example.com" }.joined(separator: ", ")
            let relay = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"paid","email":"\#(many)"}"#.utf8))
            let relayID = try #require(relay.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: relayID, limit: 1).first?.status == .dead })
            let run = try #require(try await store.runs(eventID: relayID, limit: 1).first)
            #expect(run.attempt <= 1, "not retried")
            #expect(run.lastError?.contains("rendered 200 addresses") == true, "\(run.lastError ?? "")")

            // One address from the body plus the config's literal list: delivered to those three only.
            let one = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"paid","email":"jenny@example.com"}"#.utf8))
            let oneID = try #require(one.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: oneID, limit: 1).first?.status == .succeeded })
            let messages = try smtp.messages()
            #expect(messages.count == 1)
            #expect(messages.first?["rcpt"] as? [String] == ["jenny@example.com", "a@example.com", "b@example.com"])
        }
    }

    @Test("doorbell backup refuses a file inside files_dir, where email steps may attach it")
    func backupOutsideFilesDirectory() throws {
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try TestConfigs.standard().write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess(config: config)
        try server.start()
        defer { _ = server.terminate() }
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("files/out"), withIntermediateDirectories: true)
        let inside = folder.appendingPathComponent("files/out/copy.db").path
        let refused = try ChildProcess.doorbell(["backup", inside, "--config", config.path])
        #expect(refused.status == 1)
        #expect(refused.stderr.contains("inside files_dir"), "\(refused.stderr)")
        #expect(!FileManager.default.fileExists(atPath: inside))
        // A dangling link pointing into files_dir is no way around it.
        let link = folder.appendingPathComponent("link.db").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: folder.appendingPathComponent("files/out/via-link.db").path)
        let viaLink = try ChildProcess.doorbell(["backup", link, "--config", config.path])
        #expect(viaLink.status == 1, "\(viaLink.stdout)")
        #expect(!FileManager.default.fileExists(atPath: folder.appendingPathComponent("files/out/via-link.db").path))
        let outside = folder.appendingPathComponent("copy.db").path
        let made = try ChildProcess.doorbell(["backup", outside, "--config", config.path])
        #expect(made.status == 0, "\(made.stderr)")
        #expect(FileManager.default.fileExists(atPath: outside))
    }

    @Test("CLI tables show control characters from webhook data as visible escapes, never raw")
    func terminalEscapes() async throws {
        let config = TestConfigs.standard() + """

            automations:
              - id: save
                on: ["open:*"]
                steps:
                  - { id: write, file: { path: "{{body.path}}", template: "t.txt" } }
            """
        let folder = try TemporaryFolder.make()
        try "hello".write(to: folder.appendingPathComponent("t.txt"), atomically: true, encoding: .utf8)
        let configFile = folder.appendingPathComponent("doorbell.yml")
        try config.write(to: configFile, atomically: true, encoding: .utf8)
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            let hostile = #"{"type":"x","path":"\u001b[2J\u001b[31mRED\r\u202e/../../escape"}"#
            let reply = try await post("\(server.baseURL)/hooks/open", body: Array(hostile.utf8))
            let id = try #require(reply.json["id"] as? String)
            #expect(try await eventually { try await store.runs(eventID: id, limit: 1).first?.status == .dead })
        }
        for arguments in [["runs", "list"], ["runs", "show"]] {
            var command = arguments + ["--config", configFile.path]
            if arguments == ["runs", "show"] {
                let listed = try ChildProcess.doorbell(["runs", "list", "--json", "--config", configFile.path])
                let runs = try #require(try JSONSerialization.jsonObject(with: Data(listed.stdout.utf8)) as? [[String: Any]])
                command.insert(try #require(runs.first?["id"] as? String), at: 2)
            }
            let shown = try ChildProcess.doorbell(command)
            #expect(shown.status == 0, "\(shown.stderr)")
            #expect(!shown.stdout.unicodeScalars.contains { $0.value == 0x1B || $0.value == 0x0D || $0.value == 0x202E }, "\(arguments): raw control characters reached the terminal")
            #expect(shown.stdout.contains("\\u{1b}"), "\(arguments): the escape is shown visibly: \(shown.stdout)")
        }
    }

    @Test("endpoint fields are bounded: too many headers, framing or signature headers, huge URLs and schedules answer 400")
    func boundedEndpoints() async throws {
        let config = TestConfigs.standard() + """

            api: { tokens: ["\(apiToken)"] }
            """
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let url = "\(server.baseURL)/api/v1/endpoints"
            func create(_ fields: [String: Any]) async throws -> Reply {
                try await api(.POST, url, ["id": "e\(UUID().uuidString.prefix(6))", "url": "https://example.com/hook"].merging(fields) { $1 })
            }
            let hostHeader = try await create(["headers": ["Host": "evil.example"]])
            #expect(hostHeader.status == 400 && hostHeader.body.contains("Host"), "\(hostHeader.body)")
            let contentType = try await create(["headers": ["Content-Type": "text/plain"]])
            #expect(contentType.status == 400, "\(contentType.body)")
            let signature = try await create(["headers": ["webhook-signature": "v1,forged"]])
            #expect(signature.status == 400, "\(signature.body)")
            let crowded = try await create(["headers": Dictionary(uniqueKeysWithValues: (0..<40).map { ("X-H\($0)", "v") })])
            #expect(crowded.status == 400 && crowded.body.contains("at most 32 headers"), "\(crowded.body)")
            let longURL = try await create(["url": "https://example.com/" + String(repeating: "a", count: 5000)])
            #expect(longURL.status == 400 && longURL.body.contains("url"), "\(longURL.body)")
            let patterns = try await create(["events": (0..<150).map { "t\($0).*" }])
            #expect(patterns.status == 400, "\(patterns.body)")
            let fine = try await create(["headers": ["X-Tenant": "bakery"], "events": ["order.*"]])
            #expect(fine.status == 201, "\(fine.body)")
        }
    }

    @Test("an emptied database beside a WAL that holds frames is refused at open, not started as a new database")
    func emptiedDatabaseRefused() async throws {
        let folder = try TemporaryFolder.make()
        let path = folder.appendingPathComponent("doorbell.db").path
        FileManager.default.createFile(atPath: path, contents: Data())
        FileManager.default.createFile(atPath: path + "-wal", contents: Data(repeating: 7, count: 4096))
        await #expect {
            _ = try await StoreFactory.open(.sqlite(path: path), logger: .init(label: "test"))
        } throws: { error in
            "\(error)".contains("truncated")
        }
        #expect((try? FileManager.default.attributesOfItem(atPath: path + "-wal"))?[.size] as? Int == 4096, "the WAL is left as it was")
    }
}
