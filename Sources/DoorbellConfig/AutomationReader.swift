import DoorbellCore
import Foundation
import Yams

/// Reads `automations:`, `retry:` and the step kinds this build runs.
enum AutomationReader {
    static let automationKeys = ["id", "on", "if", "steps", "retry", "concurrency"]
    static let stepKinds = ["http", "chat", "email", "exec", "file", "emit", "deliver"]

    static func readRetry(_ node: Node, at path: String, _ reader: NodeReader) -> RetryPolicy? {
        guard let keys = reader.mapping(node, at: path, allowed: ["schedule", "jitter"]) else { return nil }
        var policy = RetryPolicy.default
        if let scheduleNode = keys["schedule"], let items = reader.stringList(scheduleNode, at: "\(path).schedule") {
            var schedule: [Double] = []
            for (index, text) in items.enumerated() {
                guard let seconds = Units.parseDuration(text) else {
                    reader.error("\(path).schedule[\(index)]", "not a duration: '\(text)' (use 0s, 5s, 5m, 2h…)", scheduleNode)
                    continue
                }
                schedule.append(seconds)
            }
            if schedule.isEmpty { reader.error("\(path).schedule", "needs at least one entry (the wait before the first attempt, usually 0s)", scheduleNode) }
            policy.schedule = schedule
        }
        if let jitterNode = keys["jitter"], let text = reader.string(jitterNode, at: "\(path).jitter") {
            if let value = Double(text), (0...1).contains(value) {
                policy.jitter = value
            } else {
                reader.error("\(path).jitter", "expected a fraction from 0 to 1, found '\(reader.written(jitterNode))'", jitterNode)
            }
        }
        return policy
    }

    static func readAll(_ node: Node, defaultRetry: RetryPolicy, smtp: SMTPSettings?, _ reader: NodeReader) -> [Automation] {
        guard let items = reader.sequence(node, at: "automations") else { return [] }
        var automations: [Automation] = []
        var seen: Set<String> = []
        for (index, item) in items.enumerated() {
            let path = "automations[\(index)]"
            if let id = item["id"]?.string, !seen.insert(id).inserted {
                reader.error("\(path).id", "duplicate automation id '\(id)'", item)
            }
            if let automation = read(item, at: path, defaultRetry: defaultRetry, smtp: smtp, reader) { automations.append(automation) }
        }
        return automations
    }

    private static func read(_ node: Node, at path: String, defaultRetry: RetryPolicy, smtp: SMTPSettings?, _ reader: NodeReader) -> Automation? {
        guard let keys = reader.mapping(node, at: path, allowed: automationKeys) else { return nil }
        let before = reader.errors.count
        let id = keys["id"].flatMap { reader.nonEmptyString($0, at: "\(path).id") } ?? ""
        if let problem = EventLimits.nameProblem(id) { reader.error("\(path).id", problem, keys["id"]) }
        if keys["id"] == nil { reader.error("\(path).id", "missing", node) }
        var patterns: [EventPattern] = []
        if let onNode = keys["on"], let list = reader.stringList(onNode, at: "\(path).on") {
            for (index, text) in list.enumerated() {
                if let pattern = EventPattern(text) { patterns.append(pattern) } else { reader.error("\(path).on[\(index)]", "expected source:type (with * wildcards), found '\(text)'", onNode) }
            }
        } else if keys["on"] == nil {
            reader.error("\(path).on", "missing: which events start it, e.g. [\"stripe:payment_intent.succeeded\"]", node)
        }
        let condition = keys["if"].flatMap { readCondition($0, at: "\(path).if", reader) }
        var concurrency: ConcurrencyRule?
        if let node = keys["concurrency"], let ruleKeys = reader.mapping(node, at: "\(path).concurrency", allowed: ["key", "limit"]) {
            let key = ruleKeys["key"].flatMap { reader.nonEmptyString($0, at: "\(path).concurrency.key") }
            if ruleKeys["key"] == nil { reader.error("\(path).concurrency.key", "missing, e.g. \"{{body.data.object.customer}}\"", node) }
            let limit = ruleKeys["limit"].flatMap { reader.int($0, at: "\(path).concurrency.limit", range: 1...1000) } ?? 1
            if let key {
                TemplateCheck.checkText(key, at: "\(path).concurrency.key", reader)
                concurrency = ConcurrencyRule(key: key, limit: limit)
            }
        }
        let retry = keys["retry"].flatMap { readRetry($0, at: "\(path).retry", reader) } ?? defaultRetry
        var steps: [Step] = []
        if let stepsNode = keys["steps"], let items = reader.sequence(stepsNode, at: "\(path).steps") {
            var stepIDs: Set<String> = []
            for (index, item) in items.enumerated() {
                let stepPath = "\(path).steps[\(index)]"
                guard let step = readStep(item, at: stepPath, index: index, smtp: smtp, reader) else { continue }
                if !stepIDs.insert(step.id).inserted { reader.error("\(stepPath).id", "duplicate step id '\(step.id)'", item) }
                steps.append(step)
            }
            if items.isEmpty { reader.error("\(path).steps", "needs at least one step", stepsNode) }
        } else if keys["steps"] == nil {
            reader.error("\(path).steps", "missing", node)
        }
        guard reader.errors.count == before else { return nil }
        return Automation(id: id, on: patterns, condition: condition, steps: steps, retry: retry, concurrency: concurrency)
    }

