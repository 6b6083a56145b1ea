import DoorbellCore
import Foundation
import Yams

/// Reads `outbound:` and `endpoints:`.
enum OutboundReader {
    static func readSettings(_ node: Node, _ reader: NodeReader) -> OutboundSettings? {
        let path = "outbound"
        guard let keys = reader.mapping(node, at: path, allowed: ["timeout", "allow_private", "circuit_breaker", "disable_after", "rotation_overlap"]) else { return nil }
        var settings = OutboundSettings()
        if let value = duration(keys["timeout"], at: "\(path).timeout", range: 0.1...300, reader) { settings.timeout = value }
        if let value = duration(keys["disable_after"], at: "\(path).disable_after", range: 1...(90 * 86400), reader) { settings.disableAfter = value }
        if let value = duration(keys["rotation_overlap"], at: "\(path).rotation_overlap", range: 0...(30 * 86400), reader) { settings.rotationOverlap = value }
        if let node = keys["allow_private"], let list = reader.stringList(node, at: "\(path).allow_private") {
            var ranges: [CIDR] = []
            for (index, text) in list.enumerated() {
                if let range = CIDR(text) { ranges.append(range) } else { reader.error("\(path).allow_private[\(index)]", "not an IP address or CIDR: '\(text)'", node) }
            }
            settings.addressPolicy = AddressPolicy(allowPrivate: ranges)
        }
        if let node = keys["circuit_breaker"], let breaker = reader.mapping(node, at: "\(path).circuit_breaker", allowed: ["failures", "cooldown"]) {
            if let failures = breaker["failures"], let value = reader.int(failures, at: "\(path).circuit_breaker.failures", range: 1...1000) { settings.circuitFailures = value }
            if let value = duration(breaker["cooldown"], at: "\(path).circuit_breaker.cooldown", range: 0.05...86400, reader) { settings.circuitCooldown = value }
        }
        return settings
    }

    static func readEndpoints(_ node: Node, _ reader: NodeReader) -> [Endpoint] {
        guard let items = reader.sequence(node, at: "endpoints") else { return [] }
        var endpoints: [Endpoint] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            let path = "endpoints[\(index)]"
            guard let keys = reader.mapping(item, at: path, allowed: ["id", "url", "events", "secret", "secrets", "rate_limit", "headers", "enabled", "description", "retry"]) else { continue }
            guard let id = keys["id"].flatMap({ reader.nonEmptyString($0, at: "\(path).id") }) else {
                if keys["id"] == nil { reader.error("\(path).id", "missing: every endpoint needs an id", item) }
                continue
            }
            guard let url = keys["url"].flatMap({ reader.nonEmptyString($0, at: "\(path).url") }) else {
                if keys["url"] == nil { reader.error("\(path).url", "missing", item) }
                continue
            }
            if !seen.insert(id).inserted { reader.error("\(path).id", "duplicate endpoint id '\(id)'", item) }
            var endpoint = Endpoint(id: id, url: url, fromConfig: true)
            if let events = keys["events"].flatMap({ reader.stringList($0, at: "\(path).events") }) { endpoint.events = events }
            var secrets: [String] = []
            if let secret = keys["secret"].flatMap({ reader.nonEmptyString($0, at: "\(path).secret") }) { secrets.append(secret) }
            if let list = keys["secrets"].flatMap({ reader.stringList($0, at: "\(path).secrets") }) { secrets += list }
            // The first is the current secret; any others are still signed with (a rotation by hand).
            endpoint.secrets = secrets.map { EndpointSecret(secret: $0) }
            if let node = keys["rate_limit"], let text = reader.string(node, at: "\(path).rate_limit") {
                if let limit = RateLimit(text) { endpoint.rateLimit = limit } else { reader.error("\(path).rate_limit", "expected deliveries per time such as 10/s, 600/m or 5000/h, found '\(reader.written(node))'", node) }
            }
            if let node = keys["headers"] { endpoint.headers = AutomationReader.stringMap(node, at: "\(path).headers", reader) }
            if let node = keys["enabled"], let value = reader.bool(node, at: "\(path).enabled") { endpoint.enabled = value }
            endpoint.description = keys["description"].flatMap { reader.string($0, at: "\(path).description") }
            endpoint.retry = keys["retry"].flatMap { AutomationReader.readRetry($0, at: "\(path).retry", reader) }
            for problem in endpoint.problems() {
                reader.error("\(path).\(problem.field)", problem.message, keys[problem.field] ?? item)
            }
            endpoints.append(endpoint)
        }
        return endpoints
    }

    private static func duration(_ node: Node?, at path: String, range: ClosedRange<Double>, _ reader: NodeReader) -> Double? {
        guard let node, let text = reader.string(node, at: path) else { return nil }
        guard let seconds = Units.parseDuration(text), range.contains(seconds) else {
            reader.error(path, "expected a duration such as 15s, 5m or 5d between \(range.lowerBound) s and \(Int(range.upperBound)) s, found '\(reader.written(node))'", node)
            return nil
        }
        return seconds
    }
}
