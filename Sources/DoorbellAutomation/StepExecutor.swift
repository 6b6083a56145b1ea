import AsyncHTTPClient
import DoorbellCore
import DoorbellStorage
import Foundation
import NIOCore
import NIOHTTP1

/// Why a step attempt failed, and whether trying again can help.
public struct StepFailure: Error, Sendable, CustomStringConvertible {
    public let description: String
    public let retryable: Bool
    /// Seconds from a `Retry-After` header.
    public let retryAfter: Double?

    public init(_ description: String, retryable: Bool, retryAfter: Double? = nil) {
        self.description = description
        self.retryable = retryable
        self.retryAfter = retryAfter
    }
}

/// Everything one step attempt needs besides the step itself.
struct StepInput {
    let runID: String
    let event: NewEvent
    /// The template context: event, body, headers, steps.
    let context: [String: Any]
}

/// Runs one step: renders its templates, performs the action, returns its output (a JSON object).
struct StepExecutor: Sendable {
    /// Every request goes through the SSRF guard.
    let http: OutboundHTTP
    let filesDirectory: String
    /// Stores an emitted event (with its runs) and wakes the worker.
    let storeEmitted: @Sendable (NewEvent) async throws -> IngestOutcome
    /// Adds deliveries to an event already stored (a `deliver` step relaying its run's event).
    let planRuns: @Sendable ([PlannedRun], String) async throws -> Int
    let planner: EventPlanner
    let maxChainDepth: Int

    func run(_ step: Step, _ input: StepInput) async throws(StepFailure) -> [String: Any] {
        do {
            switch step.action {
            case .http(let http): return try await runHTTP(http, step: step, input)
            case .chat(let chat): return try await runChat(chat, step: step, input)
            case .exec(let exec): return try await ExecRunner.run(exec, input: input)
            case .file(let file): return try runFile(file, input)
            case .emit(let emit): return try await runEmit(emit, step: step, input)
            case .email(let email): return try await runEmail(email, step: step, input)
            case .deliver(let deliver): return try await runDeliver(deliver, step: step, input)
            }
        } catch let failure as StepFailure {
            throw failure
        } catch let refusal as OutboundRefusal {
            throw StepFailure(refusal.description, retryable: false)
        } catch let error as Templates.RenderError {
            throw StepFailure(error.description, retryable: false)
        } catch {
            throw StepFailure(String(describing: error).redactingURLs, retryable: true)
        }
    }

    // MARK: http and chat

    private func runHTTP(_ http: HTTPStep, step: Step, _ input: StepInput) async throws -> [String: Any] {
        let url = try Templates.renderURL(http.url, input.context, field: "http.url")
        var headers = HTTPHeaders()
        for (name, value) in http.headers {
            let rendered = try Templates.render(value, input.context, field: "http.headers.\(name)")
            // The rule endpoint headers follow; a CR/LF from a webhook would otherwise fail every retry.
            if let problem = EventLimits.headerValueProblem(rendered) { throw StepFailure("http.headers.\(name): \(problem)", retryable: false) }
            headers.add(name: name, value: rendered)
        }
        var body: [UInt8]?
        switch http.body {
        case .none: body = nil
        case .json(let value):
            body = try JSONText.data(try Templates.render(value, input.context, field: "http.body"))
            if !headers.contains(name: "Content-Type") { headers.add(name: "Content-Type", value: "application/json") }
        case .text(let text): body = Array(try Templates.render(text, input.context, field: "http.body").utf8)
        case .form(let fields):
            var allowed = CharacterSet.alphanumerics
            allowed.insert(charactersIn: "-._~")
            body = Array(try fields.sorted { $0.key < $1.key }.map { name, value in
                let rendered = try Templates.render(value, input.context, field: "http.body.\(name)")
                return "\(name.addingPercentEncoding(withAllowedCharacters: allowed) ?? name)=\(rendered.addingPercentEncoding(withAllowedCharacters: allowed) ?? rendered)"
            }.joined(separator: "&").utf8)
            if !headers.contains(name: "Content-Type") { headers.add(name: "Content-Type", value: "application/x-www-form-urlencoded") }
        }
        // The same key on every attempt, so the receiver can tell a retry from a new request.
        headers.replaceOrAdd(name: "Idempotency-Key", value: "\(input.runID)-\(step.id)")
        return try await send(method: http.method, url: url, headers: headers, body: body, timeout: http.timeout, expect: http.expect)
    }

