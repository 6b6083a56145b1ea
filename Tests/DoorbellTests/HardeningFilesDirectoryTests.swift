import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

/// What a review of the `files_dir` and `exec` hardening found: a files_dir that holds a file the
/// config trusts (template, secret, CA, a program or script, a command's folder); relative programs
/// resolved against the wrong folder; a command that exits 0 on our SIGTERM counted as a success.
@Suite("Hardening: what files_dir may hold, exec working folder and timeouts")
struct HardeningFilesDirectoryTests {
    /// The config's issues as `path: message` lines, or none.
    static func issues(_ yaml: String, directory: URL) -> [String] {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, directory: directory.path, environment: [:])
            return []
        } catch let error as ConfigError {
            return error.issues.map(\.description)
        } catch {
            return ["unexpected: \(error)"]
        }
    }

    /// A config folder with `data/` holding a template, a secret, a CA file and two scripts.
    static func folderWithData() throws -> URL {
        let folder = try TemporaryFolder.make()
        let data = folder.appendingPathComponent("data")
        try FileManager.default.createDirectory(at: data.appendingPathComponent("work"), withIntermediateDirectories: true)
        for name in ["t.html", "secret", "ca.pem", "notify.sh", "run.sh"] {
            try "x".write(to: data.appendingPathComponent(name), atomically: true, encoding: .utf8)
        }
        try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: data.appendingPathComponent("run.sh").path)
        try FileManager.default.createSymbolicLink(atPath: folder.appendingPathComponent("alias").path, withDestinationPath: data.path)
        return folder
    }

    /// One reference to `data/` per kind, each in a config of its own.
    static let references: [(name: String, yaml: String, names: String, file: String)] = [
        ("template", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: f, file: { path: "o.html", template: data/t.html } }] }]"#, "file.template", "data/t.html"),
        ("secret file", "sources_extra", "secret_file", "data/secret"),
        ("CA file", #"smtp: { host: 127.0.0.1, from: "a@example.com", ca_file: data/ca.pem }"#, "smtp.ca_file", "data/ca.pem"),
        ("program", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: e, exec: { argv: [data/run.sh] } }] }]"#, "exec.argv[0]", "data/run.sh"),
        ("script", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: e, exec: { argv: [/bin/sh, data/notify.sh] } }] }]"#, "exec.argv[1]", "data/notify.sh"),
        ("absolute script", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: e, exec: { argv: [/bin/sh, "{{dir}}/data/notify.sh"] } }] }]"#, "exec.argv[1]", "data/notify.sh"),
        ("relative to dir", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: e, exec: { argv: [/bin/sh, ./data/notify.sh], dir: data/work/../.. } }] }]"#, "exec.argv[1]", "data/notify.sh"),
        ("working folder", #"automations: [{ id: a, on: ["open:x"], steps: [{ id: e, exec: { argv: [/bin/true], dir: data/work } }] }]"#, "exec.dir", "data/work"),
    ]

    static func config(_ reference: String, folder: URL) -> String {
        let sources = reference == "sources_extra" ? "  - { id: signed, provider: hmac, hmac: { header: X-Sig, algorithm: sha256, encoding: hex }, secret_file: data/secret }\n" : ""
        let rest = reference == "sources_extra" ? "" : reference.replacingOccurrences(of: "{{dir}}", with: folder.path)
        return TestConfigs.standard(extraSources: sources) + "\n" + rest + "\n"
    }

    @Test("a files_dir that holds a template, a secret file, the CA file, a program, a script an exec step passes or an exec dir is refused, naming the file and where it is referenced", arguments: references.map(\.name))
    func filesDirectoryHoldsReferencedFile(_ name: String) throws {
        let reference = try #require(Self.references.first { $0.name == name })
        let folder = try Self.folderWithData()
        let yaml = Self.config(reference.yaml, folder: folder)
        // The control: the same config with files_dir elsewhere loads.
        #expect(Self.issues(yaml + "files_dir: out\n", directory: folder) == [], "\(name) with files_dir: out")
        for filesDir in ["data", "alias"] {
            let found = Self.issues(yaml + "files_dir: \(filesDir)\n", directory: folder).filter { $0.hasPrefix("files_dir:") }
            #expect(found.count == 1, "\(name), files_dir \(filesDir): \(found)")
            #expect(found.first?.contains(reference.names) == true, "names where: \(found)")
            #expect(found.first?.contains("\(reference.file) (") == true, "names the file: \(found)")
        }
    }

    @Test("literal arguments that are not paths, templated ones and files_dir's own neighbours are not refused")
    func filesDirectoryAllowsOrdinaryArguments() throws {
        let folder = try Self.folderWithData()
        let yaml = Self.config(#"""
            automations: [{ id: a, on: ["open:x"], steps: [
              { id: e, exec: { argv: [/bin/sh, -c, "echo hi", data-x, "data/{{body.name}}", ../data/other.sh] } },
              { id: p, exec: { argv: [/usr/bin/lp, "{{steps.e.stdout}}"], dir: out-of-data } } ] }]
            """#, folder: folder)
        #expect(Self.issues(yaml + "files_dir: data\n", directory: folder) == [])
    }

    @Test("doorbell check (the real binary) refuses a files_dir that holds a script an exec step runs")
    func checkRefusesScriptInFilesDirectory() throws {
        let folder = try Self.folderWithData()
        let config = folder.appendingPathComponent("doorbell.yml")
        try (Self.config(Self.references[4].yaml, folder: folder) + "files_dir: data\n").write(to: config, atomically: true, encoding: .utf8)
        let checked = try ChildProcess.doorbell(["check", "--config", config.path])
        #expect(checked.status != 0)
        let said = checked.stdout + checked.stderr
        #expect(said.contains("files_dir") && said.contains("notify.sh") && said.contains("exec.argv[1]"), "\(said)")
    }

    @Test("a relative program (scripts/x.sh) runs from the config's folder, or from dir when given, where the command itself runs")
    func relativeProgramResolvesAgainstWorkingFolder() async throws {
        let folder = try TemporaryFolder.make()
        for sub in ["scripts", "work"] {
            try FileManager.default.createDirectory(at: folder.appendingPathComponent(sub), withIntermediateDirectories: true)
        }
        for path in ["scripts/where.sh", "work/where.sh"] {
            let file = folder.appendingPathComponent(path)
            try "#!/bin/sh\necho \"\(path) in $(pwd)\"\n".write(to: file, atomically: true, encoding: .utf8)
            try FileManager.default.setAttributes([.posixPermissions: 0o755], ofItemAtPath: file.path)
        }
        let config = HardeningStepsHostTests.execConfig(extra: """
              - id: plain
                on: ["open:plain"]
                steps:
                  - { id: run, exec: { argv: [scripts/where.sh] } }
              - id: inside
                on: ["open:inside"]
                steps:
                  - { id: run, exec: { argv: [./where.sh], dir: work } }
              - id: missing
                on: ["open:missing"]
                steps:
                  - { id: run, exec: { argv: [scripts/missing.sh] } }
            """)
        try await TestServer.with(config: config, directory: folder) { (server: TestServer) async throws in
            let real = RealPath.of(folder.path)
            func stdout(_ output: String?) -> String? {
                let object = (try? JSONSerialization.jsonObject(with: Data((output ?? "{}").utf8))) as? [String: Any]
                return object?["stdout"] as? String
            }
            let (plain, plainOutputs) = try await HardeningStepsHostTests.runToEnd(server, type: "plain")
            #expect(plain.status == .succeeded, "\(plain.lastError ?? "")")
            #expect(stdout(plainOutputs["run"]) == "scripts/where.sh in \(real)\n", "\(plainOutputs["run"] ?? "")")
            let (inside, insideOutputs) = try await HardeningStepsHostTests.runToEnd(server, type: "inside")
            #expect(inside.status == .succeeded, "\(inside.lastError ?? "")")
            #expect(stdout(insideOutputs["run"]) == "work/where.sh in \(real)/work\n", "\(insideOutputs["run"] ?? "")")
            // A missing one is named with the folder it was looked for in.
            let (missing, _) = try await HardeningStepsHostTests.runToEnd(server, type: "missing")
            #expect(missing.status == .dead)
            #expect(missing.lastError?.contains("command not found: scripts/missing.sh in \(folder.path)") == true, "\(missing.lastError ?? "")")
        }
    }

    @Test("a command that exits 0 on the SIGTERM sent at its timeout is reported timed out, not succeeded")
    func cleanExitAfterTimeoutIsTimedOut() async throws {
        let config = HardeningStepsHostTests.execConfig(extra: """
              - id: graceful
                on: ["open:graceful"]
                steps:
                  - { id: wait, exec: { argv: ["/usr/bin/env", "python3", "-c", "import os, signal, time; signal.signal(signal.SIGTERM, lambda *_: os._exit(0)); time.sleep(30)"], timeout: 500ms } }
            """)
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let (run, _) = try await HardeningStepsHostTests.runToEnd(server, type: "graceful")
            #expect(run.status == .dead)
            #expect(run.lastError?.contains("timed out") == true, "\(run.lastError ?? "")")
        }
    }
}
