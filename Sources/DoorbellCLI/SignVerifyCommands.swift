import ArgumentParser
import DoorbellConfig
import DoorbellCore
import DoorbellVerification
import Foundation

/// Options naming a scheme and its secret, directly or through a source in the config.
struct SchemeOptions: ParsableArguments {
    @Option(help: "The provider scheme: \(ProviderKind.allCases.filter { $0 != .none }.map(\.rawValue).joined(separator: ", ")).")
    var provider: String?

    @Option(help: "The secret (several --secret for verify). Default: the source's secrets.")
    var secret: [String] = []

    @Option(help: "Take provider, secrets and hmac settings from this source in the config.")
    var source: String?

    @Option(name: [.short, .long], help: "The configuration file (with --source).")
    var config: String = "doorbell.yml"

    @Option(help: "The URL the provider calls (Twilio signs it).")
    var url: String = ""

    @Option(help: "The body file; - or nothing reads standard input.")
    var data: String?

    /// The scheme, its secrets and the tolerance.
    func resolve() throws -> (any SignatureScheme, [String], Int) {
        var kind: ProviderKind?
        var secrets = secret
        var hmac: HMACSettings?
        var tolerance = Source.defaultTolerance
        if let sourceID = source {
            let configuration: Configuration
            do {
                configuration = try ConfigLoader.load(path: config)
            } catch let error as ConfigError {
                printError(error.description)
                throw ExitCode(1)
            }
            guard let found = configuration.source(id: sourceID) else {
                printError("doorbell: no source '\(sourceID)' in \(config)")
                throw ExitCode(1)
            }
            kind = found.provider
            hmac = found.hmac
            tolerance = found.tolerance
            if secrets.isEmpty { secrets = found.secrets }
        }
        if let provider {
            guard let parsed = ProviderKind(rawValue: provider.lowercased()) else {
                printError("doorbell: unknown provider '\(provider)'")
                throw ExitCode(1)
            }
            kind = parsed
        }
        guard let kind, let scheme = kind.scheme(hmac: hmac) else {
            printError("doorbell: name a signing provider with --provider or --source")
            throw ExitCode(1)
        }
        guard !secrets.isEmpty else {
            printError("doorbell: no secret; pass --secret")
            throw ExitCode(1)
        }
        return (scheme, secrets, tolerance)
    }

    func body() throws -> [UInt8] {
        if data == nil || data == "-" { return [UInt8](FileHandle.standardInput.readDataToEndOfFile()) }
        guard let contents = FileManager.default.contents(atPath: data!) else {
            printError("doorbell: cannot read '\(data!)'")
            throw ExitCode(1)
        }
        return [UInt8](contents)
    }
}

/// `doorbell sign`: prints the headers a provider would send with a body.
struct SignCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "sign",
        abstract: "Compute a provider's signature headers for a body.",
        discussion: "Example: doorbell sign --provider stripe --secret whsec_… --data event.json"
    )

    @OptionGroup var options: SchemeOptions

    func run() async throws {
        let (scheme, secrets, _) = try options.resolve()
        for header in scheme.sign(body: try options.body(), url: options.url, secret: secrets[0], now: Date()) {
            print("\(header.name): \(header.value)")
        }
    }
}

/// `doorbell verify`: checks a body and headers as the server would, and says why not.
struct VerifyCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "verify",
        abstract: "Check a provider's signature on a body and headers, as the server would.",
        discussion: "Example: doorbell verify --source stripe --data body.json -H 'Stripe-Signature: t=…,v1=…'"
    )

    @OptionGroup var options: SchemeOptions

    @Option(name: [.customShort("H"), .customLong("header")], help: "A request header, 'Name: value' (repeatable).")
    var headers: [String] = []

    @Option(help: "Seconds a signed timestamp may be off (default: the source's, or 300).")
    var tolerance: Int?

    func run() async throws {
        let (scheme, secrets, sourceTolerance) = try options.resolve()
        var parsed: [Header] = []
        for text in headers {
            guard let colon = text.firstIndex(of: ":") else {
                printError("doorbell: header '\(text)' is not 'Name: value'")
                throw ExitCode(1)
            }
            parsed.append(Header(name: String(text[..<colon]).trimmingCharacters(in: .whitespaces), value: String(text[text.index(after: colon)...]).trimmingCharacters(in: .whitespaces)))
        }
        let request = SignedRequest(headers: parsed, body: try options.body(), url: options.url)
        do {
            try scheme.verify(request, secrets: secrets, tolerance: tolerance ?? sourceTolerance, now: Date())
            print("valid")
        } catch {
            print("invalid: \(error)")
            throw ExitCode(1)
        }
    }
}