    private func runChat(_ chat: ChatStep, step: Step, _ input: StepInput) async throws -> [String: Any] {
        let url = try Templates.renderURL(chat.url, input.context, field: "chat.url")
        let text = try Templates.render(chat.text, input.context, field: "chat.text")
        let payload: [String: Any] = switch chat.kind {
        case .slack, .teams, .googleChat: ["text": text]
        case .discord: ["content": text]
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: "application/json")
        headers.add(name: "Idempotency-Key", value: "\(input.runID)-\(step.id)")
        return try await send(method: "POST", url: url, headers: headers, body: try JSONText.data(payload), timeout: chat.timeout, expect: [])
    }

    /// Sends a request; 2xx (or an `expect`ed status) is success; 408/409/425/429 and 5xx, timeouts and
    /// connection errors are worth retrying; other statuses, including redirects, are not.
    private func send(method: String, url: String, headers: HTTPHeaders, body: [UInt8]?, timeout: Double, expect: [Int]) async throws -> [String: Any] {
        guard let parsed = URL(string: url), ["http", "https"].contains(parsed.scheme?.lowercased() ?? ""), parsed.host != nil else {
            // A template that is a whole URL (`{{steps.x.body.url}}`) is percent-encoded like any value.
            let hint = url.hasPrefix("http%3A") || url.hasPrefix("https%3A") ? " (a value that is a whole URL needs a triple mustache: {{{…}}})" : ""
            throw StepFailure("not an http(s) URL: '\(RedactedURL(url))'\(hint)", retryable: false)
        }
        var request = HTTPClientRequest(url: url)
        request.method = HTTPMethod(rawValue: method)
        request.headers = headers
        if let body { request.body = .bytes(body) }
        let response: OutboundResponse
        do {
            // At most 1 MiB of the answer is read into memory; the rest is read and discarded
            // within the timeout, and the output says it was cut (`truncated`).
            response = try await http.fetch(request, timeout: timeout, keep: Self.maxReadBody)
        } catch let refusal as OutboundRefusal {
            throw StepFailure(refusal.description, retryable: false)
        } catch {
            throw StepFailure("\(method) \(RedactedURL(url)): \(String(describing: error).hiding(RedactedURL.hiddenParts(of: url)).redactingURLs)", retryable: true)
        }
        let status = response.status
        let ok = expect.isEmpty ? (200..<300).contains(status) : expect.contains(status)
        guard ok else {
            let retryable = [408, 409, 425, 429].contains(status) || status >= 500
            let excerpt = String(decoding: response.body.prefix(1024), as: UTF8.self).prefix(300)
            let reason = (300..<400).contains(status) ? "redirect not followed" : "unexpected status"
            throw StepFailure("\(method) \(RedactedURL(url)) answered \(status) (\(reason)): \(String(excerpt).hiding(RedactedURL.hiddenParts(of: url)).redactingURLs)", retryable: retryable, retryAfter: Self.retryAfter(response.headers.first(name: "Retry-After")))
        }
        guard response.keptWhole else {
            // The kept part itself is incomplete: later steps would read half an answer.
            let why = response.ending == .deadline ? "timed out after \(timeout) s reading the answer" : "the answer broke off"
            throw StepFailure("\(method) \(RedactedURL(url)) answered \(status) but \(why)", retryable: true)
        }
        var output: [String: Any] = ["status": status]
        output["headers"] = Dictionary(response.headers.map { ($0.name.lowercased(), $0.value) }, uniquingKeysWith: { first, _ in first })
        if !response.truncated, let json = try? JSONSerialization.jsonObject(with: Data(response.body), options: [.fragmentsAllowed]) {
            output["body"] = json
            output["truncated"] = false
        } else {
            // Not JSON, or cut: stored as text, at most 64 KiB of it.
            let stored = response.body.prefix(Self.maxStoredText)
            output["body"] = String(decoding: stored, as: UTF8.self)
            output["truncated"] = response.truncated || stored.count < response.body.count
        }
        return output
    }

