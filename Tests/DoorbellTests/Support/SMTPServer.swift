import Foundation

/// A real SMTP server (aiosmtpd, Fixtures/smtp_server.py) in a child process.
final class SMTPServer: @unchecked Sendable {
    let process = Process()
    let folder: URL
    private(set) var port = 0
    private(set) var certificate = ""

    /// `mode`: plain, starttls or tls; `port` 0 picks a free one.
    init(mode: String, auth: Bool, port: Int = 0) throws {
        folder = try TemporaryFolder.make()
        let ready = try startPythonFixture(process, script: "smtp_server.py", arguments: [mode, auth ? "auth" : "noauth", folder.path, String(port)])
        guard ready.count >= 2, let port = Int(ready[0]) else {
            process.terminate()
            throw TestFailure("SMTP server said: READY \(ready.joined(separator: " "))")
        }
        self.port = port
        self.certificate = String(ready[1])
    }

    /// The messages received, as parsed by Python's email package: subject, recipients, text, html,
    /// attachments (name → text).
    func messages() throws -> [[String: Any]] {
        let script = """
            import email, email.header, glob, json, os, sys
            from email import policy
            out = []
            for path in sorted(glob.glob(os.path.join(sys.argv[1], "*.eml")), key=lambda p: int(os.path.basename(p)[:-4])):
                m = email.message_from_binary_file(open(path, "rb"), policy=policy.default)
                envelope = open(path[:-4] + ".env").read().split("\\n")
                item = {"subject": str(m["subject"]), "to": str(m["to"]), "message_id": str(m["message-id"]),
                        "rcpt": [r for r in envelope[1:] if r and not r.startswith("auth=")], "attachments": {}}
                body = m.get_body(preferencelist=("plain",))
                item["text"] = body.get_content() if body else None
                html = m.get_body(preferencelist=("html",))
                item["html"] = html.get_content() if html else None
                for part in m.iter_attachments():
                    item["attachments"][part.get_filename()] = part.get_content() if part.get_content_maintype() == "text" else len(part.get_content())
                out.append(item)
            print(json.dumps(out))
            """
        let result = try ChildProcess.run("/usr/bin/env", ["python3", "-c", script, folder.path])
        guard result.status == 0 else { throw TestFailure("parsing mail: \(result.stderr)") }
        return try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as! [[String: Any]]
    }

    func stop() {
        guard process.isRunning else { return }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
    }
}
