import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellStorage
import Foundation

/// `doorbell deliveries list|show|retry`: outbound webhooks and their attempts.
struct DeliveriesCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "deliveries",
        abstract: "List, inspect and retry deliveries to endpoints.",
        subcommands: [List.self, Show.self, Retry.self]
    )

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List deliveries, newest first.")

        @OptionGroup var options: ConfigOption
        @Option(help: "Only deliveries to this endpoint.") var endpoint: String?
        @Option(help: "Only deliveries of this event.") var event: String?
        @Option(help: "Only this status: pending, running, waiting_retry, succeeded, dead, paused.") var status: RunStatus?
        @Option(help: "At most this many.") var limit: Int = 50
        @Flag(help: "Print JSON instead of a table.") var json = false

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            let runs = try await store.runs(matching: RunQuery(eventID: event, statuses: status.map { [$0] } ?? [], endpoint: endpoint, deliveries: true, limit: max(1, limit)))
            try await store.close()
            if json {
                printJSON(runs.map(RunJSON.init))
                return
            }
            if runs.isEmpty {
                print("no deliveries")
                return
            }
            print(["DELIVERY".padding(30), "EVENT".padding(30), "ENDPOINT".padding(16), "STATUS".padding(14), "FAILS", "ERROR"].joined(separator: " "))
            for run in runs {
                print([run.id.padding(30), run.eventID.padding(30), (run.endpoint ?? "").padding(16), run.status.rawValue.padding(14), String(run.attempt).padding(5), String((run.lastError ?? "").prefix(60))].joined(separator: " "))
            }
        }
    }

    struct Show: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Show one delivery with every attempt.")

        @OptionGroup var options: ConfigOption
        @Argument(help: "The delivery id (dlv_…).") var id: String

        func run() async throws {
            let store = try await openStore(try options.load(), access: .readOnly)
            guard let run = try await store.run(id: id), run.endpoint != nil else {
                try await store.close()
                printError("doorbell: no delivery with id '\(id)'")
                throw ExitCode(1)
            }
            let attempts = try await store.attempts(runID: id)
            try await store.close()
            print("delivery  \(run.id)\nevent     \(run.eventID) (webhook-id)\nendpoint  \(run.endpoint ?? "")\nstatus    \(run.status.rawValue)")
            if let error = run.lastError { print("error     \(error)") }
            if run.status == .waitingRetry { print("next try  \(ISO8601DateFormatter().string(from: run.dueAt))") }
            for attempt in attempts {
                let status = attempt.status.map(String.init) ?? "-"
                print("  #\(attempt.number) \(ISO8601DateFormatter().string(from: attempt.startedAt)) status \(status) \(attempt.latencyMillis) ms \(attempt.error ?? "")")
                if let response = attempt.response, !response.isEmpty { print("     response: \(response.prefix(200))") }
            }
        }
    }

    struct Retry: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            abstract: "Send deliveries again: one by id, or every dead (or --status) one of an endpoint or time range.",
            discussion: "The same webhook-id goes out again, so receivers can tell a retry. A running server picks them up within seconds."
        )

        @OptionGroup var options: ConfigOption
        @Argument(help: "The delivery id (dlv_…); leave out to select by filter.") var id: String?
        @Option(help: "Only deliveries to this endpoint.") var endpoint: String?
        @Option(help: "Only these statuses (default: dead).") var status: [RunStatus] = []
        @Option(help: "Only events received at or after this ISO 8601 time.") var since: String?
        @Option(help: "Only events received before this ISO 8601 time.") var until: String?

        func run() async throws {
            guard id != nil || endpoint != nil || !status.isEmpty || since != nil || until != nil else {
                printError("doorbell: name a delivery, or filter with --endpoint, --status, --since or --until")
                throw ExitCode(1)
            }
            let store = try await openStore(try options.load())
            var query = RunQuery(statuses: status.isEmpty ? [.dead] : status, since: try parseTime(since, "since"), until: try parseTime(until, "until"), endpoint: endpoint, deliveries: true, limit: Int.max)
            if let id {
                guard let run = try await store.run(id: id), run.endpoint != nil else {
                    try await store.close()
                    printError("doorbell: no delivery with id '\(id)'")
                    throw ExitCode(1)
                }
                query = .only(run)
            }
            let count = try await store.replay(matching: query, fromStart: true, now: Date())
            try await store.close()
            print("queued \(count) deliver\(count == 1 ? "y" : "ies") again")
        }
    }
}

