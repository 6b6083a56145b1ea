import DoorbellCore
import Foundation
import Yams

/// Reads `pollers:`; every error names the poller's path and key.
enum PollerReader {
    static let keys = [
        "id", "every", "cron", "time_zone", "request", "format", "items", "item_id", "item_version", "emit", "emit_changed", "first_run",
        "pagination", "max_pages", "max_seen", "alert_after", "backoff_max", "max_item_bytes", "max_page_bytes",
    ]

    static func readAll(_ node: Node, sources: [Source], _ reader: NodeReader) -> [Poller] {
        guard let items = reader.sequence(node, at: "pollers") else { return [] }
        var pollers: [Poller] = []
        var seen: Set<String> = []
        let sourceIDs = Set(sources.map(\.id))
        for (index, item) in items.enumerated() {
            let path = "pollers[\(index)]"
            if let poller = read(item, at: path, reader) { pollers.append(poller) }
            if let id = item["id"]?.string {
                if !seen.insert(id).inserted { reader.error("\(path).id", "duplicate poller id '\(id)'", item) }
                // Its events carry the poller's id as their source: one name, one meaning.
                if sourceIDs.contains(id) { reader.error("\(path).id", "'\(id)' is also a source id; a poller's events use its id as their source, so the two must differ", item) }
                if Source.reservedIDs.contains(id) { reader.error("\(path).id", "'\(id)' is reserved for Doorbell's own events", item) }
            }
        }
        return pollers
    }

    static func read(_ node: Node, at path: String, _ reader: NodeReader) -> Poller? {
        guard let keys = reader.mapping(node, at: path, allowed: keys) else { return nil }
        let errorsBefore = reader.errors.count
        var id = ""
        if let idNode = keys["id"], let text = reader.nonEmptyString(idNode, at: "\(path).id") {
            if text.allSatisfy({ $0.isASCII && ($0.isLetter || $0.isNumber || "-_.".contains($0)) }), text.utf8.count <= EventLimits.maxNameBytes {
                id = text
            } else {
                reader.error("\(path).id", "'\(text)' must be at most \(EventLimits.maxNameBytes) letters, digits, '-', '_' or '.'", idNode)
            }
        } else if keys["id"] == nil {
            reader.error("\(path).id", "missing: every poller needs an id (its events' source)", node)
        }

        var schedule: PollerSchedule?
        switch (keys["every"], keys["cron"]) {
        case (let every?, nil):
            if keys["time_zone"] != nil { reader.error("\(path).time_zone", "only with cron:", keys["time_zone"]) }
            if let text = reader.string(every, at: "\(path).every") {
                if let seconds = Units.parseDuration(text), seconds >= 1 {
                    schedule = .every(seconds)
                } else {
                    reader.error("\(path).every", "expected a duration of at least 1s such as 60s or 5m, found '\(reader.written(every))'", every)
                }
            }
        case (nil, let cron?):
            var zone = TimeZone(identifier: "UTC")!
            if let zoneNode = keys["time_zone"], let name = reader.nonEmptyString(zoneNode, at: "\(path).time_zone") {
                if let found = TimeZone(identifier: name) { zone = found } else { reader.error("\(path).time_zone", "unknown time zone '\(name)' (an IANA name such as Europe/Berlin)", zoneNode) }
            }
            if let text = reader.nonEmptyString(cron, at: "\(path).cron") {
                do {
                    let parsed = try CronSchedule(text, timeZone: zone)
                    if parsed.next(after: Date()) == nil { reader.error("\(path).cron", "'\(text)' never fires", cron) } else { schedule = .cron(parsed) }
                } catch {
                    reader.error("\(path).cron", "\(error.message)", cron)
                }
            }
        case (.some, .some):
            reader.error("\(path).every", "give every: or cron:, not both", node)
        case (nil, nil):
            reader.error("\(path).every", "missing: every: 60s or cron: \"*/5 * * * *\"", node)
        }

        if let format = keys["format"], let text = reader.string(format, at: "\(path).format"), text.lowercased() != "json" {
            reader.error("\(path).format", "only json is supported, found '\(reader.written(format))'", format)
        }
        let request = keys["request"].flatMap { readRequest($0, at: "\(path).request", reader) }
        if keys["request"] == nil { reader.error("\(path).request", "missing: request: { url: https://… }", node) }

        func pointer(_ key: String) -> JSONPointer? {
            guard let node = keys[key], let text = reader.string(node, at: "\(path).\(key)") else { return nil }
            guard let pointer = JSONPointer(text) else {
                reader.error("\(path).\(key)", "'\(reader.written(node))' is not a JSON pointer (it starts with /, such as /id)", node)
                return nil
            }
            return pointer
        }
        let items = pointer("items")
        let itemID = pointer("item_id")
        if keys["item_id"] == nil { reader.error("\(path).item_id", "missing: a JSON pointer to each item's id, such as /id", node) }
        let itemVersion = pointer("item_version")

        func eventType(_ key: String) -> String? {
            guard let node = keys[key], let text = reader.string(node, at: "\(path).\(key)") else { return nil }
            if let problem = EventLimits.typeProblem(text) {
                reader.error("\(path).\(key)", problem, node)
                return nil
            }
            return text
        }
        let emit = eventType("emit")
        if keys["emit"] == nil { reader.error("\(path).emit", "missing: the event type of new items, such as order.created", node) }
        let emitChanged = eventType("emit_changed")

        var firstRun = FirstRun.baseline
        if let node = keys["first_run"] {
            if case .mapping = node {
                if let last = reader.mapping(node, at: "\(path).first_run", allowed: ["last"]), let count = last["last"] {
                    if let value = reader.int(count, at: "\(path).first_run.last", range: 1...Poller.maxItemsPerPage * 100) { firstRun = .last(value) }
                } else {
                    reader.error("\(path).first_run", "expected baseline, all or {last: N}", node)
                }
            } else if let text = reader.string(node, at: "\(path).first_run") {
                switch text.lowercased() {
                case "baseline": firstRun = .baseline
                case "all": firstRun = .all
                default: reader.error("\(path).first_run", "unknown first_run '\(reader.written(node))'; expected baseline, all or {last: N}", node)
                }
            }
        }
        let pagination = keys["pagination"].flatMap { readPagination($0, at: "\(path).pagination", reader) } ?? PollerPagination.none
        let maxPages = keys["max_pages"].flatMap { reader.int($0, at: "\(path).max_pages", range: 1...10_000) } ?? 100
        let maxSeen = keys["max_seen"].flatMap { reader.int($0, at: "\(path).max_seen", range: 1...10_000_000) } ?? 100_000
        func duration(_ key: String, minimum: Double) -> Double? {
            guard let node = keys[key], let text = reader.string(node, at: "\(path).\(key)") else { return nil }
            guard let seconds = Units.parseDuration(text), seconds >= minimum else {
                reader.error("\(path).\(key)", "expected a duration such as 5m, found '\(reader.written(node))'", node)
                return nil
            }
            return seconds
        }
        let alertAfter = duration("alert_after", minimum: 1)
        let backoffMax = duration("backoff_max", minimum: 1) ?? 3600
        func size(_ key: String, default value: Int) -> Int {
            guard let node = keys[key], let text = reader.string(node, at: "\(path).\(key)") else { return value }
            guard let bytes = Units.parseSize(text), bytes >= 1024 else {
                reader.error("\(path).\(key)", "expected a size of at least 1KiB such as 1MiB, found '\(reader.written(node))'", node)
                return value
            }
            return bytes
        }
        let maxItemBytes = size("max_item_bytes", default: 1 << 20)
        let maxPageBytes = size("max_page_bytes", default: 16 << 20)

        guard reader.errors.count == errorsBefore, let schedule, let request, let itemID, let emit else { return nil }
        return Poller(
            id: id, schedule: schedule, request: request, items: items, itemID: itemID, itemVersion: itemVersion, emit: emit, emitChanged: emitChanged,
            firstRun: firstRun, pagination: pagination, maxPages: maxPages, maxSeen: maxSeen, alertAfter: alertAfter, backoffMax: backoffMax,
            maxItemBytes: maxItemBytes, maxPageBytes: maxPageBytes
        )
    }