    /// How much of an `http` or `chat` step's answer is read into memory (a JSON answer up to this
    /// size is its output's `body`), and how much of a text or cut answer is stored.
    static let maxReadBody = 1 << 20
    static let maxStoredText = 64 * 1024

    /// The longest wait a `Retry-After` can ask for (a week); callers cap it further by their own
    /// schedules. The header is the peer's: "inf", "1e400" or a date in 9999 must not reach a
    /// date-to-milliseconds conversion that traps.
    static let maxRetryAfter: Double = 7 * 86400

    /// `Retry-After` as seconds or an HTTP date, between 0 and `maxRetryAfter`; nil when unreadable.
    static func retryAfter(_ value: String?) -> Double? {
        guard let value = value?.trimmingCharacters(in: .whitespaces), !value.isEmpty, value.count <= 64 else { return nil }
        let seconds: Double
        if let number = Double(value) {
            guard !number.isNaN else { return nil }
            seconds = number
        } else {
            let formatter = DateFormatter()
            formatter.locale = Locale(identifier: "en_US_POSIX")
            formatter.timeZone = TimeZone(identifier: "GMT")
            formatter.dateFormat = "EEE, dd MMM yyyy HH:mm:ss zzz"
            guard let date = formatter.date(from: value) else { return nil }
            seconds = date.timeIntervalSinceNow
        }
        return min(max(0, seconds), maxRetryAfter)
    }

    // MARK: email

    private func runEmail(_ email: EmailStep, step: Step, _ input: StepInput) async throws -> [String: Any] {
        guard let settings = email.smtp else { throw StepFailure("no SMTP settings", retryable: false) }
        // Every address, wherever it goes (envelope or header), passes the same strict check; a bad
        // one fails the step for good before anything is sent.
        // A templated entry names exactly one address: webhook data must not turn one recipient into
        // thousands (a mail relay). Literal entries from the config may list several, comma-separated.
        let addresses = { (field: String, list: [String]) throws -> [String] in
            let rendered = try list.flatMap { entry in
                let parts = try Templates.render(entry, input.context, field: "email.\(field)").split(separator: ",")
                    .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
                if entry.contains("{{"), parts.count > 1 {
                    throw StepFailure("email.\(field): the template '\(entry)' rendered \(parts.count) addresses; a templated entry must name one (list several entries in the config instead)", retryable: false)
                }
                return parts
            }
            for address in rendered {
                if let problem = EmailAddress.problem(address) {
                    throw StepFailure("email.\(field): \(EmailAddress.quoted(address)) is not an email address: \(problem)", retryable: false)
                }
            }
            return rendered
        }
        let to = try addresses("to", email.to)
        guard !to.isEmpty else { throw StepFailure("no recipient after rendering \(email.to)", retryable: false) }
        let cc = try addresses("cc", email.cc)
        let bcc = try addresses("bcc", email.bcc)
        let replyTo = try addresses("reply_to", email.replyTo)
        guard to.count + cc.count + bcc.count <= EmailStep.maxRecipients else {
            throw StepFailure("email: \(to.count + cc.count + bcc.count) recipients; at most \(EmailStep.maxRecipients) per step", retryable: false)
        }
        var attachments: [MailMessage.Attachment] = []
        for template in email.attach {
            let file = try FilesDirectory(path: filesDirectory).read(try Templates.render(template, input.context, field: "email.attach"))
            attachments.append(.init(filename: file.name, contentType: Self.contentType(file.name), data: file.data))
        }
        let message = MailMessage(
            from: settings.from, to: to, cc: cc, bcc: bcc, replyTo: replyTo, subject: try Templates.render(email.subject, input.context, field: "email.subject"),
            text: try email.text.map { try Templates.render($0, input.context, field: "email.text") }, html: try email.html.map { try Templates.render($0, input.context, html: true, field: "email.html") },
            attachments: attachments, messageID: "\(input.runID)-\(step.id)@doorbell"
        )
        do {
            let receipt = try await SMTPClient(settings: settings).send(message)
            return ["accepted": receipt.accepted, "rejected": receipt.rejected, "message_id": message.messageID]
        } catch {
            throw StepFailure(error.description, retryable: error.retryable)
        }
    }

