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
        let body = try ParsedBody(request: request, provider: source.provider)
        let typeRule: ValueRule? = source.eventType ?? defaultTypeRule(source.provider)
        let idRule: ValueRule? = source.eventID ?? defaultIDRule(source.provider)

        var type = EventIdentity.defaultType
        if let typeRule {
            if let value = value(of: typeRule, in: body, request: request) {
                type = value
            } else if source.eventType != nil || source.provider == .stripe {
                throw MalformedBody("event type not found at \(describe(typeRule))")
            }
        }
        guard !type.isEmpty, type.utf8.count <= 200 else { throw MalformedBody("event type must be 1 to 200 bytes") }

        var providerID: String?
        if let idRule {
            guard let value = value(of: idRule, in: body, request: request), !value.isEmpty else {
                throw MalformedBody("event id (the dedupe key) not found at \(describe(idRule))")
            }
            guard value.utf8.count <= 500 else { throw MalformedBody("event id longer than 500 bytes") }
            providerID = value
        }
        return EventIdentity(type: type, providerID: providerID)
    }

    private static func defaultTypeRule(_ provider: ProviderKind) -> ValueRule? {
        switch provider {
        case .stripe, .hmac, .none, .standard: .pointer(JSONPointer("/type")!)
        case .github, .shopify, .twilio: nil
        }
    }

    private static func defaultIDRule(_ provider: ProviderKind) -> ValueRule? {
        switch provider {
        case .stripe: .pointer(JSONPointer("/id")!)
        case .hmac, .none, .standard, .github, .shopify, .twilio: nil
        }
    }

    private static func value(of rule: ValueRule, in body: ParsedBody, request: SignedRequest) -> String? {
        switch rule {
        case .fixed(let text): text
        case .header(let name): request.header(name)
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
    case form([String: String])
    case opaque

    init(request: SignedRequest, provider: ProviderKind) throws(MalformedBody) {
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
        case .form(let fields): pointer.tokens.count == 1 ? fields[pointer.tokens[0]] : nil
        case .opaque: nil
        }
    }

    /// `a=1&b=two+words` → fields; the first value of a repeated name wins.
    static func formFields(_ body: [UInt8]) -> [String: String] {
        var fields: [String: String] = [:]
        for pair in String(decoding: body, as: UTF8.self).split(separator: "&") {
            let parts = pair.split(separator: "=", maxSplits: 1, omittingEmptySubsequences: false)
            let decode = { (text: Substring) in
                text.replacingOccurrences(of: "+", with: " ").removingPercentEncoding ?? String(text)
            }
            let name = decode(parts[0])
            if fields[name] == nil { fields[name] = parts.count > 1 ? decode(parts[1]) : "" }
        }
        return fields
    }
}
