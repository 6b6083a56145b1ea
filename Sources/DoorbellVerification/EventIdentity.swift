import DoorbellCore
import Foundation

/// An event's type and dedupe key, read from a verified request by the provider's conventions
/// or the source's `event_type` / `event_id` settings.
public struct EventIdentity: Sendable, Equatable {
    public var type: String
    public var providerID: String?

    public init(type: String, providerID: String?) {
        self.type = type
        self.providerID = providerID
    }

    /// Type used when a generic source names none and the body has no `type` field.
    public static let defaultType = "webhook"

    /// Reads the identity; throws `MalformedBody` (a 400) when the body is not what the source
    /// expects or a configured value is missing.
    public static func read(from request: SignedRequest, source: Source) throws(MalformedBody) -> EventIdentity {
        let conventions = ProviderConventions.of(source.provider)
        let typeRule = source.eventType ?? conventions.type
        let idRule = source.eventID ?? conventions.id
        let body = try ParsedBody(request: request, provider: source.provider, pointers: pointers(typeRule, idRule))

        var type = EventIdentity.defaultType
        if let rule = source.eventType {
            guard let value = value(of: rule, in: body, request: request) else {
                throw MalformedBody("event type not found at \(describe(rule))")
            }
            type = value
        } else if let rule = conventions.type {
            if let value = value(of: rule, in: body, request: request) {
                type = value
            } else if conventions.typeRequired {
                throw MalformedBody("event type not found at \(describe(rule))")
            }
        } else if source.provider == .twilio {
            type = twilioType(body)
        }
        if let problem = EventLimits.typeProblem(type) { throw MalformedBody(problem) }

        var providerID: String?
        if let rule = source.eventID ?? conventions.id {
            let value = value(of: rule, in: body, request: request)
            if let value, !value.isEmpty {
                if let problem = EventLimits.providerIDProblem(value) { throw MalformedBody(problem) }
                providerID = value
            } else if source.eventID != nil || conventions.idRequired {
                throw MalformedBody("event id (the dedupe key) not found at \(describe(rule))")
            }
        }
        return EventIdentity(type: type, providerID: providerID)
    }

    /// The JSON pointers the identity may read, so the body scan looks for just these.
    private static func pointers(_ first: ValueRule?, _ second: ValueRule?) -> [JSONPointer] {
        var pointers: [JSONPointer] = []
        if case .pointer(let pointer) = first { pointers.append(pointer) }
        if case .pointer(let pointer) = second { pointers.append(pointer) }
        return pointers
    }

    /// Twilio posts forms without a type: a message is `message.received` (or `message.<status>` for a
    /// status callback), a call `call.<status>`.
    private static func twilioType(_ body: ParsedBody) -> String {
        guard case .form(let fields) = body else { return defaultType }
        if let status = fields["MessageStatus"] ?? fields["SmsStatus"], status != "received" { return "message.\(status)" }
        if fields["MessageSid"] != nil || fields["SmsSid"] != nil { return "message.received" }
        if let status = fields["CallStatus"] { return "call.\(status)" }
        return defaultType
    }

    private static func value(of rule: ValueRule, in body: ParsedBody, request: SignedRequest) -> String? {
        switch rule {
        case .fixed(let text): text
        case .header(let name): request.header(name) ?? request.header(name.replacingOccurrences(of: "webhook-", with: "svix-"))
        case .pointer(let pointer): body.string(at: pointer)
        }
    }

    private static func describe(_ rule: ValueRule) -> String {
        switch rule {
        case .fixed(let text): "'\(text)'"
        case .header(let name): "header \(name)"
        case .pointer(let pointer): "JSON pointer \(pointer)"
        }
    }
}

/// A body the server refuses with 400; the message says what was wrong.
public struct MalformedBody: Error, Sendable, Equatable, CustomStringConvertible {
    public let description: String
    public init(_ description: String) { self.description = description }
}

/// The body as JSON, as form fields, or as opaque bytes.
enum ParsedBody {
    case json(Any)
    /// A JSON object read by `JSONFieldScanner`: the values at the pointers asked for, and the raw
    /// body in case another pointer is asked for (then Foundation parses it after all).
    case scanned(pointers: [JSONPointer], fields: [JSONFieldScanner.Field], body: [UInt8])
    case form([String: String])
    case opaque

