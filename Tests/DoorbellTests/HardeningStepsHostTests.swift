import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

/// Steps that webhook data cannot turn against the host: `exec` descriptors, environment, process
/// groups and timeouts; `files_dir` containment for `file` outputs and `attach`.
@Suite("Hardening: steps and the host", .serialized)
struct HardeningStepsHostTests {
    // MARK: exec descriptors

    @Test("2,000 exec steps under `ulimit -n 256`: every run succeeds and the server's descriptors end where they started")
    func execDescriptors() async throws {
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            let stepsPerRun = 20
            let runs = 100
            let steps = (0..<stepsPerRun).map { "      - { id: s\($0), exec: { argv: [\"/bin/echo\", \"{{body.n}}\"] } }" }.joined(separator: "\n")
            let config = folder.appendingPathComponent("doorbell.yml")
            try (TestConfigs.standard() + """

                worker: { concurrency: 8 }
                automations:
                  - id: many-commands
                    on: ["open:tick"]
                    steps:
                \(steps)
                      - { id: done, http: { url: "\(receiver.baseURL)/done", json: { n: "{{body.n}}" } } }
                """).write(to: config, atomically: true, encoding: .utf8)
            // A process of its own, so its descriptors are counted without this test process's.
            let server = try ServeProcess.started(config: config, openFiles: 256)
            defer { server.stop() }

            // Warm up once, so what is created once per process (pools, the I/O thread) is counted before.
            #expect(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"tick","n":-1}"#.utf8)).status == 200)
            #expect(try await eventually(30) { receiver.requests("/done").count == 1 })
            let before = try server.openDescriptors()

            for n in 0..<runs {
                #expect(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"tick","n":\#(n)}"#.utf8)).status == 200)
            }
            #expect(try await eventually(90) { receiver.requests("/done").count == runs + 1 }, "every run finished: \(receiver.requests("/done").count - 1) of \(runs)")
            #expect(server.isRunning, "the server survived \(runs * stepsPerRun) commands under a 256-descriptor limit")
            // Allowed to grow by what is bounded, not by what is per command: the `done` posts run up to
            // `concurrency` (8) at once, so the pool to the receiver may hold 8 connections where the
            // warm-up needed 1, and this test's own connections may still be closing. A leak would be
            // two or more descriptors per command: thousands here, and fatal under the 256 limit.
            let slack = 16
            var after = try server.openDescriptors()
            _ = try await eventually(5) {
                after = try server.openDescriptors()
                return after <= before + slack
            }
            #expect(after <= before + slack, "open descriptors: \(before) before, \(after) after \(runs * stepsPerRun) commands")
            #expect(try await get("\(server.baseURL)/healthz").status == 200)
        }
    }

    // MARK: exec environment, process groups, timeouts

    static func execConfig(extra: String) -> String {
        TestConfigs.standard() + """

            retry: { schedule: [0s], jitter: 0 }
            automations:
            \(extra)
            """
    }

    /// Sends an event of `type` to the `open` source and waits until its one run leaves `running`.
    static func runToEnd(_ server: TestServer, type: String, seconds: Double = 20) async throws -> (RunRecord, [String: String]) {
        let store = try #require(server.store as? any RunStore)
        let reply = try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"\#(type)"}"#.utf8))
        let eventID = try #require(reply.json["id"] as? String)
        #expect(try await eventually(seconds) {
            guard let run = try await store.runs(eventID: eventID, limit: 1).first else { return false }
            return run.status == .succeeded || run.status == .dead
        })
        let run = try #require(try await store.runs(eventID: eventID, limit: 1).first)
        return (run, try await store.stepOutputs(runID: run.id))
    }

    /// The names `env` printed, from a step's stored output.
    static func printedNames(_ output: String?) throws -> Set<String> {
        let object = try #require(try JSONSerialization.jsonObject(with: Data((output ?? "{}").utf8)) as? [String: Any])
        let stdout = try #require(object["stdout"] as? String)
        return Set(stdout.split(separator: "\n").compactMap { $0.split(separator: "=", maxSplits: 1).first.map(String.init) })
    }

    @Test("`env` as an exec step sees PATH, HOME, LANG, TZ and its own env, none of the server's secrets; inherit_env passes exactly the names listed")
    func execEnvironment() async throws {
        // The secrets live in the environment of a real `doorbell serve`, never of this process
        // (setenv here would race with every suite running in parallel).
        let secret = "doorbell-secret-\(UUID().uuidString)"
        try await Receiver.with { receiver in
            let folder = try TemporaryFolder.make()
            let config = folder.appendingPathComponent("doorbell.yml")
            // Each command's stdout travels on to the receiver, which the test reads.
            try Self.execConfig(extra: """
                  - id: plain
                    on: ["open:plain"]
                    steps:
                      - { id: env, exec: { argv: ["/usr/bin/env"], env: { STEP_VALUE: "{{event.type}}" } } }
                      - { id: report, http: { url: "\(receiver.baseURL)/plain", json: { stdout: "{{steps.env.stdout}}" } } }
                  - id: inheriting
                    on: ["open:inheriting"]
                    steps:
                      - { id: env, exec: { argv: ["/usr/bin/env"], inherit_env: [DOORBELL_STEPS_HOST_SHARED, DOORBELL_STEPS_HOST_ABSENT] } }
                      - { id: report, http: { url: "\(receiver.baseURL)/inheriting", json: { stdout: "{{steps.env.stdout}}" } } }
                """).write(to: config, atomically: true, encoding: .utf8)
            let server = try ServeProcess.started(
                config: config, environment: ["DOORBELL_STEPS_HOST_SECRET": secret, "DOORBELL_STEPS_HOST_SHARED": "shared-value"]
            )
            defer { server.stop() }

            func printed(_ type: String) async throws -> String {
                #expect(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"\#(type)"}"#.utf8)).status == 200)
                #expect(try await eventually(20) { !receiver.requests("/\(type)").isEmpty }, "\(type): the run reported: \(server.output().suffix(2000))")
                return try #require(receiver.requests("/\(type)").first?.body)
            }
            let plainOutput = try await printed("plain")
            #expect(!plainOutput.contains(secret), "the server's secret reached the command")
            let plainNames = try Self.printedNames(plainOutput)
            #expect(plainNames.isSubset(of: ["PATH", "HOME", "LANG", "TZ", "STEP_VALUE"]), "unexpected: \(plainNames.subtracting(["PATH", "HOME", "LANG", "TZ", "STEP_VALUE"]))")
            #expect(plainNames.contains("PATH") && plainNames.contains("STEP_VALUE"))
            #expect(plainOutput.contains("STEP_VALUE=plain"), "the step's env is rendered")

            let inheritingOutput = try await printed("inheriting")
            let names = try Self.printedNames(inheritingOutput)
            #expect(names.subtracting(["PATH", "HOME", "LANG", "TZ"]) == ["DOORBELL_STEPS_HOST_SHARED"], "\(names)")
            #expect(inheritingOutput.contains("DOORBELL_STEPS_HOST_SHARED=shared-value"))
            #expect(!inheritingOutput.contains(secret))
        }
    }

    /// Processes whose command line contains `marker`.
    static func processes(marked marker: String) -> [Int32] {
        let entries = (try? FileManager.default.contentsOfDirectory(atPath: "/proc")) ?? []
        return entries.compactMap { entry -> Int32? in
            guard let pid = Int32(entry), let data = FileManager.default.contents(atPath: "/proc/\(entry)/cmdline") else { return nil }
            let line = String(decoding: data.map { $0 == 0 ? 0x20 : $0 }, as: UTF8.self)
            return line.contains(marker) ? pid : nil
        }
    }

    @Test("a command that exits at once while its background child holds stdout succeeds promptly, and the child is ended")
    func grandchildHoldingStdout() async throws {
        let marker = "30.\(Int.random(in: 100_000...999_999))"
        let config = Self.execConfig(extra: """
              - id: background
                on: ["open:background"]
                steps:
                  - { id: spawn, exec: { argv: ["/bin/sh", "-c", "sleep \(marker) & echo hi"], timeout: 10s } }
            """)
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let (run, outputs) = try await Self.runToEnd(server, type: "background")
            // Waiting for the pipe to close would end at the 10 s timeout and be reported as timed out.
            #expect(run.status == .succeeded, "\(run.lastError ?? "")")
            #expect(run.attempt <= 1)
            #expect(outputs["spawn"]?.contains(#""stdout":"hi\n""#) == true, "\(outputs["spawn"] ?? "")")
            #expect(try await eventually(3) { Self.processes(marked: marker).isEmpty }, "the background sleep was left running: \(Self.processes(marked: marker))")
        }
        for pid in Self.processes(marked: marker) { kill(pid, SIGKILL) }
    }

    @Test("a command past its timeout is stopped with its whole process group and reported timed out")
    func timeoutEndsTheGroup() async throws {
        let marker = "30.\(Int.random(in: 100_000...999_999))"
        let config = Self.execConfig(extra: """
              - id: slow
                on: ["open:slow"]
                steps:
                  - { id: wait, exec: { argv: ["/bin/sh", "-c", "sleep \(marker); echo never"], timeout: 1s } }
            """)
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let started = Date()
            let (run, _) = try await Self.runToEnd(server, type: "slow")
            #expect(run.status == .dead)
            #expect(run.lastError?.contains("timed out") == true, "\(run.lastError ?? "")")
            #expect(Date().timeIntervalSince(started) < 20, "the step returned at its timeout, not after the 30 s sleep")
            #expect(try await eventually(3) { Self.processes(marked: marker).isEmpty }, "left running: \(Self.processes(marked: marker))")
        }
        for pid in Self.processes(marked: marker) { kill(pid, SIGKILL) }
    }

    @Test("SIGTERM while a command runs: the server exits within the step's timeout plus grace, leaving no process behind")
    func shutdownWithCommandRunning() async throws {
        let marker = "30.\(Int.random(in: 100_000...999_999))"
        let folder = try TemporaryFolder.make()
        let config = folder.appendingPathComponent("doorbell.yml")
        try Self.execConfig(extra: """
              - id: slow
                on: ["open:slow"]
                steps:
                  - { id: wait, exec: { argv: ["/bin/sh", "-c", "sleep \(marker)"], timeout: 2s } }
            """).write(to: config, atomically: true, encoding: .utf8)
        let server = try ServeProcess.started(config: config)
        #expect(try await post("\(server.baseURL)/hooks/open", body: Array(#"{"type":"slow"}"#.utf8)).status == 200)
        #expect(try await eventually { !Self.processes(marked: marker).isEmpty }, "the command started")
        let started = Date()
        _ = server.terminate()
        // Before: the server waited for the 30 s sleep (and its pipes) to end.
        #expect(Date().timeIntervalSince(started) < 15, "exited after \(Date().timeIntervalSince(started)) s")
        #expect(Self.processes(marked: marker).isEmpty, "left running: \(Self.processes(marked: marker))")
        for pid in Self.processes(marked: marker) { kill(pid, SIGKILL) }
    }

    // MARK: exec config

    @Test("argv[0] must be a literal; inherit_env and env names are checked at load")
    func execConfigChecks() {
        func issues(_ exec: String) -> [String] {
            do {
                _ = try ConfigLoader.parse(yaml: Self.execConfig(extra: """
                      - id: a
                        on: ["open:x"]
                        steps:
                          - { id: first, http: { url: "http://127.0.0.1:9/x" } }
                          - { id: second, exec: \(exec) }
                    """), directory: "/srv/doorbell", environment: [:])
                return []
            } catch let error as ConfigError {
                return error.issues.map(\.description)
            } catch {
                return ["unexpected: \(error)"]
            }
        }
        let templated = issues(#"{ argv: ["{{body.program}}", "x"] }"#)
        #expect(templated.contains { $0.hasPrefix("automations[0].steps[1].exec.argv[0]:") }, "\(templated)")
        let badNames = issues(#"{ argv: ["/bin/true"], inherit_env: ["OK_NAME", "BAD-NAME", "1X"], env: { "A=B": "x" } }"#)
        #expect(badNames.contains { $0.hasPrefix("automations[0].steps[1].exec.inherit_env[1]:") }, "\(badNames)")
        #expect(badNames.contains { $0.hasPrefix("automations[0].steps[1].exec.inherit_env[2]:") }, "\(badNames)")
        #expect(badNames.contains { $0.hasPrefix("automations[0].steps[1].exec.env.A=B:") }, "\(badNames)")
        #expect(!badNames.contains { $0.contains("inherit_env[0]") })
        #expect(issues(#"{ argv: ["/bin/echo", "{{body.x}}"], inherit_env: [SHOP_TOKEN] }"#).isEmpty)
        let templatedDir = issues(#"{ argv: ["/bin/true"], dir: "{{body.d}}" }"#)
        #expect(templatedDir.contains { $0.hasPrefix("automations[0].steps[1].exec.dir:") }, "\(templatedDir)")
    }

    // MARK: files_dir

    @Test("files_dir defaults to files/ beside the config; one that holds the database or the config is refused by parse and by `doorbell check`")
    func filesDirectoryPlacement() throws {
        let defaults = try ConfigLoader.parse(yaml: TestConfigs.standard(), directory: "/srv/doorbell", environment: [:])
        #expect(defaults.filesDirectory == "/srv/doorbell/files")

        func issues(_ yaml: String, directory: String = "/srv/doorbell") -> [String] {
            do {
                _ = try ConfigLoader.parse(yaml: yaml, directory: directory, environment: [:])
                return []
            } catch let error as ConfigError {
                return error.issues.map(\.description)
            } catch {
                return ["unexpected: \(error)"]
            }
        }
        let itself = issues(TestConfigs.standard() + "\nfiles_dir: .\n")
        #expect(itself.contains { $0.hasPrefix("files_dir:") && $0.contains("the database") }, "\(itself)")
        #expect(itself.contains { $0.hasPrefix("files_dir:") && $0.contains("the config file") }, "\(itself)")
        #expect(issues(TestConfigs.standard(storage: "sqlite:out/doorbell.db") + "\nfiles_dir: out\n").contains { $0.contains("the database") })
        #expect(issues(TestConfigs.standard() + "\nfiles_dir: ..\n").contains { $0.contains("the config file") }, "a parent folder holds both")
        #expect(issues(TestConfigs.standard() + "\nfiles_dir: out\n").isEmpty)

        // A link to the database's folder is seen through.
        let folder = try TemporaryFolder.make()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("data"), withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("alias").path, withDestinationPath: folder.appendingPathComponent("data").path)
        let linked = issues(TestConfigs.standard(storage: "sqlite:data/doorbell.db") + "\nfiles_dir: alias\n", directory: folder.path)
        #expect(linked.contains { $0.hasPrefix("files_dir:") && $0.contains("the database") }, "\(linked)")

        // The real command: exit 1, the error names files_dir.
        let config = folder.appendingPathComponent("doorbell.yml")
        try (TestConfigs.standard() + "\nfiles_dir: .\n").write(to: config, atomically: true, encoding: .utf8)
        let checked = try ChildProcess.doorbell(["check", "--config", config.path])
        #expect(checked.status != 0)
        #expect((checked.stdout + checked.stderr).contains("files_dir"), "\(checked.stdout) \(checked.stderr)")
    }

    @Test("a file step's template path resolves against the config's folder")
    func templateResolvesAgainstConfigFolder() throws {
        let folder = try TemporaryFolder.make()
        try FileManager.default.createDirectory(at: folder.appendingPathComponent("templates"), withIntermediateDirectories: true)
        try "x".write(to: folder.appendingPathComponent("templates/invoice.html"), atomically: true, encoding: .utf8)
        let configuration = try ConfigLoader.parse(yaml: Self.execConfig(extra: """
              - id: a
                on: ["open:x"]
                steps:
                  - { id: invoice, file: { path: "invoices/{{event.id}}.html", template: templates/invoice.html } }
            """), directory: folder.path, environment: [:])
        guard case .file(let file) = configuration.automations.first?.steps.first?.action else {
            Issue.record("no file step")
            return
        }
        #expect(file.template == folder.appendingPathComponent("templates/invoice.html").path)
    }

    @Test("file outputs and attachments stay in files_dir: symlinks to a file or a folder outside, ../doorbell.db and absolute paths are refused for good")
    func filesContainment() async throws {
        let folder = try TemporaryFolder.make()
        let outside = try TemporaryFolder.make()
        let files = folder.appendingPathComponent("out")
        try FileManager.default.createDirectory(at: files, withIntermediateDirectories: true)
        try "outside secret".write(to: outside.appendingPathComponent("secret.txt"), atomically: true, encoding: .utf8)
        try FileManager.default.createSymbolicLink(atPath: files.appendingPathComponent("file-link").path, withDestinationPath: outside.appendingPathComponent("secret.txt").path)
        try FileManager.default.createSymbolicLink(atPath: files.appendingPathComponent("folder-link").path, withDestinationPath: outside.path)
        try "written by {{event.type}}".write(to: folder.appendingPathComponent("t.txt"), atomically: true, encoding: .utf8)
        let config = TestConfigs.standard() + """

            retry: { schedule: [0s, 50ms, 50ms], jitter: 0 }
            files_dir: out
            smtp: { host: 127.0.0.1, port: 9, from: "shop@example.com", tls: none }
            automations:
              - id: write
                on: ["open:write"]
                steps:
                  - { id: file, file: { path: "{{body.path}}", template: t.txt } }
              - id: attach
                on: ["open:attach"]
                steps:
                  - { id: mail, email: { to: "a@example.com", subject: "s", text: "t", attach: ["{{body.path}}"] } }
            """
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let store = try #require(server.store as? any RunStore)
            func run(_ type: String, path: String) async throws -> RunRecord {
                let body = try JSONSerialization.data(withJSONObject: ["type": type, "path": path])
                let reply = try await post("\(server.baseURL)/hooks/open", body: Array(body))
                let eventID = try #require(reply.json["id"] as? String)
                #expect(try await eventually {
                    let status = try await store.runs(eventID: eventID, limit: 1).first?.status
                    return status == .succeeded || status == .dead
                })
                return try #require(try await store.runs(eventID: eventID, limit: 1).first)
            }

            // The control: a plain path below files_dir is written.
            let ok = try await run("write", path: "invoices/a.txt")
            #expect(ok.status == .succeeded, "\(ok.lastError ?? "")")
            #expect(try String(contentsOf: files.appendingPathComponent("invoices/a.txt"), encoding: .utf8) == "written by write")
            #expect(try FileManager.default.contentsOfDirectory(atPath: files.appendingPathComponent("invoices").path) == ["a.txt"], "no temporary file left behind")

            let database = folder.appendingPathComponent("doorbell.db")
            for path in ["file-link", "folder-link/new.txt", "../doorbell.db", "invoices/../../doorbell.db", database.path, "/etc/passwd"] {
                let written = try await run("write", path: path)
                #expect(written.status == .dead, "write \(path)")
                #expect(written.attempt <= 1, "write \(path): refused for good, not retried")
                #expect(written.lastError?.contains("file path") == true, "write \(path): \(written.lastError ?? "")")

                let attached = try await run("attach", path: path)
                #expect(attached.status == .dead, "attach \(path)")
                #expect(attached.attempt <= 1, "attach \(path): refused for good, not retried")
                #expect(attached.lastError?.contains("file path") == true, "attach \(path): \(attached.lastError ?? "")")
            }
            #expect(try String(contentsOf: outside.appendingPathComponent("secret.txt"), encoding: .utf8) == "outside secret")
            #expect(!FileManager.default.fileExists(atPath: outside.appendingPathComponent("new.txt").path))
            let header = try #require(FileManager.default.contents(atPath: database.path)).prefix(16)
            #expect(header == Data("SQLite format 3\0".utf8), "the database is still a database")
            // And the server still stores events in it.
            #expect(try await run("write", path: "invoices/b.txt").status == .succeeded)
        }
    }
}
