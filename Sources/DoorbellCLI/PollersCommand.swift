import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellServer
import DoorbellStorage
import Foundation
import Logging

/// `doorbell pollers list|run|reset`: the pollers in the config with their stored state.
struct PollersCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "pollers",
        abstract: "List pollers, poll one now (or a dry run), or reset one's memory.",
        subcommands: [List.self, Run.self, Reset.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List pollers: schedule, last poll and success, last error, items seen, next poll.")

        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let configuration = try options.load()
            let store = try await openStore(configuration, access: .readOnly)
            let states = Dictionary(try await store.pollerStates().map { ($0.poller, $0) }, uniquingKeysWith: { first, _ in first })
            try await store.close()
            let rows = configuration.pollers.map { PollerStatus($0, state: states[$0.id]) }
            if json {
                printJSON(rows)
                return
            }
            if rows.isEmpty {
                print("no pollers in the config")
                return
            }
            print(["ID".padding(20), "SCHEDULE".padding(28), "LAST SUCCESS".padding(25), "NEXT POLL".padding(25), "ITEMS".padding(8), "STATUS"].joined(separator: " "))
            for row in rows {
                let status = row.failing ? "failing: \(row.lastError ?? "")" : (row.lastError.map { "last poll failed: \($0)" } ?? "ok")
                print([row.id.padding(20), row.schedule.padding(28), (row.lastSuccessAt ?? "-").padding(25), (row.nextPollAt ?? "-").padding(25), String(row.itemsSeen).padding(8), status].joined(separator: " "))
            }
        }
    }

    struct Run: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Poll now. With --dry-run, print what it would emit and commit nothing.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The poller's id.") var id: String
        @Flag(help: "Fetch and compare, print what would be emitted, store nothing.") var dryRun = false
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let configuration = try options.load()
            guard let poller = configuration.pollers.first(where: { $0.id == id }) else {
                printError("doorbell: no poller '\(id)' in \(options.config)")
                throw ExitCode(1)
            }
            let store = try await openStore(configuration, access: .readWrite)
            var logger = Logger(label: "doorbell")
            logger.logLevel = .error
            let report: PollRunResponse
            do {
                report = try await PollerService.pollOnce(poller, configuration: configuration, store: store, dryRun: dryRun, logger: logger)
            } catch {
                try? await store.close()
                printError("doorbell: poll of '\(id)' failed: \(error)")
                throw ExitCode(1)
            }
            try await store.close()
            if json {
                printJSON(report)
                return
            }
            let verb = dryRun ? "would emit" : "emitted"
            var summary = "\(id): \(report.pages) page(s), \(report.items) item(s), \(report.newItems) new, \(report.changedItems) changed"
            if report.notModified { summary = "\(id): not modified (304)" }
            if report.firstRun { summary += " (first run)" }
            print(summary)
            print("\(verb) \(report.emitted.count) event(s)")
            for item in report.emitted {
                print("  \(item.type.padding(24)) \(item.providerID)\(item.duplicate ? " (duplicate of \(item.eventID))" : "")")
            }
            if !dryRun && !report.committed { print("not committed: another poll or a reset committed first") }
        }
    }

    struct Reset: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Forget a poller's state (seen items, cursor, ETag): its next poll follows first_run.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The poller's id.") var id: String

        func run() async throws {
            let configuration = try options.load()
            guard configuration.pollers.contains(where: { $0.id == id }) else {
                printError("doorbell: no poller '\(id)' in \(options.config)")
                throw ExitCode(1)
            }
            let store = try await openStore(configuration, access: .readWrite)
            try await store.resetPoller(id)
            try await store.close()
            print("\(id): reset; its next poll follows first_run")
        }
    }
}
