/// `smtp:` settings (top level, or per step).
public struct SMTPSettings: Sendable, Equatable {
    public enum TLSMode: String, Sendable, CaseIterable {
        case none, starttls
        /// TLS from the first byte (port 465), `tls: tls` in the config.
        case implicit = "tls"
    }

    public var host: String
    public var port: Int
    public var username: String?
    public var password: String?
    public var from: String
    public var tls: TLSMode
    /// A PEM file of CAs to trust instead of the system's (a private mail relay, tests).
    public var caFile: String?
    public var timeout: Double
    public var heloName: String

    public init(host: String, port: Int = 587, username: String? = nil, password: String? = nil, from: String, tls: TLSMode = .starttls, caFile: String? = nil, timeout: Double = 30, heloName: String = "doorbell.localhost") {
        self.host = host
        self.port = port
        self.username = username
        self.password = password
        self.from = from
        self.tls = tls
        self.caFile = caFile
        self.timeout = timeout
        self.heloName = heloName
    }
}
