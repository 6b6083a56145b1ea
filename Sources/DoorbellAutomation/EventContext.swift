import DoorbellCore
import Foundation
import Logging

/// What templates and `if` conditions see: `event` (id, type, source, received_at), `body` (parsed
/// JSON, or form fields), `headers` (lower-case names) and `steps.<id>` (earlier outputs).
public enum EventContext {
    /// With `lazyBody`, `body` is an `EventBody`, parsed when a template first reads it: for the
    /// worker's runs, whose reads all resolve it (`RenderBudget.wrap`, `ExecRunner`). Conditions
    /// and concurrency keys (`AutomationMatcher`) get the parsed value.
    public static func make(_ event: NewEvent, steps: [String: Any] = [:], lazyBody: Bool = false) -> [String: Any] {
        var headers: [String: Any] = [:]
        for header in event.headers where headers[header.name] == nil { headers[header.name] = header.value }
        return [
            "event": [
                "id": event.id, "type": event.type, "source": event.source,
                "received_at": Timestamp.iso8601(event.receivedAt),
            ] as [String: Any],
            "body": lazyBody ? EventBody(event) : parseBody(event),
            "headers": headers,
            "steps": steps,
        ]
    }

    /// JSON bodies parse to their value; form posts to their fields; anything else is the text.
    static func parseBody(_ event: NewEvent) -> Any {
        let contentType = event.headers.first { $0.name == "content-type" }?.value.lowercased() ?? ""
        if contentType.hasPrefix("application/x-www-form-urlencoded") {
            var fields: [String: Any] = [:]
            for (name, value) in FormFields.pairs(event.body) where fields[name] == nil { fields[name] = value }
            return fields
        }
        if let value = try? JSONSerialization.jsonObject(with: Data(event.body), options: [.fragmentsAllowed]) {
            return value
        }
        return String(decoding: event.body, as: UTF8.self)
    }
}

/// A run's event body in its template context, parsed (`EventContext.parseBody`) the first time
/// it is read: a run whose templates read only `event.*` or earlier steps' outputs never parses it
/// (parsing each run's body into Foundation values was ~3 % of the end-to-end benchmark's CPU).
/// Whatever reads the context resolves it to `value` first; it describes itself as the parsed value does.
final class EventBody: @unchecked Sendable, CustomStringConvertible, CustomDebugStringConvertible {
    private let event: NewEvent
    /// Guards `parsed` (a run's steps render one after another; the lock makes a stray concurrent read safe).
    private let lock = NSLock()
    private var parsed: Any?

    init(_ event: NewEvent) {
        self.event = event
    }

    /// The body as `EventContext.parseBody` gives it, parsed on the first read.
    var value: Any {
        lock.withLock {
            if let parsed { return parsed }
            let value = EventContext.parseBody(event)
            parsed = value
            return value
        }
    }

    /// `value` as a `T`, or the body it stands for as one. `T` is tried first: casting a Swift string
    /// or dictionary to a class (`EventBody`) makes Foundation bridge it to Objective-C just to say no.
    static func read<T>(_ value: Any, as type: T.Type) -> T? {
        if let typed = value as? T { return typed }
        return (value as? EventBody)?.value as? T
    }

    /// Whether a read has parsed it yet.
    var isParsed: Bool { lock.withLock { parsed != nil } }

    var description: String { String(describing: value) }
    var debugDescription: String { String(reflecting: value) }
}

/// Decides which automations an event starts: `on` patterns, then the `if` condition.
public struct AutomationMatcher: Sendable {
    public let automations: [Automation]
    /// Where an automation skipped for an undecidable condition is reported.
    let logger: Logger

    public init(automations: [Automation], logger: Logger = Logger(label: "doorbell.automation")) {
        self.automations = automations
        self.logger = logger
    }

    public func matching(_ event: NewEvent) -> [PlannedRun] {
        let candidates = automations.filter { $0.listens(source: event.source, type: event.type) }
        guard !candidates.isEmpty else { return [] }
        // The body is parsed only when some automation listens and needs it.
        var parsed: [String: Any]?
        func context() -> [String: Any] {
            if parsed == nil { parsed = EventContext.make(event) }
            return parsed!
        }
        // One regex budget for the whole event: many conditions cannot add up to a long stall.
        let budget = RegexBudget()
        return candidates.compactMap { automation in
            if let condition = automation.condition {
                switch condition.decide(context(), budget: budget) {
                case .holds: break
                case .doesNotHold: return nil
                case .unknown(let path):
                    // Fail closed: a regex that could not read all of a value (too long, or out of
                    // time) must not let an allow-list pass or a block-list miss. The value is hostile
                    // and may be large, so only its path is logged.
                    logger.warning("automation skipped: its if could not be evaluated", metadata: [
                        "automation": "\(automation.id)", "path": "\(path)", "event": "\(event.id)", "source": "\(event.source)",
                    ])
                    return nil
                }
            }
            guard let rule = automation.concurrency else { return PlannedRun(automation: automation.id) }
            // A key that does not render (a template error) still orders: all such runs share "".
            let key = (try? Templates.render(rule.key, context())) ?? ""
            return PlannedRun(automation: automation.id, concurrencyKey: key, concurrencyLimit: rule.limit)
        }
    }
}
