import ArgumentParser
import AsyncHTTPClient
import DoorbellConfig
import DoorbellCore
import DoorbellVerification
import Foundation
import NIOCore
import NIOHTTP1

/// `doorbell trigger`: sends a realistic sample event, signed as the provider would sign it with
/// the source's secret, to the source's URL, and prints the answer.
struct TriggerCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "trigger",
        abstract: "Send a signed sample event to a running server.",
        discussion: "Examples: doorbell trigger stripe payment_intent.succeeded; doorbell trigger form --source contact-form"
    )

    @Argument(help: "The fixture, e.g. `stripe payment_intent.succeeded` or `form` (see --list).")
    var fixture: [String] = []

    @Option(help: "The source to send to (default: the first source whose provider fits the fixture).")
    var source: String?

    @Option(help: "Send here instead of the configured server's /hooks/{source}.")
    var url: String?

    @Option(help: "Sign with this secret instead of the source's first secret.")
    var secret: String?

    @Option(name: [.short, .long], help: "The configuration file.")
    var config: String = "doorbell.yml"

    @Option(help: "Send the contents of this file as the body instead of the fixture's.")
    var data: String?

    @Flag(help: "List the fixtures.")
    var list = false

    @Flag(help: "With --list: print JSON instead of a table.")
    var json = false

    func run() async throws {
        if list {
            if json {
                printJSON(Fixture.all.map { ["name": $0.name, "provider": $0.provider.rawValue, "summary": $0.summary] })
                return
            }
            for fixture in Fixture.all {
                print("\(fixture.name.padding(38)) \(fixture.summary)")
            }
            return
        }
        guard let fixture = Fixture.find(self.fixture) else {
            let given = self.fixture.isEmpty ? "no fixture given" : "unknown fixture '\(self.fixture.joined(separator: " "))'"
            printError("doorbell: \(given); `doorbell trigger --list` shows them all")
            throw ExitCode(1)
        }
        let target = try resolveTarget(for: fixture)
        let body: [UInt8]
        if let data {
            guard let contents = FileManager.default.contents(atPath: data) else {
                printError("doorbell: cannot read --data file '\(data)'")
                throw ExitCode(1)
            }
            body = [UInt8](contents)
        } else {
            body = fixture.makeBody()
        }
        var headers = HTTPHeaders()
        headers.add(name: "Content-Type", value: fixture.contentType)
        headers.add(name: "User-Agent", value: "doorbell-trigger")
        for header in fixture.makeHeaders() { headers.replaceOrAdd(name: header.name, value: header.value) }
        if let scheme = target.provider.scheme(hmac: target.hmac), let secret = target.secret {
            for header in scheme.sign(body: body, url: target.signedURL, secret: secret, now: Date()) {
                headers.add(name: header.name, value: header.value)
            }
        }
        var request = HTTPClientRequest(url: target.url)
        request.method = .POST
        request.headers = headers
        request.body = .bytes(body)
        do {
            let response = try await HTTPClient.shared.execute(request, timeout: .seconds(30))
            let reply = try await response.body.collect(upTo: 1 << 20)
            print("POST \(target.url) -> \(response.status.code) \(response.status.reasonPhrase)")
            print(String(buffer: reply))
            if !(200..<300).contains(response.status.code) { throw ExitCode(1) }
        } catch let error as ExitCode {
            throw error
        } catch {
            printError("doorbell: could not send to \(target.url): \(error)")
            throw ExitCode(1)
        }
    }

    private struct Target {
        var url: String
        /// The URL the server will see as called (Twilio signs it): public_url-based when configured.
        var signedURL: String
        var provider: ProviderKind
        var hmac: HMACSettings?
        var secret: String?
    }

    /// Works out where to send and how to sign from the config and the overrides.
    private func resolveTarget(for fixture: Fixture) throws -> Target {
        let configuration: Configuration?
        do {
            configuration = try ConfigLoader.load(path: config)
        } catch let error as ConfigError {
            // Without a config, --url and --secret (or an unsigned fixture) are enough.
            if url == nil {
                printError(error.description)
                throw ExitCode(1)
            }
            configuration = nil
        }
        let chosen: Source?
        if let configuration {
            if let id = source {
                guard let found = configuration.source(id: id) else {
                    printError("doorbell: no source '\(id)' in \(config)")
                    throw ExitCode(1)
                }
                chosen = found
            } else {
                chosen = configuration.sources.first { $0.provider == fixture.provider }
                if chosen == nil && url == nil {
                    printError("doorbell: no source with provider '\(fixture.provider.rawValue)' in \(config); pass --source or --url")
                    throw ExitCode(1)
                }
            }
        } else {
            chosen = nil
        }
        let provider = chosen?.provider ?? fixture.provider
        let signingSecret = secret ?? chosen?.secrets.first
        if provider != .none && signingSecret == nil {
            printError("doorbell: no secret to sign with; pass --secret")
            throw ExitCode(1)
        }
        let targetURL = url ?? "\(configuration!.server.localBaseURL)/hooks/\(chosen!.id)"
        var signedURL = targetURL
        if let publicURL = configuration?.server.publicURL, let chosen {
            signedURL = "\(publicURL)/hooks/\(chosen.id)"
        }
        return Target(url: targetURL, signedURL: signedURL, provider: provider, hmac: chosen?.hmac, secret: signingSecret)
    }
}