    private static func readStep(_ node: Node, at path: String, index: Int, smtp: SMTPSettings?, _ reader: NodeReader) -> Step? {
        guard let keys = reader.mapping(node, at: path, allowed: ["id", "retry"] + stepKinds) else { return nil }
        let id = keys["id"].flatMap { reader.nonEmptyString($0, at: "\(path).id") } ?? "step\(index + 1)"
        // A step id goes into the Idempotency-Key header and an emitted event's id: both have limits.
        if let problem = EventLimits.nameProblem(id) { reader.error("\(path).id", problem, keys["id"]) }
        let kinds = stepKinds.filter { keys[$0] != nil }
        guard kinds.count == 1, let kind = kinds.first, let body = keys[kind] else {
            reader.error(path, kinds.isEmpty ? "a step needs one action: \(stepKinds.joined(separator: ", "))" : "a step has one action, found \(kinds.joined(separator: " and "))", node)
            return nil
        }
        let retry = keys["retry"].flatMap { readRetry($0, at: "\(path).retry", reader) }
        let actionPath = "\(path).\(kind)"
        let action: StepAction?
        switch kind {
        case "http": action = readHTTP(body, at: actionPath, reader).map(StepAction.http)
        case "chat": action = readChat(body, at: actionPath, reader).map(StepAction.chat)
        case "exec": action = readExec(body, at: actionPath, reader).map(StepAction.exec)
        case "file": action = readFile(body, at: actionPath, reader).map(StepAction.file)
        case "emit": action = readEmit(body, at: actionPath, reader).map(StepAction.emit)
        case "email": action = readEmail(body, at: actionPath, smtp: smtp, reader).map(StepAction.email)
        case "deliver": action = readDeliver(body, at: actionPath, reader).map(StepAction.deliver)
        default:
            reader.error(actionPath, "'\(kind)' steps are not supported by this build yet", body)
            action = nil
        }
        guard let action else { return nil }
        let step = Step(id: id, action: action, retry: retry)
        TemplateCheck.check(step, at: path, reader)
        return step
    }

