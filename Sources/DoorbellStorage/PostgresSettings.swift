import DoorbellCore
import NIOSSL
import PostgresNIO

extension PostgresSettings {
    /// The client's configuration: `poolSize` query connections plus the listener's.
    func clientConfiguration() -> PostgresClient.Configuration {
        let tls: PostgresClient.Configuration.TLS
        switch sslMode {
        case .disable:
            tls = .disable
        case .prefer, .require:
            var unverified = TLSConfiguration.makeClientConfiguration()
            unverified.certificateVerification = .none
            tls = sslMode == .prefer ? .prefer(unverified) : .require(unverified)
        case .verifyFull:
            tls = .require(.makeClientConfiguration())
        }
        var configuration = PostgresClient.Configuration(host: host, port: port, username: username, password: password, database: database, tls: tls)
        configuration.options.maximumConnections = poolSize + 1
        configuration.options.minimumConnections = 1
        configuration.options.connectTimeout = .seconds(5)
        configuration.options.connectionIdleTimeout = .seconds(300)
        configuration.options.keepAliveBehavior = .init(frequency: .seconds(10))
        // The server ends what the client stopped waiting for: a statement past the store's deadline,
        // a lock wait, and a transaction left open by a node that stalled (it would otherwise hold
        // the claim lock, and every node's claims, until TCP gave up on it).
        configuration.options.additionalStartupParameters = [
            ("statement_timeout", "15s"), ("lock_timeout", "10s"), ("idle_in_transaction_session_timeout", "15s"),
        ]
        return configuration
    }
}
