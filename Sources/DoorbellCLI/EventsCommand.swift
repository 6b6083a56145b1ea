import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation
import Logging

/// `doorbell events list|show`: reads the store named in the config.
struct EventsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "events",
        abstract: "List and inspect stored events.",
        subcommands: [List.self, Show.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List events, newest first.")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only events of this source.") var source: String?
        @Option(help: "Only events of this type.") var type: String?
        @Option(help: "At most this many events.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            let query = EventQuery(source: source, type: type, limit: max(1, limit))
            let events = try await store.events(matching: query)
            try await store.close()
            if json {
                printJSON(events.map { EventJSON($0, includeBody: false) })
                return
            }
            if events.isEmpty {
                print("no events")
                return
            }
            let formatter = ISO8601DateFormatter()
            print(["ID".padding(30), "SOURCE".padding(16), "TYPE".padding(34), "RECEIVED".padding(22), "PROVIDER ID"].joined(separator: " "))
            for stored in events {
                let event = stored.event
                print([event.id.padding(30), event.source.padding(16), event.type.padding(34), formatter.string(from: event.receivedAt).padding(22), event.providerID ?? "-"].joined(separator: " "))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one event with its headers and body.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The event id (evt_…).") var id: String
        @Flag(help: "Print JSON.") var json = false

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            let found = try await store.event(id: id)
            try await store.close()
            guard let stored = found else {
                printError("doorbell: no event with id '\(id)'")
                throw ExitCode(1)
            }
            if json {
                printJSON(EventJSON(stored, includeBody: true))
                return
            }
            let event = stored.event
            print("id:          \(event.id)")
            print("source:      \(event.source)")
            print("type:        \(event.type)")
            print("provider id: \(event.providerID ?? "-")")
            print("received at: \(ISO8601DateFormatter().string(from: event.receivedAt))")
            print("headers:")
            for header in event.headers { print("  \(header.name): \(header.value)") }
            print("body (\(event.body.count) bytes):")
            print(String(decoding: event.body, as: UTF8.self))
        }
    }
}

/// Opens the store a config names; exits 1 with the reason if it cannot. Commands that only look
/// open it `.readOnly`: nothing is created or migrated, and a schema newer or older than this build
/// is named as such.
func openStore(_ configuration: Configuration, access: StoreAccess = .readWrite) async throws -> any DoorbellStore {
    var logger = Logger(label: "doorbell")
    logger.logLevel = .error
    do {
        return try await StoreFactory.open(configuration.storage, logger: logger, access: access)
    } catch {
        printError("doorbell: cannot open storage \(configuration.storage): \(error)")
        throw ExitCode(1)
    }
}

/// The JSON shape of an event in CLI output (and, later, the API).
struct EventJSON: Encodable {
    let id: String
    let source: String
    let type: String
    let providerID: String?
    let receivedAt: String
    let headers: [String: String]?
    /// The body as text (UTF-8); `bodyBase64` instead when it is not valid UTF-8.
    let body: String?
    let bodyBase64: String?

    enum CodingKeys: String, CodingKey {
        case id, source, type, headers, body
        case providerID = "provider_id", receivedAt = "received_at", bodyBase64 = "body_base64"
    }

    init(_ stored: StoredEvent, includeBody: Bool) {
        let event = stored.event
        id = event.id
        source = event.source
        type = event.type
        providerID = event.providerID
        receivedAt = ISO8601DateFormatter().string(from: event.receivedAt)
        if includeBody {
            headers = Dictionary(event.headers.map { ($0.name, $0.value) }, uniquingKeysWith: { first, second in "\(first), \(second)" })
            if let text = String(validating: event.body, as: UTF8.self) {
                body = text
                bodyBase64 = nil
            } else {
                body = nil
                bodyBase64 = Data(event.body).base64EncodedString()
            }
        } else {
            headers = nil
            body = nil
            bodyBase64 = nil
        }
    }
}

func printJSON(_ value: some Encodable) {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
    if let data = try? encoder.encode(value) { Swift.print(String(decoding: data, as: UTF8.self)) }
}

extension String {
    func padding(_ width: Int) -> String {
        count >= width ? self : self + String(repeating: " ", count: width - count)
    }
}
