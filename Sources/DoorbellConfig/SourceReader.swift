import DoorbellCore
import Yams

/// Reads one entry of `sources:`.
enum SourceReader {
    static let keys = ["id", "provider", "secrets", "secret", "secret_file", "tolerance", "allow_ips", "max_body", "hmac", "event_type", "event_id", "forward_to"]

    static func read(_ node: Node, at path: String, _ reader: NodeReader) -> Source? {
        guard let keys = reader.mapping(node, at: path, allowed: keys) else { return nil }
        let errorsBefore = reader.errors.count

        var id = ""
        if let idNode = keys["id"], let text = reader.nonEmptyString(idNode, at: "\(path).id") {
            if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }) {
                id = text
            } else {
                reader.error("\(path).id", "'\(text)' must use only letters, digits, '-', '_' and '.' (it is part of the URL /hooks/{id})", idNode)
            }
        } else if keys["id"] == nil {
            reader.error("\(path).id", "missing: every source needs an id (its URL is /hooks/{id})", node)
        }

        var provider = ProviderKind.none
        if let providerNode = keys["provider"], let text = reader.nonEmptyString(providerNode, at: "\(path).provider") {
            if let kind = ProviderKind(rawValue: text.lowercased()) {
                provider = kind
            } else {
                reader.error("\(path).provider", "unknown provider '\(text)'; expected one of: \(ProviderKind.allCases.map(\.rawValue).joined(separator: " | "))", providerNode)
            }
        } else if keys["provider"] == nil {
            reader.error("\(path).provider", "missing: one of \(ProviderKind.allCases.map(\.rawValue).joined(separator: " | "))", node)
        }

        var secrets: [String] = []
        if let secretsNode = keys["secrets"], let items = secretItems(secretsNode) {
            for (index, item) in items.enumerated() {
                let itemPath = "\(path).secrets[\(index)]"
                if case .mapping = item {
                    guard let fileKeys = reader.mapping(item, at: itemPath, allowed: ["secret_file"]) else { continue }
                    if let file = fileKeys["secret_file"], let secret = reader.readSecretFile(file, at: "\(itemPath).secret_file") {
                        secrets.append(secret)
                    } else if fileKeys["secret_file"] == nil {
                        reader.error(itemPath, "expected a secret or {secret_file: path}", item)
                    }
                } else if let secret = reader.nonEmptyString(item, at: itemPath) {
                    secrets.append(secret)
                }
            }
        } else if let secretsNode = keys["secrets"] {
            reader.error("\(path).secrets", "expected a list of secrets", secretsNode)
        }
        if let single = keys["secret"], let secret = reader.nonEmptyString(single, at: "\(path).secret") {
            secrets.append(secret)
        }
        if let file = keys["secret_file"], let secret = reader.readSecretFile(file, at: "\(path).secret_file") {
            secrets.append(secret)
        }
        let secretGiven = keys["secrets"] != nil || keys["secret"] != nil || keys["secret_file"] != nil
        if provider != .none && !secretGiven {
            reader.error("\(path).secrets", "missing: provider '\(provider.rawValue)' verifies signatures, so it needs at least one secret (secrets, secret or secret_file)", node)
        }
        for (index, secret) in secrets.enumerated() {
            if let problem = secretWarning(secret, provider: provider) {
                reader.warning("\(path).secrets[\(index)]", problem, node)
            }
        }
        if provider == .none && secretGiven {
            reader.warning("\(path).secrets", "provider 'none' checks no signature, so these secrets are unused", node)
        }

        var tolerance = Source.defaultTolerance
        if let toleranceNode = keys["tolerance"], let text = reader.string(toleranceNode, at: "\(path).tolerance") {
            if let seconds = Units.parseDuration(text), seconds >= 1, seconds <= 7 * 86400 {
                tolerance = Int(seconds)
            } else {
                reader.error("\(path).tolerance", "expected seconds (e.g. 300) or a duration (e.g. 5m) between 1 s and 7 d, found '\(reader.written(toleranceNode))'", toleranceNode)
            }
        }

        var allowIPs: [String] = []
        if let allowNode = keys["allow_ips"], let list = reader.stringList(allowNode, at: "\(path).allow_ips") {
            for (index, text) in list.enumerated() {
                if CIDR(text) == nil {
                    reader.error("\(path).allow_ips[\(index)]", "not an IP address or CIDR: '\(text)'", allowNode)
                } else {
                    allowIPs.append(text)
                }
            }
        }

        var maxBody = Source.defaultMaxBody
        if let sizeNode = keys["max_body"], let text = reader.string(sizeNode, at: "\(path).max_body") {
            if let bytes = Units.parseSize(text), bytes >= 1, bytes <= 1 << 30 {
                maxBody = bytes
            } else {
                reader.error("\(path).max_body", "expected a size between 1 B and 1 GiB such as 1MiB or 512KB, found '\(reader.written(sizeNode))'", sizeNode)
            }
        }

        var hmac: HMACSettings?
        if let hmacNode = keys["hmac"] {
            if provider != .hmac {
                reader.error("\(path).hmac", "only sources with provider 'hmac' take hmac settings", hmacNode)
            } else {
                hmac = readHMAC(hmacNode, at: "\(path).hmac", reader)
            }
        } else if provider == .hmac {
            hmac = HMACSettings()
        }

        let eventType = keys["event_type"].flatMap { valueRule($0, at: "\(path).event_type", reader) }
        let eventID = keys["event_id"].flatMap { valueRule($0, at: "\(path).event_id", reader) }
        // A fixed type must pass the check every received event's type passes (EventLimits).
        if case .fixed(let literal) = eventType, let problem = EventLimits.typeProblem(literal) {
            reader.error("\(path).event_type", problem, keys["event_type"])
        }
        for (key, rule) in [("event_type", eventType), ("event_id", eventID)] {
            if case .header(let name) = rule, let problem = EventLimits.headerNameProblem(name) { reader.error("\(path).\(key)", problem, keys[key]) }
        }
        if case .fixed(let literal) = eventID {
            reader.error("\(path).event_id", "'\(literal)' would give every event the same dedupe key; use a JSON pointer (/id) or header:Name", keys["event_id"])
        }

        let forwardTo = keys["forward_to"].flatMap { reader.stringList($0, at: "\(path).forward_to") } ?? []

        guard reader.errors.count == errorsBefore else { return nil }
        return Source(id: id, provider: provider, secrets: secrets, tolerance: tolerance, allowIPs: allowIPs, maxBody: maxBody, hmac: hmac, eventType: eventType, eventID: eventID, forwardTo: forwardTo)
    }

    /// A hint when a secret does not look like what the provider issues (it may still be right).
    static func secretWarning(_ secret: String, provider: ProviderKind) -> String? {
        switch provider {
        case .stripe where !secret.hasPrefix("whsec_"):
            return "Stripe signing secrets start with whsec_; is this the API key or another secret?"
        case .standard where !(secret.hasPrefix("whsec_") || secret.hasPrefix("whpk_") || secret.hasPrefix("whsk_")):
            return "Standard Webhooks secrets look like whsec_<base64> (or whpk_ for a v1a public key); this one will be read as bare base64"
        case .twilio where !(secret.count == 32 && secret.allSatisfy(\.isHexDigit)):
            return "Twilio auth tokens are 32 hex characters"
        case .github where secret.count < 16, .shopify where secret.count < 16, .hmac where secret.count < 16:
            return "short secret (\(secret.count) characters): anyone who guesses it can forge events"
        default:
            return nil
        }
    }

    private static func secretItems(_ node: Node) -> [Node]? {
        switch node {
        case .sequence(let sequence): Array(sequence)
        case .scalar: [node]
        default: nil
        }
    }

    private static func readHMAC(_ node: Node, at path: String, _ reader: NodeReader) -> HMACSettings? {
        guard let keys = reader.mapping(node, at: path, allowed: ["header", "algorithm", "encoding", "prefix", "timestamp_header"]) else { return nil }
        var settings = HMACSettings()
        if let header = keys["header"], let text = reader.nonEmptyString(header, at: "\(path).header") {
            if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || $0 == "-" || $0 == "_") }) {
                settings.header = text
            } else {
                reader.error("\(path).header", "'\(text)' is not a valid header name", header)
            }
        }
        if let algorithm = keys["algorithm"], let text = reader.nonEmptyString(algorithm, at: "\(path).algorithm") {
            if let value = HMACSettings.Algorithm(rawValue: text.lowercased().replacingOccurrences(of: "-", with: "")) {
                settings.algorithm = value
            } else {
                reader.error("\(path).algorithm", "expected sha1, sha256 or sha512, found '\(reader.written(algorithm))'", algorithm)
            }
        }
        if let encoding = keys["encoding"], let text = reader.nonEmptyString(encoding, at: "\(path).encoding") {
            if let value = HMACSettings.Encoding(rawValue: text.lowercased()) {
                settings.encoding = value
            } else {
                reader.error("\(path).encoding", "expected hex or base64, found '\(reader.written(encoding))'", encoding)
            }
        }
        if let prefix = keys["prefix"], let text = reader.string(prefix, at: "\(path).prefix") {
            settings.prefix = text
        }
        if let timestamp = keys["timestamp_header"], let text = reader.nonEmptyString(timestamp, at: "\(path).timestamp_header") {
            settings.timestampHeader = text
        }
        return settings
    }

    private static func valueRule(_ node: Node, at path: String, _ reader: NodeReader) -> ValueRule? {
        guard let text = reader.nonEmptyString(node, at: path) else { return nil }
        guard let rule = ValueRule.parse(text) else {
            reader.error(path, "expected a fixed text, a JSON pointer such as /type, or header:Name; found '\(reader.written(node))'", node)
            return nil
        }
        return rule
    }
}
