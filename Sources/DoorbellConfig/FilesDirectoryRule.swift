import DoorbellCore
import Foundation

/// `files_dir` is where webhook data chooses file names (`file` step outputs, `email.attach`), so it
/// must never hold what an attacker would most like to read or overwrite: the database (every event,
/// every endpoint secret), the config file, and every file the config makes Doorbell trust — a
/// template (its text becomes output unescaped), a secret file (whoever writes it can sign), the
/// mail server's CA file, a program an `exec` step runs or a script it passes (code execution), or
/// an `exec` step's working folder. Compared by real paths, so a link cannot hide any of them.
enum FilesDirectoryRule {
    /// Below the config's folder, beside (not around) `doorbell.db` and `doorbell.yml`.
    static let defaultFolder = "files"

    /// A file or folder the config relies on: what it is, where the config names it, and its path.
    struct Reference: Equatable {
        var what: String
        var at: String
        var path: String
    }

    static func check(_ configuration: Configuration, configFile: String, _ reader: NodeReader) {
        let folder = configuration.filesDirectory
        for reference in references(configuration, configFile: configFile, secretFiles: reader.secretFiles) where holds(folder, reference.path) {
            let place = reference.at.isEmpty ? "" : " (\(reference.at))"
            reader.error(
                "files_dir", "'\(folder)' holds \(reference.what) \(reference.path)\(place); webhook data picks the names of files written and attached there, so use a folder of its own (the default is \(defaultFolder)/ beside the config)"
            )
        }
    }

    /// Every file the config refers to by path, with where it is named.
    static func references(_ configuration: Configuration, configFile: String, secretFiles: [(at: String, path: String)]) -> [Reference] {
        var references: [Reference] = []
        if case .sqlite(let database) = configuration.storage { references.append(Reference(what: "the database", at: "", path: database)) }
        references.append(Reference(what: "the config file", at: "", path: configFile))
        for (at, path) in secretFiles { references.append(Reference(what: "the secret file", at: at, path: path)) }
        if let ca = configuration.smtp?.caFile { references.append(Reference(what: "the mail server's CA file", at: "smtp.ca_file", path: ca)) }
        for automation in configuration.automations {
            for step in automation.steps {
                let at = "automation '\(automation.id)', step '\(step.id)'"
                switch step.action {
                case .file(let file):
                    references.append(Reference(what: "the template", at: "\(at), file.template", path: file.template))
                case .email(let email):
                    if let ca = email.smtp?.caFile, ca != configuration.smtp?.caFile {
                        references.append(Reference(what: "the mail server's CA file", at: "\(at), email.smtp.ca_file", path: ca))
                    }
                case .exec(let exec):
                    references += commandFiles(exec, at: at, configDirectory: configuration.directory)
                default: continue
                }
            }
        }
        return references
    }

    /// The working folder of an `exec` step, its program when given as a path, and every literal argument that names a
    /// path (it has a slash): `[/bin/sh, scripts/notify.sh]` runs whatever that file holds. An
    /// argument resolves against the command's working folder, as the command itself will read it.
    static func commandFiles(_ exec: ExecStep, at: String, configDirectory: String) -> [Reference] {
        let workingFolder = exec.directory ?? configDirectory
        var references: [Reference] = []
        // In files_dir, webhook data could plant what the command reads by a relative name.
        if let directory = exec.directory {
            references.append(Reference(what: "the working folder of a command", at: "\(at), exec.dir", path: directory))
        }
        for (index, argument) in exec.argv.enumerated() where argument.contains("/") && !argument.contains("{{") {
            let path = argument.hasPrefix("/") ? argument : URL(fileURLWithPath: workingFolder).appendingPathComponent(argument).standardizedFileURL.path
            let what = index == 0 ? "the program" : "the file"
            references.append(Reference(what: what, at: "\(at), exec.argv[\(index)]", path: path))
        }
        return references
    }

    /// Whether `file` lies in `folder` or below it, by the paths as written or as resolved.
    static func holds(_ folder: String, _ file: String) -> Bool {
        let pairs = [(RealPath.standardized(folder), RealPath.standardized(file)), (RealPath.of(folder), RealPath.of(file))]
        return pairs.contains { folder, file in folder == "/" || file == folder || file.hasPrefix(folder + "/") }
    }
}
