import Foundation
import Yams

/// Walks a composed YAML tree, substituting `${VAR}` in scalars and collecting every problem with
/// its path instead of stopping at the first, so `doorbell check` can list them all.
final class NodeReader {
    private(set) var errors: [ConfigIssue] = []
    private(set) var warnings: [ConfigIssue] = []
    /// Every `secret_file` read, with where the config names it: `files_dir` must not hold one.
    private(set) var secretFiles: [(at: String, path: String)] = []
    let environment: [String: String]
    let directory: String

    init(environment: [String: String], directory: String) {
        self.environment = environment
        self.directory = directory
    }

    func error(_ path: String, _ message: String, _ node: Node? = nil) {
        errors.append(ConfigIssue(path: path, message: message, line: node?.mark?.line))
    }

    func warning(_ path: String, _ message: String, _ node: Node? = nil) {
        warnings.append(ConfigIssue(path: path, message: message, line: node?.mark?.line))
    }

    /// The keys of a mapping; reports a non-mapping and every key not in `allowed`.
    func mapping(_ node: Node, at path: String, allowed: [String]) -> [String: Node]? {
        guard case .mapping(let mapping) = node else {
            error(path, "expected a mapping (key: value pairs), found \(kind(of: node))", node)
            return nil
        }
        var result: [String: Node] = [:]
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else {
                error(path, "keys must be text", keyNode)
                continue
            }
            let keyPath = join(path, key)
            if !allowed.contains(key) {
                let hint = allowed.first { $0.lowercased() == key.lowercased() || $0.replacingOccurrences(of: "_", with: "") == key.lowercased().replacingOccurrences(of: "-", with: "").replacingOccurrences(of: "_", with: "") }
                error(keyPath, "unknown key" + (hint.map { " (did you mean '\($0)'?)" } ?? "; expected one of: \(allowed.joined(separator: ", "))"), keyNode)
                continue
            }
            result[key] = value
        }
        return result
    }

    func sequence(_ node: Node, at path: String) -> [Node]? {
        guard case .sequence(let sequence) = node else {
            error(path, "expected a list, found \(kind(of: node))", node)
            return nil
        }
        return Array(sequence)
    }

    /// A scalar as text, with `${VAR}` replaced from the environment (`$${` keeps a literal `${`).
    func string(_ node: Node, at path: String) -> String? {
        guard case .scalar(let scalar) = node else {
            error(path, "expected a text value, found \(kind(of: node))", node)
            return nil
        }
        return substitute(scalar.string, at: path, node: node)
    }

    /// A scalar as written in the file, for an error message: never the value `${VAR}` put there,
    /// which may be a secret placed in the wrong field. Long values are cut.
    func written(_ node: Node) -> String {
        guard case .scalar(let scalar) = node else { return kind(of: node) }
        let text = scalar.string
        return text.count > 100 ? text.prefix(100) + "…" : text
    }

    func nonEmptyString(_ node: Node, at path: String) -> String? {
        guard let text = string(node, at: path) else { return nil }
        if text.isEmpty {
            error(path, "must not be empty", node)
            return nil
        }
        return text
    }

    func int(_ node: Node, at path: String, range: ClosedRange<Int>) -> Int? {
        guard let text = string(node, at: path) else { return nil }
        guard let value = Int(text.trimmingCharacters(in: .whitespaces)), range.contains(value) else {
            error(path, "expected a whole number from \(range.lowerBound) to \(range.upperBound), found '\(written(node))'", node)
            return nil
        }
        return value
    }

    func bool(_ node: Node, at path: String) -> Bool? {
        guard let text = string(node, at: path) else { return nil }
        switch text.lowercased() {
        case "true", "yes", "on": return true
        case "false", "no", "off": return false
        default:
            error(path, "expected true or false, found '\(written(node))'", node)
            return nil
        }
    }

    /// A list of text values; a single text value is accepted as a list of one.
    func stringList(_ node: Node, at path: String) -> [String]? {
        if case .scalar = node { return string(node, at: path).map { [$0] } }
        guard let items = sequence(node, at: path) else { return nil }
        var result: [String] = []
        for (index, item) in items.enumerated() {
            if let text = string(item, at: "\(path)[\(index)]") { result.append(text) }
        }
        return result
    }

    /// A path from the config, resolved against the config file's folder.
    func resolvePath(_ path: String) -> String {
        if path.hasPrefix("/") { return path }
        return URL(fileURLWithPath: directory).appendingPathComponent(path).standardizedFileURL.path
    }

    /// The trimmed contents of a secret file.
    func readSecretFile(_ node: Node, at path: String) -> String? {
        guard let name = nonEmptyString(node, at: path) else { return nil }
        let resolved = resolvePath(name)
        secretFiles.append((path, resolved))
        guard let data = FileManager.default.contents(atPath: resolved) else {
            error(path, "cannot read secret file '\(resolved)'", node)
            return nil
        }
        let secret = String(decoding: data, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        if secret.isEmpty { error(path, "secret file '\(resolved)' is empty", node) }
        return secret.isEmpty ? nil : secret
    }

    func join(_ path: String, _ key: String) -> String {
        path.isEmpty ? key : "\(path).\(key)"
    }

    private func substitute(_ text: String, at path: String, node: Node) -> String? {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        var ok = true
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let after = rest[dollar...]
            if after.hasPrefix("$${") {
                result += "${"
                rest = after.dropFirst(3)
            } else if after.hasPrefix("${") {
                guard let close = after.firstIndex(of: "}") else {
                    error(path, "unclosed '${' in '\(text)'", node)
                    return nil
                }
                let inside = String(after[after.index(after.startIndex, offsetBy: 2)..<close])
                // `${VAR:-fallback}` uses the fallback when VAR is unset or empty.
                let parts = inside.components(separatedBy: ":-")
                let name = parts[0]
                let fallback = parts.count > 1 ? parts[1...].joined(separator: ":-") : nil
                if name.isEmpty || !name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) {
                    error(path, "'${\(inside)}' is not a valid variable name", node)
                    ok = false
                } else if let value = environment[name], !(value.isEmpty && fallback != nil) {
                    result += value
                } else if let fallback {
                    result += fallback
                } else {
                    error(path, "environment variable \(name) is not set", node)
                    ok = false
                }
                rest = after[after.index(after: close)...]
            } else {
                result += "$"
                rest = after.dropFirst()
            }
        }
        result += rest
        return ok ? result : nil
    }

    private func kind(of node: Node) -> String {
        switch node {
        case .scalar(let scalar): scalar.string.isEmpty ? "nothing" : "'\(scalar.string)'"
        case .mapping: "a mapping"
        case .sequence: "a list"
        case .alias: "an alias"
        }
    }
}
