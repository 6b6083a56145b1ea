import Logging

/// swift-log's text format (`StreamLogHandler`), with the logger's metadata kept as a dictionary
/// until a line is written. `StreamLogHandler` formats its metadata each time it is set, and
/// Hummingbird sets a request id on every request's logger: that formatting was ~2 % of ingest CPU
/// though nothing is logged for a request at the default level. The line is `StreamLogHandler`'s own.
struct TextLogHandler: LogHandler {
    private var stream: StreamLogHandler
    var metadata: Logger.Metadata = [:]

    init(_ stream: StreamLogHandler) {
        self.stream = stream
    }

    var logLevel: Logger.Level {
        get { stream.logLevel }
        set { stream.logLevel = newValue }
    }

    var metadataProvider: Logger.MetadataProvider? {
        get { stream.metadataProvider }
        set { stream.metadataProvider = newValue }
    }

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    func log(event: LogEvent) {
        var handler = stream
        if !metadata.isEmpty { handler.metadata = metadata }
        handler.log(event: event)
    }
}