    /// `pointers` are the ones `string(at:)` will be asked for; a JSON object body is then scanned
    /// for just those, and only bodies the scanner is unsure of are parsed with Foundation.
    init(request: SignedRequest, provider: ProviderKind, pointers: [JSONPointer] = []) throws(MalformedBody) {
        let contentType = request.header("content-type")?.lowercased() ?? ""
        if contentType.hasPrefix("application/x-www-form-urlencoded") && !provider.requiresJSONBody {
            self = .form(ParsedBody.formFields(request.body))
            return
        }
        let wantsJSON = provider.requiresJSONBody || contentType.contains("json")
        let trimmed = request.body.drop { $0 == 0x20 || $0 == 0x0a || $0 == 0x0d || $0 == 0x09 }
        guard wantsJSON || trimmed.first == UInt8(ascii: "{") || trimmed.first == UInt8(ascii: "[") else {
            self = .opaque
            return
        }
        if let fields = JSONFieldScanner.scan(request.body, pointers: pointers) {
            self = .scanned(pointers: pointers, fields: fields, body: request.body)
            return
        }
        do {
            let object = try JSONSerialization.jsonObject(with: Data(request.body), options: [.fragmentsAllowed])
            if provider.requiresJSONBody, !(object is [String: Any]) {
                throw MalformedBody("expected a JSON object")
            }
            self = .json(object)
        } catch let error as MalformedBody {
            throw error
        } catch {
            // Only a body that claims or needs to be JSON is refused; a generic source keeps odd text.
            if wantsJSON { throw MalformedBody(request.body.isEmpty ? "empty body; expected JSON" : "malformed JSON") }
            self = .opaque
        }
    }

    func string(at pointer: JSONPointer) -> String? {
        switch self {
        case .json(let root): pointer.string(in: root)
        case .scanned(let pointers, let fields, let body):
            if let position = pointers.firstIndex(of: pointer) {
                switch fields[position] {
                case .text(let text): text
                case .none: nil
                }
            } else {
                // The scanner validated the document, so Foundation parses it too.
                (try? JSONSerialization.jsonObject(with: Data(body), options: [.fragmentsAllowed])).flatMap { pointer.string(in: $0) }
            }
        case .form(let fields): pointer.tokens.count == 1 ? fields[pointer.tokens[0]] : nil
        case .opaque: nil
        }
    }

    /// `a=1&b=two+words` → fields; the first value of a repeated name wins.
    static func formFields(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for (name, value) in FormFields.pairs(body) where fields[name] == nil { fields[name] = value }
        return fields
    }
}

/// Where each provider puts the event type and its own id, unless the source overrides them.
/// Built once per provider: parsing the pointers on every request was 2 % of ingest CPU.
struct ProviderConventions: Sendable {
    var type: ValueRule?
    var typeRequired = false
    var id: ValueRule?
    var idRequired = false

    private static let stripe = ProviderConventions(.stripe)
    private static let github = ProviderConventions(.github)
    private static let shopify = ProviderConventions(.shopify)
    private static let standard = ProviderConventions(.standard)
    private static let twilio = ProviderConventions(.twilio)
    private static let hmac = ProviderConventions(.hmac)
    private static let noProvider = ProviderConventions(.none)

    /// The conventions of `provider`, prepared once.
    static func of(_ provider: ProviderKind) -> ProviderConventions {
        switch provider {
        case .stripe: stripe
        case .github: github
        case .shopify: shopify
        case .standard: standard
        case .twilio: twilio
        case .hmac: hmac
        case .none: noProvider
        }
    }

    init(_ provider: ProviderKind) {
        let bodyType = ValueRule.pointer(JSONPointer("/type")!)
        switch provider {
        case .stripe:
            self.type = bodyType
            self.typeRequired = true
            self.id = .pointer(JSONPointer("/id")!)
            self.idRequired = true
        case .github:
            self.type = .header("X-GitHub-Event")
            self.typeRequired = true
            self.id = .header("X-GitHub-Delivery")
            self.idRequired = true
        case .shopify:
            self.type = .header("X-Shopify-Topic")
            self.typeRequired = true
            self.id = .header("X-Shopify-Webhook-Id")
            self.idRequired = true
        case .standard:
            self.type = bodyType
            self.id = .header("webhook-id")
            self.idRequired = true
        case .twilio:
            self.id = .header("I-Twilio-Idempotency-Token")
        case .hmac, .none:
            self.type = bodyType
        }
    }
}