    static func readRequest(_ node: Node, at path: String, _ reader: NodeReader) -> PollerRequest? {
        guard let keys = reader.mapping(node, at: path, allowed: ["url", "method", "headers", "query", "auth", "timeout"]) else { return nil }
        let errorsBefore = reader.errors.count
        func checkTemplates(_ text: String, at key: String, _ node: Node) {
            for name in PollerTemplate.names(in: text) where !PollerRequest.templateNames.contains(name) {
                reader.error(key, "unknown template value '{{\(name)}}'; a poller's request may use {{cursor}} and {{last_success_at}}", node)
            }
        }
        var url = ""
        if let urlNode = keys["url"], let text = reader.nonEmptyString(urlNode, at: "\(path).url") {
            checkTemplates(text, at: "\(path).url", urlNode)
            let sample = PollerTemplate.render(text, values: ["cursor": "c", "last_success_at": "2026-01-01T00:00:00Z"])
            if let components = URLComponents(string: sample), let scheme = components.scheme?.lowercased(), ["http", "https"].contains(scheme), components.host?.isEmpty == false {
                url = text
            } else {
                reader.error("\(path).url", "not an http(s) URL: '\(RedactedURL(reader.written(urlNode)))'", urlNode)
            }
        } else if keys["url"] == nil {
            reader.error("\(path).url", "missing: the URL to poll", node)
        }
        var method = "GET"
        if let methodNode = keys["method"], let text = reader.nonEmptyString(methodNode, at: "\(path).method") {
            let upper = text.uppercased()
            if ["GET", "POST"].contains(upper) { method = upper } else { reader.error("\(path).method", "expected GET or POST, found '\(reader.written(methodNode))'", methodNode) }
        }
        func pairs(_ key: String, headers: Bool) -> [(String, String)] {
            guard let mapNode = keys[key] else { return [] }
            guard case .mapping(let mapping) = mapNode else {
                reader.error("\(path).\(key)", "expected a mapping of names to values", mapNode)
                return []
            }
            var result: [(String, String)] = []
            for (nameNode, valueNode) in mapping {
                guard let name = nameNode.string else { continue }
                let at = "\(path).\(key).\(name)"
                guard let value = reader.string(valueNode, at: at) else { continue }
                if headers, let problem = EventLimits.headerNameProblem(name) { reader.error(at, problem, nameNode) }
                if headers, let problem = EventLimits.headerValueProblem(value) { reader.error(at, problem, valueNode) }
                checkTemplates(value, at: at, valueNode)
                result.append((name, value))
            }
            return result
        }
        let headers = pairs("headers", headers: true)
        let query = pairs("query", headers: false)
        var auth: PollerAuth?
        if let authNode = keys["auth"], let authKeys = reader.mapping(authNode, at: "\(path).auth", allowed: ["basic", "bearer"]) {
            if let bearer = authKeys["bearer"], let token = reader.nonEmptyString(bearer, at: "\(path).auth.bearer") {
                auth = .bearer(token)
            } else if let basic = authKeys["basic"], let fields = reader.mapping(basic, at: "\(path).auth.basic", allowed: ["username", "password"]) {
                let username = fields["username"].flatMap { reader.string($0, at: "\(path).auth.basic.username") }
                let password = fields["password"].flatMap { reader.string($0, at: "\(path).auth.basic.password") }
                if let username, let password { auth = .basic(username: username, password: password) } else { reader.error("\(path).auth.basic", "needs username and password", basic) }
            } else if authKeys.isEmpty {
                reader.error("\(path).auth", "expected {bearer: token} or {basic: {username, password}}", authNode)
            }
        }
        var timeout = 30.0
        if let timeoutNode = keys["timeout"], let text = reader.string(timeoutNode, at: "\(path).timeout") {
            if let seconds = Units.parseDuration(text), seconds > 0, seconds <= 600 { timeout = seconds } else { reader.error("\(path).timeout", "expected a duration up to 10m such as 30s, found '\(reader.written(timeoutNode))'", timeoutNode) }
        }
        guard reader.errors.count == errorsBefore else { return nil }
        return PollerRequest(url: url, method: method, headers: headers, query: query, auth: auth, timeout: timeout)
    }

