import ArgumentParser
import DoorbellConfig
import DoorbellCore

/// `doorbell check`: validates the config; lists every error and exits 1, or prints a summary.
struct CheckCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "check",
        abstract: "Validate a configuration file and summarise it."
    )

    @OptionGroup var options: ConfigOption

    func run() async throws {
        let configuration = try options.load()
        for warning in configuration.warnings {
            print("warning: \(warning)")
        }
        print("\(options.config): OK")
        print("  listen:  \(configuration.server.host):\(configuration.server.port)")
        print("  storage: \(configuration.storage)")
        print("  sources: \(configuration.sources.count)")
        for source in configuration.sources {
            let secrets = source.provider == .none ? "no signature" : "\(source.secrets.count) secret(s)"
            print("    /hooks/\(source.id)  \(source.provider.rawValue), \(secrets), max body \(source.maxBody) B")
        }
        print("  automations: \(configuration.automations.count)")
        for automation in configuration.automations {
            let steps = automation.steps.map { "\($0.id) (\($0.action.kind))" }.joined(separator: " → ")
            print("    \(automation.id)  on \(automation.on.map(\.description).joined(separator: ", ")): \(steps)")
        }
        print("  endpoints: \(configuration.endpoints.count) in the file (more may be added with the API or `doorbell endpoints add`)")
        for endpoint in configuration.endpoints {
            let secret = endpoint.secrets.isEmpty ? "secret generated on first start" : "\(endpoint.secrets.count) secret(s)"
            print("    \(endpoint.id)  \(RedactedURL(endpoint.url))  events \(endpoint.events.joined(separator: ",")), \(secret)\(endpoint.enabled ? "" : ", disabled")")
        }
        if !configuration.pollers.isEmpty {
            print("  pollers: \(configuration.pollers.count)")
            for poller in configuration.pollers {
                print("    \(poller.id)  \(poller.schedule)  \(RedactedURL(poller.request.url))  emits \(poller.emit)\(poller.emitChanged.map { ", " + $0 } ?? "")")
            }
        }
        let allowed = configuration.outbound.addressPolicy.allowPrivate
        print("  outbound: timeout \(configuration.outbound.timeout) s, private addresses \(allowed.isEmpty ? "refused" : "allowed in " + allowed.map(\.description).joined(separator: ", "))")
        print("  retention: \(describe(configuration.retention))")
        if let database = await databaseSummary(configuration) { print("  database: \(database)") }
    }
}
