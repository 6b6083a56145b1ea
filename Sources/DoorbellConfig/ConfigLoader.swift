import DoorbellCore
import Foundation
import Yams

/// Reads `doorbell.yml` into a `Configuration`, or throws a `ConfigError` listing every problem.
public enum ConfigLoader {
    static let topLevelKeys = ["server", "storage", "api", "smtp", "outbound", "retry", "sources", "automations", "endpoints", "pollers", "files_dir", "worker", "retention", "dashboard"]
    /// Sections of the contract that later releases act on; accepted now so one file serves both.
    static let laterSections: [String] = []

    /// Loads the file at `path`, substituting `${VAR}` from `environment`.
    public static func load(path: String, environment: [String: String] = ProcessInfo.processInfo.environment) throws -> Configuration {
        let url = URL(fileURLWithPath: path)
        guard let data = FileManager.default.contents(atPath: url.path) else {
            throw ConfigError(file: path, issues: [ConfigIssue(path: "", message: "cannot read the config file '\(path)' (does it exist?)")])
        }
        guard let text = String(data: data, encoding: .utf8) else {
            throw ConfigError(file: path, issues: [ConfigIssue(path: "", message: "the config file is not UTF-8 text")])
        }
        return try parse(yaml: text, file: path, directory: url.deletingLastPathComponent().path, environment: environment)
    }

