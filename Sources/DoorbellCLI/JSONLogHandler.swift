import ArgumentParser
import DoorbellCore
import Foundation
import Logging
import Synchronization

/// How log lines look: `text` for people (swift-log's stream format), `json` for log shippers.
enum LogFormat: String, CaseIterable, ExpressibleByArgument, Sendable {
    case text, json
}

/// One JSON object per line on standard error, for log shippers (Loki, Vector, Elasticsearch…):
/// `{"time":"2026-12-05T03:00:00.123Z","level":"warning","label":"doorbell","message":"…","source":"DoorbellServer","metadata":{"run":"run_…"}}`.
/// `metadata` holds the logger's and the line's metadata (strings, lists, objects); every string is
/// JSON-escaped, so a hostile value (a CR/LF, a quote) stays inside its line.
struct JSONLogHandler: LogHandler {
    let label: String
    var logLevel: Logger.Level = .info
    var metadata: Logger.Metadata = [:]
    var metadataProvider: Logger.MetadataProvider?

    /// Lines from all threads go out whole, one after another.
    private static let output = Mutex(())

    init(label: String, metadataProvider: Logger.MetadataProvider? = nil) {
        self.label = label
        self.metadataProvider = metadataProvider
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        let line = Self.line(time: Date(), level: event.level, label: label, message: event.message.description, source: event.source,
                             metadata: self.metadata.merging(metadataProvider?.get() ?? [:]) { $1 }.merging(event.metadata ?? [:]) { $1 })
        let data = Data(line.utf8)
        Self.output.withLock { _ in FileHandle.standardError.write(data) }
    }

    /// The line for one log event, ending in a newline.
    static func line(time: Date, level: Logger.Level, label: String, message: String, source: String, metadata: Logger.Metadata) -> String {
        var line = #"{"time":"# + quoted(Timestamp.iso8601(time)) + #","level":"# + quoted(level.rawValue) + #","label":"# + quoted(label)
        line += #","message":"# + quoted(message) + #","source":"# + quoted(source)
        if !metadata.isEmpty {
            line += #","metadata":{"# + metadata.keys.sorted().map { quoted($0) + ":" + json(metadata[$0]!) }.joined(separator: ",") + "}"
        }
        return line + "}\n"
    }

    private static func json(_ value: Logger.Metadata.Value) -> String {
        switch value {
        case .string(let text): quoted(text)
        case .stringConvertible(let convertible): quoted(convertible.description)
        case .array(let items): "[" + items.map(json).joined(separator: ",") + "]"
        case .dictionary(let object): "{" + object.keys.sorted().map { quoted($0) + ":" + json(object[$0]!) }.joined(separator: ",") + "}"
        }
    }

    /// `text` as a JSON string literal.
    static func quoted(_ text: String) -> String {
        (try? JSONText.string(text)) ?? "\"\""
    }
}