/// `doorbell endpoints list|add|rotate-secret|enable|disable`.
struct EndpointsCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "endpoints",
        abstract: "Manage subscriber endpoints (those in doorbell.yml and those added here or through the API).",
        discussion: "Changes reach a running server within seconds.",
        subcommands: [List.self, Add.self, RotateSecret.self, Enable.self, Disable.self]
    )

    /// Opens the store with the file's endpoints brought up to date, as `serve` does.
    static func open(_ options: ConfigOption) async throws -> (any DoorbellStore, Configuration) {
        let configuration = try options.load()
        let store = try await openStore(configuration)
        try await store.syncConfigured(configuration.endpoints, overlap: configuration.outbound.rotationOverlap, now: Date())
        return (store, configuration)
    }

    struct List: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "List endpoints.")
        @OptionGroup var options: ConfigOption
        @Flag(help: "Print JSON instead of a table.") var json = false

        /// Read-only: the stored endpoints as the server will see them after its next start (those
        /// taken out of the file left out, those new in the file shown), without writing that sync.
        func run() async throws {
            let configuration = try options.load()
            let store = try await openStore(configuration, access: .readOnly)
            let stored = try await store.endpoints()
            try await store.close()
            let declared = Set(configuration.endpoints.map(\.id))
            let endpoints = (stored.filter { !$0.fromConfig || declared.contains($0.id) }
                + configuration.endpoints.filter { endpoint in !stored.contains { $0.id == endpoint.id } }).sorted { $0.id < $1.id }
            if json {
                printJSON(endpoints.map { EndpointJSON($0, now: Date()) })
                return
            }
            if endpoints.isEmpty {
                print("no endpoints")
                return
            }
            print(["ID".padding(16), "STATE".padding(9), "EVENTS".padding(20), "RATE".padding(8), "SECRETS", "URL"].joined(separator: " "))
            for endpoint in endpoints {
                let state = endpoint.enabled ? "enabled" : "disabled"
                print([endpoint.id.padding(16), state.padding(9), endpoint.events.joined(separator: ",").padding(20), (endpoint.rateLimit?.description ?? "-").padding(8), String(endpoint.signingSecrets(now: Date()).count).padding(7), RedactedURL(endpoint.url).description].joined(separator: " "))
                if let reason = endpoint.disabledReason { print("  disabled: \(reason)") }
            }
        }
    }

    struct Add: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Add an endpoint; prints its signing secret.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The endpoint id.") var id: String
        @Argument(help: "Its URL.") var url: String
        @Option(help: "Event-type patterns it receives (repeatable; default *).") var events: [String] = []
        @Option(help: "A whsec_ or whsk_ secret (default: a new whsec_).") var secret: String?
        @Option(help: "At most this many deliveries per time, e.g. 10/s or 600/m.") var rateLimit: String?

        func run() async throws {
            let (store, _) = try await EndpointsCommand.open(options)
            defer { Task { try? await store.close() } }
            var endpoint = Endpoint(id: id, url: url, events: events.isEmpty ? ["*"] : events, secrets: [secret.map { EndpointSecret(secret: $0) } ?? .generate()])
            if let rateLimit {
                guard let limit = RateLimit(rateLimit) else {
                    printError("doorbell: --rate-limit '\(rateLimit)' should look like 10/s, 600/m or 5000/h")
                    throw ExitCode(1)
                }
                endpoint.rateLimit = limit
            }
            if let problem = endpoint.problems().first {
                printError("doorbell: \(problem.field): \(problem.message)")
                throw ExitCode(1)
            }
            if try await store.endpoint(id: id) != nil {
                printError("doorbell: endpoint '\(id)' exists")
                throw ExitCode(1)
            }
            try await store.saveEndpoint(endpoint, now: Date())
            print("added \(id)\nsecret \(endpoint.secrets[0].secret)")
        }
    }

    struct RotateSecret: AsyncParsableCommand {
        static let configuration = CommandConfiguration(
            commandName: "rotate-secret",
            abstract: "Give an endpoint a new secret; the old one keeps signing alongside it for the overlap."
        )
        @OptionGroup var options: ConfigOption
        @Argument(help: "The endpoint id.") var id: String
        @Option(help: "How long the old secret keeps signing (default: outbound.rotation_overlap, 24h).") var overlap: String?
        @Option(help: "The new whsec_ or whsk_ secret (default: a new whsec_).") var secret: String?

        func run() async throws {
            let (store, configuration) = try await EndpointsCommand.open(options)
            defer { Task { try? await store.close() } }
            if let endpoint = configuration.endpoints.first(where: { $0.id == id }), !endpoint.secrets.isEmpty {
                printError("doorbell: endpoint '\(id)' takes its secret from \(options.config); change it there (the old one keeps signing for the overlap)")
                throw ExitCode(1)
            }
            let new = secret.map { EndpointSecret(secret: $0) } ?? .generate()
            guard EndpointSecret.looksValid(new.secret) else {
                printError("doorbell: --secret should be whsec_<base64 of 24–64 bytes> or whsk_<base64 Ed25519 key>")
                throw ExitCode(1)
            }
            var seconds = configuration.outbound.rotationOverlap
            if let overlap {
                guard let parsed = Units.parseDuration(overlap) else {
                    printError("doorbell: --overlap '\(overlap)' is not a duration such as 24h")
                    throw ExitCode(1)
                }
                seconds = parsed
            }
            guard try await store.rotateSecret(endpointID: id, to: new, overlap: seconds, now: Date()) != nil else {
                printError("doorbell: no endpoint '\(id)'")
                throw ExitCode(1)
            }
            print("secret \(new.secret)")
        }
    }

    struct Enable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Enable an endpoint; deliveries that waited are sent.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The endpoint id.") var id: String

        func run() async throws { try await EndpointsCommand.set(options, id, enabled: true) }
    }

    struct Disable: AsyncParsableCommand {
        static let configuration = CommandConfiguration(abstract: "Disable an endpoint; its deliveries wait (paused) until it is enabled.")
        @OptionGroup var options: ConfigOption
        @Argument(help: "The endpoint id.") var id: String

        func run() async throws { try await EndpointsCommand.set(options, id, enabled: false) }
    }

    static func set(_ options: ConfigOption, _ id: String, enabled: Bool) async throws {
        let (store, _) = try await open(options)
        let found = try await store.setEndpoint(id: id, enabled: enabled, reason: enabled ? nil : "disabled with doorbell endpoints disable", now: Date())
        try await store.close()
        guard found else {
            printError("doorbell: no endpoint '\(id)'")
            throw ExitCode(1)
        }
        print("\(id) \(enabled ? "enabled" : "disabled")")
    }
}