    private static func readHTTP(_ node: Node, at path: String, _ reader: NodeReader) -> HTTPStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["method", "url", "headers", "json", "body", "form", "timeout", "expect"]) else { return nil }
        guard let urlNode = keys["url"], let url = reader.nonEmptyString(urlNode, at: "\(path).url") else {
            if keys["url"] == nil { reader.error("\(path).url", "missing", node) }
            return nil
        }
        if !url.contains("{{"), URL(string: url)?.scheme.map({ ["http", "https"].contains($0) }) != true {
            reader.error("\(path).url", "not an http(s) URL", urlNode)
        }
        var step = HTTPStep(url: url)
        if let method = keys["method"], let text = reader.nonEmptyString(method, at: "\(path).method") {
            let upper = text.uppercased()
            if ["GET", "POST", "PUT", "PATCH", "DELETE"].contains(upper) { step.method = upper } else { reader.error("\(path).method", "expected GET, POST, PUT, PATCH or DELETE", method) }
        }
        if let headers = keys["headers"] { step.headers = stringMap(headers, at: "\(path).headers", reader) }
        let bodies = ["json", "body", "form"].filter { keys[$0] != nil }
        if bodies.count > 1 { reader.error(path, "use one of json, body or form", node) }
        if let json = keys["json"] { step.body = .json(templateValue(json, at: "\(path).json", reader)) }
        if let text = keys["body"], let value = reader.string(text, at: "\(path).body") { step.body = .text(value) }
        if let form = keys["form"] { step.body = .form(stringMap(form, at: "\(path).form", reader)) }
        if let timeout = keys["timeout"] { step.timeout = duration(timeout, at: "\(path).timeout", reader) ?? step.timeout }
        if let expect = keys["expect"], let list = reader.stringList(expect, at: "\(path).expect") {
            step.expect = list.compactMap { text in
                guard let code = Int(text), (100...599).contains(code) else {
                    reader.error("\(path).expect", "'\(text)' is not an HTTP status", expect)
                    return nil
                }
                return code
            }
        }
        return step
    }

    private static func readChat(_ node: Node, at path: String, _ reader: NodeReader) -> ChatStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["kind", "url", "text", "timeout"]) else { return nil }
        let kindText = keys["kind"].flatMap { reader.nonEmptyString($0, at: "\(path).kind") } ?? ""
        guard let kind = ChatStep.Kind(rawValue: kindText.lowercased()) else {
            reader.error("\(path).kind", "expected one of: \(ChatStep.Kind.allCases.map(\.rawValue).joined(separator: ", "))", keys["kind"] ?? node)
            return nil
        }
        guard let url = keys["url"].flatMap({ reader.nonEmptyString($0, at: "\(path).url") }),
            let text = keys["text"].flatMap({ reader.nonEmptyString($0, at: "\(path).text") })
        else {
            reader.error(path, "chat steps need url and text", node)
            return nil
        }
        var step = ChatStep(kind: kind, url: url, text: text)
        if let timeout = keys["timeout"] { step.timeout = duration(timeout, at: "\(path).timeout", reader) ?? step.timeout }
        return step
    }

    private static func readExec(_ node: Node, at path: String, _ reader: NodeReader) -> ExecStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["argv", "env", "inherit_env", "dir", "timeout"]) else { return nil }
        guard let argvNode = keys["argv"], case .sequence = argvNode, let argv = reader.stringList(argvNode, at: "\(path).argv"), !argv.isEmpty else {
            reader.error("\(path).argv", "expected a non-empty list: the program and its arguments (never a shell string)", keys["argv"] ?? node)
            return nil
        }
        // Webhook data may fill arguments, never choose the program.
        if argv[0].contains("{{") || argv[0].isEmpty {
            reader.error("\(path).argv[0]", "the program must be a literal path or name, not a template; pass values as later arguments", argvNode)
        }
        var step = ExecStep(argv: argv)
        if let env = keys["env"] {
            step.env = stringMap(env, at: "\(path).env", reader)
            for name in step.env.keys.sorted() where !isEnvironmentName(name) {
                reader.error("\(path).env.\(name)", "not an environment variable name (letters, digits and _, not starting with a digit)", env)
            }
        }
        if let inherit = keys["inherit_env"], let names = reader.stringList(inherit, at: "\(path).inherit_env") {
            for (index, name) in names.enumerated() where !isEnvironmentName(name) {
                reader.error("\(path).inherit_env[\(index)]", "'\(name)' is not an environment variable name (letters, digits and _, not starting with a digit)", inherit)
            }
            step.inheritEnv = names
        }
        if let dir = keys["dir"], let text = reader.nonEmptyString(dir, at: "\(path).dir") {
            // A folder from the config, never from a webhook (and never rendered: say so at load).
            if text.contains("{{") { reader.error("\(path).dir", "the working folder must be a literal path, not a template", dir) }
            step.directory = reader.resolvePath(text)
        }
        // Like every relative path in the config, a command's relative names (`scripts/x.sh`) start
        // at the config's folder unless `dir` says otherwise — the same at `check` and at run time.
        if step.directory == nil { step.directory = reader.directory }
        if let timeout = keys["timeout"] { step.timeout = duration(timeout, at: "\(path).timeout", reader) ?? step.timeout }
        return step
    }

    /// `NAME` as a shell would accept it: what `env` and `inherit_env` may name.
    static func isEnvironmentName(_ name: String) -> Bool {
        guard let first = name.unicodeScalars.first, !("0"..."9").contains(first) else { return false }
        return name.unicodeScalars.allSatisfy { $0.isASCII && ($0 == "_" || ("a"..."z").contains($0) || ("A"..."Z").contains($0) || ("0"..."9").contains($0)) }
    }

    private static func readFile(_ node: Node, at path: String, _ reader: NodeReader) -> FileStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["path", "template"]) else { return nil }
        guard let output = keys["path"].flatMap({ reader.nonEmptyString($0, at: "\(path).path") }),
            let templateNode = keys["template"], let template = reader.nonEmptyString(templateNode, at: "\(path).template")
        else {
            reader.error(path, "file steps need path and template", node)
            return nil
        }
        let resolved = reader.resolvePath(template)
        if !FileManager.default.fileExists(atPath: resolved) {
            reader.error("\(path).template", "template file '\(resolved)' does not exist", templateNode)
        }
        return FileStep(path: output, template: resolved)
    }

    private static func readEmit(_ node: Node, at path: String, _ reader: NodeReader) -> EmitStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["type", "data"]) else { return nil }
        guard let type = keys["type"].flatMap({ reader.nonEmptyString($0, at: "\(path).type") }) else {
            reader.error("\(path).type", "missing", node)
            return nil
        }
        return EmitStep(type: type, data: keys["data"].map { templateValue($0, at: "\(path).data", reader) } ?? .object([:]))
    }

    private static func readDeliver(_ node: Node, at path: String, _ reader: NodeReader) -> DeliverStep? {
        // `deliver: {}` relays the run's event; a mapping may name a type/data and endpoints.
        if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "~" { return DeliverStep() }
        guard let keys = reader.mapping(node, at: path, allowed: ["type", "data", "endpoints"]) else { return nil }
        let type = keys["type"].flatMap { reader.nonEmptyString($0, at: "\(path).type") }
        if keys["data"] != nil && keys["type"] == nil {
            reader.error("\(path).data", "data needs a type: deliver {type, data} publishes a new event", node)
        }
        let data = keys["data"].map { templateValue($0, at: "\(path).data", reader) }
        let endpoints = keys["endpoints"].flatMap { reader.stringList($0, at: "\(path).endpoints") } ?? []
        return DeliverStep(type: type, data: type == nil ? nil : (data ?? .object([:])), endpoints: endpoints)
    }

    private static func readEmail(_ node: Node, at path: String, smtp: SMTPSettings?, _ reader: NodeReader) -> EmailStep? {
        guard let keys = reader.mapping(node, at: path, allowed: ["to", "cc", "bcc", "reply_to", "subject", "text", "html", "attach", "smtp"]) else { return nil }
        let to = keys["to"].flatMap { reader.stringList($0, at: "\(path).to") } ?? []
        if to.isEmpty { reader.error("\(path).to", "missing: at least one recipient", keys["to"] ?? node) }
        var addresses: [String: [String]] = ["to": to]
        for key in ["cc", "bcc", "reply_to"] { addresses[key] = keys[key].flatMap { reader.stringList($0, at: "\(path).\(key)") } ?? [] }
        // Literal addresses are checked now; templated ones when the step runs (the same check).
        for (key, list) in addresses.sorted(by: { $0.key < $1.key }) {
            for entry in list where !entry.contains("{{") {
                for address in entry.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) {
                    if let problem = EmailAddress.problem(address) {
                        reader.error("\(path).\(key)", "\(EmailAddress.quoted(address)) is not an email address: \(problem)", keys[key])
                    }
                }
            }
        }
        let subject = keys["subject"].flatMap { reader.string($0, at: "\(path).subject") }
        if subject == nil { reader.error("\(path).subject", "missing", node) }
        let text = keys["text"].flatMap { reader.string($0, at: "\(path).text") }
        let html = keys["html"].flatMap { reader.string($0, at: "\(path).html") }
        if text == nil && html == nil { reader.error(path, "an email needs text or html", node) }
        let own = keys["smtp"].flatMap { readSMTP($0, at: "\(path).smtp", reader) }
        if own == nil && smtp == nil && keys["smtp"] == nil {
            reader.error(path, "no mail server: add a top-level smtp: section or smtp: on the step", node)
        }
        return EmailStep(
            to: to, cc: addresses["cc"] ?? [], bcc: addresses["bcc"] ?? [], replyTo: addresses["reply_to"] ?? [], subject: subject ?? "",
            text: text, html: html, attach: keys["attach"].flatMap { reader.stringList($0, at: "\(path).attach") } ?? [],
            smtp: own ?? smtp
        )
    }

    /// `smtp: {host, port, username, password, from, tls: starttls | tls | none, ca_file, timeout}`.
    static func readSMTP(_ node: Node, at path: String, _ reader: NodeReader) -> SMTPSettings? {
        guard let keys = reader.mapping(node, at: path, allowed: ["host", "port", "username", "password", "from", "tls", "ca_file", "timeout"]) else { return nil }
        let before = reader.errors.count
        let host = keys["host"].flatMap { reader.nonEmptyString($0, at: "\(path).host") }
        if keys["host"] == nil { reader.error("\(path).host", "missing", node) }
        let from = keys["from"].flatMap { reader.nonEmptyString($0, at: "\(path).from") }
        if keys["from"] == nil { reader.error("\(path).from", "missing: the sender address", node) }
        if let from, let problem = EmailAddress.problem(from) { reader.error("\(path).from", "\(EmailAddress.quoted(from)) is not an email address: \(problem)", keys["from"]) }
        var tls = SMTPSettings.TLSMode.starttls
        if let tlsNode = keys["tls"], let text = reader.nonEmptyString(tlsNode, at: "\(path).tls") {
            if let mode = SMTPSettings.TLSMode(rawValue: text.lowercased()) { tls = mode } else { reader.error("\(path).tls", "expected starttls, tls or none", tlsNode) }
        }
        let port = keys["port"].flatMap { reader.int($0, at: "\(path).port", range: 1...65535) } ?? (tls == .implicit ? 465 : 587)
        let username = keys["username"].flatMap { reader.string($0, at: "\(path).username") }.flatMap { $0.isEmpty ? nil : $0 }
        let password = keys["password"].flatMap { reader.string($0, at: "\(path).password") }.flatMap { $0.isEmpty ? nil : $0 }
        if (username == nil) != (password == nil) { reader.error(path, "username and password go together", node) }
        if username != nil && tls == .none { reader.warning("\(path).tls", "the password would cross the network in clear text", node) }
        let caFile = keys["ca_file"].flatMap { reader.nonEmptyString($0, at: "\(path).ca_file") }.map(reader.resolvePath)
        let timeout = keys["timeout"].flatMap { duration($0, at: "\(path).timeout", reader) } ?? 30
        guard reader.errors.count == before, let host, let from else { return nil }
        return SMTPSettings(host: host, port: port, username: username, password: password, from: from, tls: tls, caFile: caFile, timeout: timeout)
    }

    static func stringMap(_ node: Node, at path: String, _ reader: NodeReader) -> [String: String] {
        guard case .mapping(let mapping) = node else {
            reader.error(path, "expected a mapping", node)
            return [:]
        }
        var result: [String: String] = [:]
        for (key, value) in mapping {
            guard let name = key.string else { continue }
            if let text = reader.string(value, at: "\(path).\(name)") { result[name] = text }
        }
        return result
    }

    private static func duration(_ node: Node, at path: String, _ reader: NodeReader) -> Double? {
        guard let text = reader.string(node, at: path) else { return nil }
        guard let seconds = Units.parseDuration(text), seconds > 0 else {
            reader.error(path, "expected a duration such as 15s, found '\(reader.written(node))'", node)
            return nil
        }
        return seconds
    }

    /// YAML → a JSON-shaped value; plain (unquoted) numbers and booleans keep their type.
    static func templateValue(_ node: Node, at path: String, _ reader: NodeReader) -> TemplateValue {
        switch node {
        case .scalar(let scalar):
            if scalar.style == .plain {
                if scalar.string == "null" || scalar.string == "~" { return .null }
                if let flag = node.bool { return .bool(flag) }
                if let number = node.float, scalar.string.first.map({ $0.isNumber || $0 == "-" }) == true { return .number(number) }
            }
            return .string(reader.string(node, at: path) ?? "")
        case .sequence(let sequence):
            return .array(sequence.enumerated().map { templateValue($1, at: "\(path)[\($0)]", reader) })
        case .mapping(let mapping):
            var object: [String: TemplateValue] = [:]
            for (key, value) in mapping {
                guard let name = key.string else { continue }
                object[name] = templateValue(value, at: "\(path).\(name)", reader)
            }
            return .object(object)
        case .alias:
            reader.error(path, "aliases are not supported", node)
            return .null
        }
    }

    private static let logical = ["and", "or", "not"]

    /// `{ "body.x": { eq: 1 } }`, several paths meaning all; `and` / `or` lists and `not`.
    static func readCondition(_ node: Node, at path: String, _ reader: NodeReader) -> Condition? {
        guard case .mapping(let mapping) = node else {
            reader.error(path, "expected a mapping of path: {operator: value}", node)
            return nil
        }
        var parts: [Condition] = []
        for (keyNode, value) in mapping {
            guard let key = keyNode.string else { continue }
            let keyPath = "\(path).\(key)"
            switch key {
            case "and", "or":
                guard case .sequence(let items) = value else {
                    reader.error(keyPath, "expected a list of conditions", value)
                    continue
                }
                let inner = items.enumerated().compactMap { readCondition($1, at: "\(keyPath)[\($0)]", reader) }
                parts.append(key == "and" ? .all(inner) : .any(inner))
            case "not":
                if let inner = readCondition(value, at: keyPath, reader) { parts.append(.not(inner)) }
            default:
                let root = key.split(separator: ".").first.map(String.init) ?? ""
                guard ["body", "headers", "event"].contains(root) else {
                    reader.error(keyPath, "paths start with body., headers. or event.", keyNode)
                    continue
                }
                guard case .mapping(let ops) = value else {
                    reader.error(keyPath, "expected {operator: value}, e.g. { eq: \"usd\" }", value)
                    continue
                }
                for (opNode, operand) in ops {
                    guard let name = opNode.string, let op = Condition.Operator(rawValue: name) else {
                        reader.error(keyPath, "unknown operator '\(opNode.string ?? "?")'; expected one of: \(Condition.Operator.allCases.map(\.rawValue).joined(separator: ", "))", opNode)
                        continue
                    }
                    let operandValue = templateValue(operand, at: "\(keyPath).\(name)", reader)
                    if op == .regex, case .string(let pattern) = operandValue {
                        if (try? NSRegularExpression(pattern: pattern)) == nil {
                            reader.error("\(keyPath).regex", "not a valid regular expression", operand)
                        } else if let problem = CatastrophicPattern.problem(pattern) {
                            // Conditions run while a webhook waits for its answer: refuse what could stall it.
                            reader.error("\(keyPath).regex", "'\(pattern.prefix(80))': \(problem)", operand)
                        }
                    }
                    parts.append(.compare(path: key, op: op, operand: operandValue))
                }
            }
        }
        return parts.count == 1 ? parts[0] : .all(parts)
    }
}