    static func readPagination(_ node: Node, at path: String, _ reader: NodeReader) -> PollerPagination? {
        guard let keys = reader.mapping(node, at: path, allowed: ["next", "link_header", "cursor", "page", "offset"]) else { return nil }
        guard keys.count == 1, let (key, value) = keys.first else {
            reader.error(path, "expected one of next, link_header, cursor, page or offset", node)
            return nil
        }
        let at = "\(path).\(key)"
        switch key {
        case "next":
            guard let text = reader.string(value, at: at) else { return nil }
            guard let pointer = JSONPointer(text) else {
                reader.error(at, "'\(reader.written(value))' is not a JSON pointer (it starts with /)", value)
                return nil
            }
            return .nextLink(pointer)
        case "link_header":
            return reader.bool(value, at: at) == true ? .linkHeader : PollerPagination.none
        case "cursor":
            guard let fields = reader.mapping(value, at: at, allowed: ["param", "from"]) else { return nil }
            let param = fields["param"].flatMap { reader.nonEmptyString($0, at: "\(at).param") }
            var from: JSONPointer?
            if let fromNode = fields["from"], let text = reader.string(fromNode, at: "\(at).from") {
                from = JSONPointer(text)
                if from == nil { reader.error("\(at).from", "'\(reader.written(fromNode))' is not a JSON pointer (it starts with /)", fromNode) }
            }
            guard let param, let from else {
                if fields["param"] == nil || fields["from"] == nil { reader.error(at, "needs param (the query parameter) and from (a JSON pointer to the next cursor)", value) }
                return nil
            }
            return .cursor(param: param, from: from)
        case "page":
            guard let fields = reader.mapping(value, at: at, allowed: ["param", "start"]) else { return nil }
            let param = fields["param"].flatMap { reader.nonEmptyString($0, at: "\(at).param") } ?? "page"
            let start = fields["start"].flatMap { reader.int($0, at: "\(at).start", range: 0...1_000_000) } ?? 1
            return .page(param: param, start: start)
        case "offset":
            guard let fields = reader.mapping(value, at: at, allowed: ["param", "overlap"]) else { return nil }
            let param = fields["param"].flatMap { reader.nonEmptyString($0, at: "\(at).param") } ?? "offset"
            let overlap = fields["overlap"].flatMap { reader.int($0, at: "\(at).overlap", range: 0...1000) } ?? 0
            return .offset(param: param, overlap: overlap)
        default:
            return nil
        }
    }
}