    /// Parses config text; `directory` is where relative paths resolve.
    public static func parse(yaml: String, file: String = "doorbell.yml", directory: String, environment: [String: String]) throws -> Configuration {
        guard AliasBudget.fits(yaml) else {
            throw ConfigError(file: file, issues: [ConfigIssue(
                path: "", message: "the file expands to more than \(AliasBudget.maxNodes) values or \(AliasBudget.maxBytes >> 20) MiB of text; YAML aliases (*name) that repeat anchors of anchors (a \"billion laughs\") are refused"
            )])
        }
        let root: Node?
        do {
            root = try Yams.compose(yaml: yaml)
        } catch let error as YamlError {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "not valid YAML: \(error)")])
        }
        guard let root else {
            throw ConfigError(file: file, issues: [ConfigIssue(path: "", message: "the config file is empty")])
        }
        let reader = NodeReader(environment: environment, directory: directory)
        let configuration = read(root, reader)
        if let configuration { FilesDirectoryRule.check(configuration, configFile: directory + "/" + URL(fileURLWithPath: file).lastPathComponent, reader) }
        guard reader.errors.isEmpty, var configuration else {
            throw ConfigError(file: file, issues: reader.errors)
        }
        configuration.warnings = reader.warnings
        return configuration
    }

    private static func read(_ root: Node, _ reader: NodeReader) -> Configuration? {
        guard let top = reader.mapping(root, at: "", allowed: topLevelKeys) else { return nil }
        let server = top["server"].flatMap { readServer($0, reader) } ?? ServerSettings()
        let storage = top["storage"].flatMap { readStorage($0, reader) } ?? .sqlite(path: reader.resolvePath("doorbell.db"))
        let api = top["api"].flatMap { readAPI($0, reader) } ?? APISettings()
        var sources: [Source] = []
        if let node = top["sources"], let items = reader.sequence(node, at: "sources") {
            var seen: Set<String> = []
            for (index, item) in items.enumerated() {
                if let source = SourceReader.read(item, at: "sources[\(index)]", reader) { sources.append(source) }
                // Checked on the raw id, so a source with other errors still reveals a clash.
                if let id = item["id"]?.string, !seen.insert(id).inserted {
                    reader.error("sources[\(index)].id", "duplicate source id '\(id)'", item)
                }
            }
        }
        for section in laterSections where top[section] != nil {
            reader.warning(section, "this section is accepted but not acted on by this build yet")
        }
        let retry = top["retry"].flatMap { AutomationReader.readRetry($0, at: "retry", reader) } ?? .default
        let smtp = top["smtp"].flatMap { AutomationReader.readSMTP($0, at: "smtp", reader) }
        let automations = top["automations"].map { AutomationReader.readAll($0, defaultRetry: retry, smtp: smtp, reader) } ?? []
        let filesDirectory = top["files_dir"].flatMap { reader.nonEmptyString($0, at: "files_dir") }.map(reader.resolvePath) ?? reader.resolvePath(FilesDirectoryRule.defaultFolder)
        let worker = top["worker"].flatMap { readWorker($0, reader) } ?? WorkerSettings()
        let outbound = top["outbound"].flatMap { OutboundReader.readSettings($0, reader) } ?? OutboundSettings()
        let endpoints = top["endpoints"].map { OutboundReader.readEndpoints($0, reader) } ?? []
        let retention = top["retention"].flatMap { RetentionReader.read($0, reader) } ?? .default
        checkEndpointReferences(sources: sources, automations: automations, endpoints: endpoints, reader)
        var configuration = Configuration(
            server: server, storage: storage, api: api, sources: sources, automations: automations,
            retry: retry, filesDirectory: filesDirectory, worker: worker, smtp: smtp, outbound: outbound,
            endpoints: endpoints, retention: retention, directory: reader.directory
        )
        configuration.dashboard = top["dashboard"].flatMap { readDashboard($0, reader) } ?? DashboardSettings()
        configuration.pollers = top["pollers"].map { PollerReader.readAll($0, sources: sources, reader) } ?? []
        return configuration
    }

    /// `forward_to` and `deliver.endpoints` may name endpoints added later through the API, so an id
    /// the file does not declare is a warning, not an error.
    private static func checkEndpointReferences(sources: [Source], automations: [Automation], endpoints: [Endpoint], _ reader: NodeReader) {
        let known = Set(endpoints.map(\.id))
        for (index, source) in sources.enumerated() {
            for id in source.forwardTo where !known.contains(id) {
                reader.warning("sources[\(index)].forward_to", "endpoint '\(id)' is not declared under endpoints: (it must be added through the API)")
            }
            if Source.reservedIDs.contains(source.id) {
                reader.error("sources[\(index)].id", "'\(source.id)' is reserved: events published through the API use source '\(Source.apiID)', Doorbell's own notices '\(Source.noticesID)'")
            }
        }
        for (index, automation) in automations.enumerated() {
            for (stepIndex, step) in automation.steps.enumerated() {
                guard case .deliver(let deliver) = step.action else { continue }
                for id in deliver.endpoints where !known.contains(id) {
                    reader.warning("automations[\(index)].steps[\(stepIndex)].deliver.endpoints", "endpoint '\(id)' is not declared under endpoints: (it must be added through the API)")
                }
            }
        }
    }

    private static func readServer(_ node: Node, _ reader: NodeReader) -> ServerSettings? {
        let timeouts = ["header_timeout", "body_timeout", "idle_timeout", "shutdown_grace"]
        guard let keys = reader.mapping(node, at: "server", allowed: ["listen", "public_url", "trusted_proxies", "max_connections"] + timeouts) else { return nil }
        var settings = ServerSettings()
        let fields: [String: WritableKeyPath<ServerSettings, Duration>] = [
            "header_timeout": \.headerTimeout, "body_timeout": \.bodyTimeout, "idle_timeout": \.idleTimeout, "shutdown_grace": \.shutdownGrace,
        ]
        for key in timeouts {
            guard let valueNode = keys[key], let text = reader.string(valueNode, at: "server.\(key)") else { continue }
            if let seconds = Units.parseDuration(text), seconds >= 0.1, seconds <= 3600 {
                settings[keyPath: fields[key]!] = .milliseconds(Int64((seconds * 1000).rounded()))
            } else {
                reader.error("server.\(key)", "expected a duration between 100ms and 1h such as 10s, found '\(reader.written(valueNode))'", valueNode)
            }
        }
        if let limit = keys["max_connections"], let value = reader.int(limit, at: "server.max_connections", range: 1...1_000_000) {
            settings.maxConnections = value
        }
        if let listen = keys["listen"], let text = reader.nonEmptyString(listen, at: "server.listen") {
            if let (host, port) = parseListen(text) {
                settings.host = host
                settings.port = port
            } else {
                reader.error("server.listen", "expected host:port such as 127.0.0.1:8080 or [::1]:8080, found '\(reader.written(listen))'", listen)
            }
        }
        if let publicURL = keys["public_url"], let text = reader.nonEmptyString(publicURL, at: "server.public_url") {
            if let url = URL(string: text), ["http", "https"].contains(url.scheme ?? ""), url.host != nil {
                settings.publicURL = text.hasSuffix("/") ? String(text.dropLast()) : text
            } else {
                reader.error("server.public_url", "not an http(s) URL: '\(text)'", publicURL)
            }
        }
        if let proxies = keys["trusted_proxies"], let list = reader.stringList(proxies, at: "server.trusted_proxies") {
            for (index, text) in list.enumerated() {
                if CIDR(text) == nil {
                    reader.error("server.trusted_proxies[\(index)]", "not an IP address or CIDR: '\(text)'", proxies)
                } else {
                    settings.trustedProxies.append(text)
                }
            }
        }
        return settings
    }

    /// `host:port`, `[v6]:port` or `:port` (all interfaces).
    static func parseListen(_ text: String) -> (String, Int)? {
        let host: Substring
        let portText: Substring
        if text.hasPrefix("[") {
            guard let close = text.firstIndex(of: "]"), text[text.index(after: close)...].hasPrefix(":") else { return nil }
            host = text[text.index(after: text.startIndex)..<close]
            portText = text[text.index(close, offsetBy: 2)...]
        } else {
            guard let colon = text.lastIndex(of: ":") else { return nil }
            host = text[..<colon]
            portText = text[text.index(after: colon)...]
            if host.contains(":") { return nil }
        }
        guard let port = Int(portText), (0...65535).contains(port) else { return nil }
        return (host.isEmpty ? "0.0.0.0" : String(host), port)
    }

    private static func readStorage(_ node: Node, _ reader: NodeReader) -> StorageLocation? {
        guard let text = reader.nonEmptyString(node, at: "storage") else { return nil }
        if text.hasPrefix("sqlite:") {
            let path = String(text.dropFirst("sqlite:".count))
            guard !path.isEmpty else {
                reader.error("storage", "expected sqlite:<file>, e.g. sqlite:doorbell.db", node)
                return nil
            }
            return .sqlite(path: reader.resolvePath(path))
        }
        if text.hasPrefix("postgres://") || text.hasPrefix("postgresql://") {
            // Checked at load (the password never appears in the message), so `check` finds a bad URL.
            do {
                _ = try PostgresSettings(url: text)
            } catch {
                reader.error("storage", "\(error)", node)
                return nil
            }
            return .postgres(url: text)
        }
        reader.error("storage", "expected sqlite:<file> or postgres://user:pass@host:5432/db", node)
        return nil
    }

    private static func readWorker(_ node: Node, _ reader: NodeReader) -> WorkerSettings? {
        guard let keys = reader.mapping(node, at: "worker", allowed: ["concurrency", "lease"]) else { return nil }
        var settings = WorkerSettings()
        if let concurrency = keys["concurrency"], let value = reader.int(concurrency, at: "worker.concurrency", range: 1...1024) {
            settings.concurrency = value
        }
        if let lease = keys["lease"], let text = reader.string(lease, at: "worker.lease") {
            if let seconds = Units.parseDuration(text), seconds >= 0.3 {
                settings.lease = seconds
            } else {
                reader.error("worker.lease", "expected a duration of at least 300ms, found '\(reader.written(lease))'", lease)
            }
        }
        return settings
    }

    private static func readAPI(_ node: Node, _ reader: NodeReader) -> APISettings? {
        guard let keys = reader.mapping(node, at: "api", allowed: ["tokens"]) else { return nil }
        var settings = APISettings()
        if let tokens = keys["tokens"], let list = reader.stringList(tokens, at: "api.tokens") {
            for (index, token) in list.enumerated() where token.count < 16 {
                reader.error("api.tokens[\(index)]", "too short: use at least 16 characters", tokens)
            }
            settings.tokens = list
        }
        return settings
    }
}
