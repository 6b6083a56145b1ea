import DoorbellCore

/// Everything `doorbell.yml` says, validated. Paths inside are already resolved against the
/// config file's folder.
public struct Configuration: Sendable {
    public var server: ServerSettings
    public var storage: StorageLocation
    public var api: APISettings
    public var sources: [Source]
    public var automations: [Automation]
    /// The default retry schedule (`retry:`).
    public var retry: RetryPolicy
    /// Where `file` steps write and `attach` reads (`files_dir`, default: `files/` in the config's
    /// folder); never a folder that holds the database or the config file.
    public var filesDirectory: String
    /// `worker:` — how many runs at once, and how long a claim lasts without renewal.
    public var worker: WorkerSettings
    /// `outbound:` — timeouts and the SSRF guard for every request Doorbell makes.
    public var outbound: OutboundSettings
    /// `endpoints:` — subscribers declared in the file (more may be added through the API).
    public var endpoints: [Endpoint]
    /// `smtp:` — the mail server `email` steps use unless they name their own.
    public var smtp: SMTPSettings?
    /// `retention:` — how long events, runs, attempts and dedupe keys are kept.
    public var retention: RetentionPolicy
    /// `dashboard:` — sign-in to the browser dashboard (a password hash besides the API tokens).
    public var dashboard = DashboardSettings()
    /// `pollers:` — scheduled pulls of APIs whose new or changed items become events.
    public var pollers: [Poller] = []
    /// The folder of the config file; relative paths resolve against it.
    public var directory: String
    /// Things that work but deserve attention (sections not yet implemented, odd secrets).
    public var warnings: [ConfigIssue]

    public init(
        server: ServerSettings = .init(), storage: StorageLocation, api: APISettings = .init(), sources: [Source],
        automations: [Automation] = [], retry: RetryPolicy = .default, filesDirectory: String? = nil,
        worker: WorkerSettings = .init(), smtp: SMTPSettings? = nil, outbound: OutboundSettings = .init(), endpoints: [Endpoint] = [],
        retention: RetentionPolicy = .default, directory: String, warnings: [ConfigIssue] = []
    ) {
        self.outbound = outbound
        self.endpoints = endpoints
        self.retention = retention
        self.worker = worker
        self.smtp = smtp
        self.server = server
        self.storage = storage
        self.api = api
        self.sources = sources
        self.automations = automations
        self.retry = retry
        self.filesDirectory = filesDirectory ?? (directory == "/" ? "" : directory) + "/files"
        self.directory = directory
        self.warnings = warnings
    }

    /// The source with this id, if configured.
    public func source(id: String) -> Source? {
        sources.first { $0.id == id }
    }
}

/// `server:` — where Doorbell listens and the URL providers call.
public struct ServerSettings: Sendable, Equatable {
    public var host: String
    public var port: Int
    /// The URL providers call, when Doorbell sits behind a proxy (Twilio signs it).
    public var publicURL: String?
    /// Reverse proxies whose `X-Forwarded-For` is believed; from anyone else it is ignored.
    public var trustedProxies: [String]
    /// From a request's first byte until its headers must be complete (`header_timeout`); a slow
    /// or stalled client (slowloris) is answered 408 and disconnected.
    public var headerTimeout: Duration
    /// From a request's headers until its body must be complete (`body_timeout`); a body that
    /// trickles or never ends is cut off.
    public var bodyTimeout: Duration
    /// How long a connection may wait for its next request (`idle_timeout`) before it is closed.
    public var idleTimeout: Duration
    /// Connections served at once (`max_connections`); more wait in the listen backlog until one
    /// closes. Nil: decided at start from the open-file limit (`ConnectionBudget`), so the cap
    /// applies before the process runs out of descriptors.
    public var maxConnections: Int?
    /// How long a graceful shutdown waits for open requests (`shutdown_grace`) before it closes
    /// their connections, so a client holding a request open cannot hold up SIGTERM.
    public var shutdownGrace: Duration

    public init(
        host: String = "127.0.0.1", port: Int = 8080, publicURL: String? = nil, trustedProxies: [String] = [],
        headerTimeout: Duration = .seconds(10), bodyTimeout: Duration = .seconds(60), idleTimeout: Duration = .seconds(60),
        maxConnections: Int? = nil, shutdownGrace: Duration = .seconds(10)
    ) {
        self.host = host
        self.port = port
        self.publicURL = publicURL
        self.trustedProxies = trustedProxies
        self.headerTimeout = headerTimeout
        self.bodyTimeout = bodyTimeout
        self.idleTimeout = idleTimeout
        self.maxConnections = maxConnections
        self.shutdownGrace = shutdownGrace
    }

    /// The base URL a local client (`doorbell trigger`) uses to reach this server.
    public var localBaseURL: String {
        let connectHost: String
        switch host {
        case "0.0.0.0", "": connectHost = "127.0.0.1"
        case "::": connectHost = "[::1]"
        default: connectHost = host.contains(":") ? "[\(host)]" : host
        }
        return "http://\(connectHost):\(port)"
    }
}

/// `api:` — bearer tokens for `/api` and the dashboard.
public struct APISettings: Sendable, Equatable {
    public var tokens: [String]
    public init(tokens: [String] = []) { self.tokens = tokens }
}

/// `worker:` — the run worker's concurrency and lease. A run whose worker stops renewing its lease
/// (a crash) is claimed again once the lease has passed.
public struct WorkerSettings: Sendable, Equatable {
    public var concurrency: Int
    public var lease: Double

    public init(concurrency: Int = 64, lease: Double = 60) {
        self.concurrency = concurrency
        self.lease = lease
    }
}
