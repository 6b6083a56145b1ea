import ArgumentParser
import DoorbellServer
import DoorbellStorage
import Hummingbird

/// `doorbell serve`: runs the server until SIGTERM or SIGINT, then stops accepting, finishes
/// in-flight requests and commits, and exits 0.
struct ServeCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Run the Doorbell server."
    )

    @OptionGroup var options: ConfigOption

    @Option(help: "Log level: trace, debug, info, notice, warning, error or critical (default: $LOG_LEVEL or info).")
    var logLevel: String?

    @Option(help: "Log format: text, or json for one JSON object per line (default: $LOG_FORMAT or text).")
    var logFormat: LogFormat?

    func run() async throws {
        let configuration = try options.load()
        let logger = bootstrapLogging(level: logLevel, format: logFormat)
        for warning in configuration.warnings {
            logger.warning("config: \(warning)")
        }
        let store: any DoorbellStore
        do {
            store = try await StoreFactory.open(configuration.storage, logger: logger, access: .server)
        } catch {
            printError("doorbell: cannot open storage \(configuration.storage): \(error)")
            throw ExitCode(1)
        }
        let sourceCount = configuration.sources.count
        let app = try await DoorbellApplication.make(configuration: configuration, store: store, logger: logger, onServerRunning: { channel in
            let address = channel.localAddress.map { "\($0.ipAddress ?? "?"):\($0.port ?? 0)" } ?? "?"
            logger.notice("doorbell listening on \(address) with \(sourceCount) source(s)")
        })
        try await app.runService()
    }
}