    static func contentType(_ filename: String) -> String {
        switch URL(fileURLWithPath: filename).pathExtension.lowercased() {
        case "html", "htm": "text/html; charset=utf-8"
        case "txt": "text/plain; charset=utf-8"
        case "pdf": "application/pdf"
        case "png": "image/png"
        case "jpg", "jpeg": "image/jpeg"
        case "csv": "text/csv; charset=utf-8"
        case "json": "application/json"
        default: "application/octet-stream"
        }
    }

    // MARK: file and emit

    private func runFile(_ file: FileStep, _ input: StepInput) throws -> [String: Any] {
        let relative = try Templates.render(file.path, input.context, field: "file.path")
        let files = FilesDirectory(path: filesDirectory)
        // Refused before rendering: a path that leaves files_dir fails the same way on every retry.
        _ = try files.relativeComponents(relative)
        guard let template = FileManager.default.contents(atPath: file.template) else {
            throw StepFailure("cannot read template \(file.template)", retryable: false)
        }
        let html = [".html", ".htm"].contains { file.template.lowercased().hasSuffix($0) }
        let rendered = try Templates.render(String(decoding: template, as: UTF8.self), input.context, html: html, field: "file output", limit: Templates.fileLimit)
        let path = try files.write(relative, contents: Array(rendered.utf8))
        return ["path": path, "bytes": rendered.utf8.count]
    }

    private func runEmit(_ emit: EmitStep, step: Step, _ input: StepInput) async throws -> [String: Any] {
        guard input.event.depth < maxChainDepth else {
            throw StepFailure("chain depth limit \(maxChainDepth) reached: an emit loop?", retryable: false)
        }
        let type = try Self.eventType(emit.type, step: "emit", input.context)
        let data = try JSONText.data(try Templates.render(emit.data, input.context, field: "emit.data"))
        // The provider id is the step's identity: a retried emit after a crash stores one event.
        var event = NewEvent(
            source: input.event.source, type: type, providerID: "\(input.runID)-\(step.id)",
            headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](data), depth: input.event.depth + 1
        )
        let outcome = try await storeEmitted(planner.plan(event))
        return ["event_id": outcome.id, "type": type]
    }

    /// Renders an `emit`/`deliver` type and holds it to the limits ingest applies: an empty, over-long
    /// or CR/LF-laden type fails the step for good (the same data renders the same type on a retry).
    static func eventType(_ template: String, step kind: String, _ context: [String: Any]) throws -> String {
        let type = try Templates.render(template, context, field: "\(kind).type")
        if let problem = EventLimits.typeProblem(type) {
            // debugDescription: the rendered type is the sender's text, CR/LF included; it is shown escaped.
            throw StepFailure("\(kind) type \(String(type.prefix(60)).debugDescription)\(type.count > 60 ? "…" : "") rendered from '\(template.prefix(80))': \(problem)", retryable: false)
        }
        return type
    }

    /// Without a type: the run's own event goes to the endpoints (a relay). With a type: a new event
    /// of ours is published to them (it starts no automations; `emit` is for that).
    private func runDeliver(_ deliver: DeliverStep, step: Step, _ input: StepInput) async throws -> [String: Any] {
        guard let typeTemplate = deliver.type else {
            let runs = planner.directory.deliveries(for: input.event, only: deliver.endpoints.isEmpty ? planner.directory.all.map(\.id) : deliver.endpoints)
            let created = try await planRuns(runs, input.event.id)
            return ["event_id": input.event.id, "deliveries": runs.map { $0.endpoint ?? "" }, "created": created]
        }
        guard input.event.depth < maxChainDepth else {
            throw StepFailure("chain depth limit \(maxChainDepth) reached: a deliver loop?", retryable: false)
        }
        let type = try Self.eventType(typeTemplate, step: "deliver", input.context)
        let data = try JSONText.data(try Templates.render(deliver.data ?? .object([:]), input.context, field: "deliver.data"))
        var event = NewEvent(
            source: input.event.source, type: type, providerID: "\(input.runID)-\(step.id)",
            headers: [Header(name: "Content-Type", value: "application/json")], body: [UInt8](data), depth: input.event.depth + 1
        )
        event.automations = planner.directory.deliveries(for: event, only: deliver.endpoints)
        let outcome = try await storeEmitted(event)
        return ["event_id": outcome.id, "type": type, "deliveries": event.automations.map { $0.endpoint ?? "" }]
    }
}
