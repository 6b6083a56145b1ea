/// The one definition of what an event type, a provider id (dedupe key) and an HTTP header may be.
/// Ingest, the API, `emit`/`deliver` steps and `doorbell check` all ask here, so a value accepted
/// in one place is never refused (or stored, then choked on) in another.
public enum EventLimits {
    /// An event type is 1 to 200 bytes of UTF-8.
    public static let maxTypeBytes = 200
    /// A provider id or idempotency key is at most 500 bytes of UTF-8.
    public static let maxProviderIDBytes = 500
    /// A header value is at most 8 KiB: more than any provider sends, far below the server's limit.
    public static let maxHeaderValueBytes = 8 * 1024

    /// Why `type` cannot be an event type, or nil when it can.
    public static func typeProblem(_ type: String) -> String? {
        if type.isEmpty { return "an event type must not be empty" }
        if type.utf8.count > maxTypeBytes { return "an event type must be at most \(maxTypeBytes) bytes, found \(type.utf8.count)" }
        if containsControl(type) { return "an event type must not contain control characters (CR, LF, tab, NUL…)" }
        return nil
    }

    /// Why `id` cannot be a provider id (dedupe key), or nil when it can.
    public static func providerIDProblem(_ id: String) -> String? {
        if id.isEmpty { return "an event id must not be empty" }
        if id.utf8.count > maxProviderIDBytes { return "an event id must be at most \(maxProviderIDBytes) bytes, found \(id.utf8.count)" }
        if containsControl(id) { return "an event id must not contain control characters (CR, LF, tab, NUL…)" }
        return nil
    }

    /// An automation or step id is at most 100 bytes: a step id becomes part of an `Idempotency-Key`
    /// header and of an emitted event's provider id (`<run>-<step>`), which must stay within their limits.
    public static let maxNameBytes = 100

    /// Why `name` cannot be an automation or step id, or nil when it can (an empty id is reported
    /// by the reader as missing).
    public static func nameProblem(_ name: String) -> String? {
        if name.utf8.count > maxNameBytes { return "an id must be at most \(maxNameBytes) bytes, found \(name.utf8.count)" }
        if containsControl(name) { return "an id must not contain control characters (CR, LF, tab, NUL…)" }
        return nil
    }

    /// Why `name` cannot be an HTTP header name (RFC 9110 token characters), or nil when it can.
    public static func headerNameProblem(_ name: String) -> String? {
        if name.isEmpty { return "a header name must not be empty" }
        if name.utf8.count > 256 { return "a header name must be at most 256 bytes" }
        let token = Set("!#$%&'*+-.^_`|~".utf8)
        guard name.utf8.allSatisfy({ byte in
            (0x30...0x39).contains(byte) || (0x41...0x5A).contains(byte) || (0x61...0x7A).contains(byte) || token.contains(byte)
        }) else {
            return "'\(name.prefix(64))' is not a valid header name (letters, digits and !#$%&'*+-.^_`|~ only)"
        }
        return nil
    }

    /// Why `value` cannot be an HTTP header value (no CR, LF or other control characters except tab),
    /// or nil when it can.
    public static func headerValueProblem(_ value: String) -> String? {
        if value.utf8.count > maxHeaderValueBytes { return "a header value must be at most \(maxHeaderValueBytes) bytes" }
        if value.utf8.contains(where: { ($0 < 0x20 && $0 != 0x09) || $0 == 0x7F }) {
            return "a header value must not contain CR, LF or other control characters"
        }
        return nil
    }

    /// C0 controls and DEL: they end header lines, split log lines and terminals.
    private static func containsControl(_ text: String) -> Bool {
        text.utf8.contains { $0 < 0x20 || $0 == 0x7F }
    }
}
