import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

/// What a review of the `files_dir` and `exec` hardening found: a files_dir that holds a file the
/// config trusts (template, secret, CA, a program or script, a command's folder); relative programs
/// resolved against the wrong folder; a command that exits 0 on our SIGTERM counted as a success.
@Suite("Fix: files_dir and exec")
struct FilesExecFixTests {
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
        }
    }

    @Test("a command that exits 0 on the SIGTERM sent at its timeout is reported timed out, not succeeded")
    func cleanExitAfterTimeoutIsTimedOut() async throws {
        let config = HardeningStepsHostTests.execConfig(extra: """
              - id: graceful
                on: ["open:graceful"]
                steps:
                  - { id: wait, exec: { argv: ["/bin/sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"], timeout: 500ms } }
            """)
        try await TestServer.with(config: config) { (server: TestServer) async throws in
            let (run, _) = try await HardeningStepsHostTests.runToEnd(server, type: "graceful")
            #expect(run.status == .dead)
            #expect(run.lastError?.contains("timed out") == true, "\(run.lastError ?? "")")
        }
    }
}
