import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging

/// `doorbell runs list|show`: what automations did with each event.
struct RunsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "runs",
        abstract: "List and inspect automation runs.",
        subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List runs, newest first.")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only runs of this event.") var event: String?
        @Option(help: "Only runs of this automation.") var automation: String?
        @Option(help: "Only runs with this status: pending, running, waiting_retry, succeeded, dead.") var status: RunStatus?
        @Option(help: "At most this many runs.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            let runs = try await store.runs(matching: RunQuery(eventID: event, automation: automation, statuses: status.map { [$0] } ?? [], deliveries: false, limit: max(1, limit)))
            try await store.close()
            if json {
                printJSON(runs.map(RunJSON.init))
                return
            }
            if runs.isEmpty {
                print("no runs")
                return
            }
            print(["RUN".padding(30), "EVENT".padding(30), "AUTOMATION".padding(24), "STATUS".padding(14), "STEP", "ERROR"].joined(separator: " "))
            for run in runs {
                print([run.id.padding(30), run.eventID.padding(30), run.automation.padding(24), run.status.rawValue.padding(14), String(run.nextStep).padding(4), String((run.lastError ?? "").prefix(60))].joined(separator: " "))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one run with each completed step's output.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The run id (run_…).") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            guard let run = try await store.run(id: id) else {
                try await store.close()
                printError("doorbell: no run with id '\(id)'")
                throw ExitCode(1)
            }
            let outputs = try await store.stepOutputs(runID: id)
            try await store.close()
            if json {
                var value = RunJSON(run)
                value.steps = outputs.mapValues { (try? JSONSerialization.jsonObject(with: Data($0.utf8))).map(AnyJSON.init) ?? AnyJSON($0) }
                printJSON(value)
                return
            }
            print("run:        \(run.id)")
            print("event:      \(run.eventID)")
            print("automation: \(run.automation)")
            print("status:     \(run.status.rawValue) (next step \(run.nextStep), attempt \(run.attempt))")
            if let error = run.lastError { print("last error: \(error)") }
            for (step, output) in outputs.sorted(by: { $0.key < $1.key }) {
                print("step \(step): \(output.prefix(500))")
            }
        }
    }
}

/// `doorbell replay`: runs automations again — one event's, or many by filter.
struct ReplayCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "replay",
        abstract: "Run automations again for an event, or for many events by filter.",
        discussion: """
            Dead runs resume at the step that failed; --from-start runs every step again.
            Examples: doorbell replay evt_…; doorbell replay evt_… --automation invoice-on-payment;
            doorbell replay --source stripe --status dead --since 2026-11-01T00:00:00Z
            A running server picks replayed runs up within seconds.
            """
    )

    @OptionGroup var options: ConfigOption
    @Argument(help: "The event to replay (evt_…); leave out to select by filter.") var event: String?
    @Option(help: "Only this automation; for one event, starts it even if it never ran for the event.") var automation: String?
    @Option(help: "Only events of this source.") var source: String?
    @Option(help: "Only events of this type.") var type: String?
    @Option(help: "Only runs with this status (default: dead; with --from-start also succeeded).") var status: [RunStatus] = []
    @Option(help: "Only events received at or after this ISO 8601 time.") var since: String?
    @Option(help: "Only events received before this ISO 8601 time.") var until: String?
    @Flag(help: "Start again at the first step instead of the failed one.") var fromStart = false

    func run() async throws {
        guard event != nil || source != nil || type != nil || automation != nil || !status.isEmpty || since != nil || until != nil else {
            printError("doorbell: name an event, or filter with --source, --type, --automation, --status, --since or --until")
            throw ExitCode(1)
        }
        let configuration = try options.load()
        if let automation, !configuration.automations.contains(where: { $0.id == automation }) {
            printError("doorbell: no automation '\(automation)' in \(options.config)")
            throw ExitCode(1)
        }
        let store = try await openStore(configuration)
        var started = false
        if let event, let automation {
            started = try await store.startRun(eventID: event, automation: automation, now: Date())
        }
        let query = RunQuery(eventID: event, automation: automation, source: source, type: type, statuses: status, since: try parseTime(since, "since"), until: try parseTime(until, "until"), deliveries: false, limit: Int.max)
        let count = try await store.replay(matching: query, fromStart: fromStart, now: Date())
        try await store.close()
        print("replayed \(count + (started ? 1 : 0)) run(s)")
    }
}

extension RunStatus: ExpressibleByArgument {}

/// An ISO 8601 option value, or exit 1 naming the option.
func parseTime(_ text: String?, _ name: String) throws -> Date? {
    guard let text else { return nil }
    guard let date = Timestamp.parse(text) else {
        printError("doorbell: --\(name) '\(text)' is not an ISO 8601 time such as 2026-11-01T00:00:00Z")
        throw ExitCode(1)
    }
    return date
}


/// The JSON shape of a run in CLI output.
struct RunJSON: Encodable {
    let id: String
    let eventID: String
    let automation: String
    let status: String
    let nextStep: Int
    let attempt: Int
    let dueAt: String
    let lastError: String?
    var steps: [String: AnyJSON]?

    enum CodingKeys: String, CodingKey {
        case id, automation, status, attempt, steps
        case eventID = "event_id", nextStep = "next_step", dueAt = "due_at", lastError = "last_error"
    }

    init(_ run: RunRecord) {
        id = run.id
        eventID = run.eventID
        automation = run.automation
        status = run.status.rawValue
        nextStep = run.nextStep
        attempt = run.attempt
        dueAt = ISO8601DateFormatter().string(from: run.dueAt)
        lastError = run.lastError
    }
}

/// Any JSON value from JSONSerialization, re-encodable.
struct AnyJSON: Encodable {
    let value: Any
    init(_ value: Any) { self.value = value }

    func encode(to encoder: any Encoder) throws {
        var container = encoder.singleValueContainer()
        switch value {
        case let dictionary as [String: Any]: try container.encode(dictionary.mapValues(AnyJSON.init))
        case let array as [Any]: try container.encode(array.map(AnyJSON.init))
        case let text as String: try container.encode(text)
        case let number as NSNumber where type(of: number) == type(of: NSNumber(value: true)): try container.encode(number.boolValue)
        case let number as NSNumber: try container.encode(number.doubleValue)
        case is NSNull: try container.encodeNil()
        default: try container.encode("\(value)")
        }
    }
}
