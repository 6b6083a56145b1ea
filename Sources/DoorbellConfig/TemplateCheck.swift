import DoorbellCore
import Foundation
import Mustache

/// Parses every Mustache template of a step at load (URLs, headers, bodies, subjects, texts, paths,
/// argv, emitted types and data, and `file` template files), so `doorbell check` and `serve` report
/// `automations[0].steps[1].http.url: unclosed tag '{{body.x'` instead of a run failing later.
/// Literal event types are held to the limits ingest applies (`EventLimits`).
enum TemplateCheck {
    static func check(_ step: Step, at path: String, _ reader: NodeReader) {
        func text(_ value: String, _ field: String) { checkText(value, at: "\(path).\(field)", reader) }
        func list(_ values: [String], _ field: String) {
            for (index, value) in values.enumerated() { text(value, "\(field)[\(index)]") }
        }
        func map(_ values: [String: String], _ field: String) {
            for (key, value) in values.sorted(by: { $0.key < $1.key }) { text(value, "\(field).\(key)") }
        }
        switch step.action {
        case .http(let http):
            text(http.url, "http.url")
            map(http.headers, "http.headers")
            for name in http.headers.keys.sorted() {
                if let problem = EventLimits.headerNameProblem(name) { reader.error("\(path).http.headers.\(name)", problem) }
            }
            for (name, value) in http.headers.sorted(by: { $0.key < $1.key }) where !value.contains("{{") {
                if let problem = EventLimits.headerValueProblem(value) { reader.error("\(path).http.headers.\(name)", problem) }
            }
            switch http.body {
            case .none: break
            case .json(let value): checkValue(value, at: "\(path).http.json", reader)
            case .text(let body): text(body, "http.body")
            case .form(let fields): map(fields, "http.form")
            }
        case .chat(let chat):
            text(chat.url, "chat.url")
            text(chat.text, "chat.text")
        case .email(let email):
            list(email.to, "email.to")
            list(email.cc, "email.cc")
            list(email.bcc, "email.bcc")
            list(email.replyTo, "email.reply_to")
            text(email.subject, "email.subject")
            if let body = email.text { text(body, "email.text") }
            if let body = email.html { text(body, "email.html") }
            list(email.attach, "email.attach")
        case .exec(let exec):
            list(exec.argv, "exec.argv")
            map(exec.env, "exec.env")
        case .file(let file):
            text(file.path, "file.path")
            // A missing file is reported by the reader; an unreadable or malformed one here.
            if let data = FileManager.default.contents(atPath: file.template) {
                checkText(String(decoding: data, as: UTF8.self), at: "\(path).file.template", file: file.template, reader)
            }
        case .emit(let emit):
            text(emit.type, "emit.type")
            checkType(emit.type, at: "\(path).emit.type", reader)
            checkValue(emit.data, at: "\(path).emit.data", reader)
        case .deliver(let deliver):
            if let type = deliver.type {
                text(type, "deliver.type")
                checkType(type, at: "\(path).deliver.type", reader)
            }
            if let data = deliver.data { checkValue(data, at: "\(path).deliver.data", reader) }
        }
    }

    /// A literal type (no `{{`) is checked now; a rendered one when the step runs, by the same rule.
    static func checkType(_ type: String, at path: String, _ reader: NodeReader) {
        guard !type.contains("{{"), let problem = EventLimits.typeProblem(type) else { return }
        reader.error(path, problem)
    }

    static func checkValue(_ value: TemplateValue, at path: String, _ reader: NodeReader) {
        switch value {
        case .string(let text): checkText(text, at: path, reader)
        case .array(let items): for (index, item) in items.enumerated() { checkValue(item, at: "\(path)[\(index)]", reader) }
        case .object(let object): for (key, item) in object.sorted(by: { $0.key < $1.key }) { checkValue(item, at: "\(path).\(key)", reader) }
        case .number, .bool, .null: break
        }
    }

    /// Parses `text` as a template; `file` names the template file when the text came from one.
    static func checkText(_ text: String, at path: String, file: String? = nil, _ reader: NodeReader) {
        guard text.contains("{{") else { return }
        if let problem = problem(text) {
            reader.error(path, file.map { "\($0): \(problem)" } ?? problem)
        }
    }

    /// What is wrong with a template, or nil when it parses.
    static func problem(_ text: String) -> String? {
        do {
            _ = try MustacheTemplate(string: text)
            return nil
        } catch let error as MustacheTemplate.ParserError {
            let context = error.context
            let line = text.split(separator: "\n", omittingEmptySubsequences: false).count > 1 ? " (line \(context.lineNumber))" : ""
            let what: String
            // The parser reports a tag that runs to the end of the text as an internal "overflow".
            let unfinished = "\(error.error)" == "overflow" || (error.error as? MustacheTemplate.Error) == .unfinishedName
            switch unfinished ? .unfinishedName : error.error as? MustacheTemplate.Error {
            case .unfinishedName?: what = unclosedTag(in: context.line).map { "unclosed tag '\($0)'" } ?? "a tag is not closed with }}"
            case .expectedSectionEnd?: what = "a section is not closed ({{#name}} needs {{/name}})"
            case .sectionCloseNameIncorrect?: what = "a section is closed with the wrong name ({{#a}} … {{/a}})"
            case .invalidSetDelimiter?: what = "malformed set-delimiter tag"
            default: what = "malformed template (\(error.error))"
            }
            return what + line
        } catch {
            return "malformed template (\(error))"
        }
    }

    /// The first `{{…` on the line with no `}}` after it, cut to 60 characters.
    private static func unclosedTag(in line: String) -> String? {
        var rest = Substring(line)
        while let open = rest.range(of: "{{") {
            let after = rest[open.upperBound...]
            guard let close = after.range(of: "}}") else { return String(rest[open.lowerBound...].prefix(60)) }
            rest = after[close.upperBound...]
        }
        return nil
    }
}
