import ArgumentParser
import DoorbellConfig
import Foundation
import Logging

/// `doorbell`: the root command.
public struct DoorbellCommand: AsyncParsableCommand {
    public static let configuration = CommandConfiguration(
        commandName: "doorbell",
        abstract: "A self-hosted webhook hub: receive and verify webhooks, run automations, deliver signed webhooks.",
        discussion: """
            Start with `doorbell check` on your doorbell.yml, then `doorbell serve`.
            `doorbell trigger --list` shows sample events you can send to a running server.
            """,
        subcommands: [ServeCommand.self, CheckCommand.self, EventsCommand.self, RunsCommand.self, ReplayCommand.self, DeliveriesCommand.self, EndpointsCommand.self, PruneCommand.self, BackupCommand.self, TriggerCommand.self, SignCommand.self, VerifyCommand.self, HashPasswordCommand.self, PollersCommand.self]
    )

    public init() {}
}

/// `--config` and loading, shared by every command that reads `doorbell.yml`.
struct ConfigOption: ParsableArguments {
    @Option(name: [.short, .long], help: "The configuration file.")
    var config: String = "doorbell.yml"

    /// Loads the config or exits 1 after printing every error.
    func load() throws -> Configuration {
        do {
            return try ConfigLoader.load(path: config)
        } catch let error as ConfigError {
            printError(error.description)
            throw ExitCode(1)
        }
    }
}

func printError(_ text: String) {
    FileHandle.standardError.write(Data((text + "\n").utf8))
}

/// Logs go to standard error; `LOG_LEVEL` (trace…critical) or `--log-level` sets the level,
/// `LOG_FORMAT` (text, json) or `--log-format` the format: `json` writes one object per line.
func bootstrapLogging(level: String?, format: LogFormat? = nil) -> Logger {
    let chosen = level ?? ProcessInfo.processInfo.environment["LOG_LEVEL"]
    let logLevel = chosen.flatMap { Logger.Level(rawValue: $0.lowercased()) } ?? .info
    let format = format ?? ProcessInfo.processInfo.environment["LOG_FORMAT"].flatMap { LogFormat(rawValue: $0.lowercased()) } ?? .text
    LoggingSystem.bootstrap { label in
        if format == .json {
            var handler = JSONLogHandler(label: label)
            handler.logLevel = logLevel
            return handler
        }
        var handler = TextLogHandler(StreamLogHandler.standardError(label: label))
        handler.logLevel = logLevel
        return handler
    }
    var logger = Logger(label: "doorbell")
    logger.logLevel = logLevel
    return logger
}
