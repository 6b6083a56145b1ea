import Foundation

/// A poller (`pollers:`): a scheduled pull of an API whose new or changed items become events, with
/// source = the poller's id, so automations cannot tell them from received ones.
public struct Poller: Sendable, Equatable {
    public var id: String
    public var schedule: PollerSchedule
    public var request: PollerRequest
    /// Where the list of items is in the answer; nil: the body itself is the list.
    public var items: JSONPointer?
    public var itemID: JSONPointer
    /// The item's version (`/updated_at`); nil: a hash of the item's canonical JSON.
    public var itemVersion: JSONPointer?
    /// The type of new items' events.
    public var emit: String
    /// The type of changed items' events; nil: changes are ignored.
    public var emitChanged: String?
    public var firstRun: FirstRun
    public var pagination: PollerPagination
    /// Pages read at most per poll.
    public var maxPages: Int
    /// Item ids (with versions) remembered, newest kept; independent of event retention.
    public var maxSeen: Int
    /// No success for this long publishes `doorbell:poller.failing` (default 3 × the interval).
    public var alertAfter: Double?
    /// The longest wait between two tries while failing.
    public var backoffMax: Double
    /// One item's JSON may be at most this big; larger items are skipped (and logged by id).
    public var maxItemBytes: Int
    /// One page's answer may be at most this big.
    public var maxPageBytes: Int

    public init(
        id: String, schedule: PollerSchedule, request: PollerRequest, items: JSONPointer?, itemID: JSONPointer, itemVersion: JSONPointer? = nil,
        emit: String, emitChanged: String? = nil, firstRun: FirstRun = .baseline, pagination: PollerPagination = .none, maxPages: Int = 100,
        maxSeen: Int = 100_000, alertAfter: Double? = nil, backoffMax: Double = 3600, maxItemBytes: Int = 1 << 20, maxPageBytes: Int = 16 << 20
    ) {
        self.id = id
        self.schedule = schedule
        self.request = request
        self.items = items
        self.itemID = itemID
        self.itemVersion = itemVersion
        self.emit = emit
        self.emitChanged = emitChanged
        self.firstRun = firstRun
        self.pagination = pagination
        self.maxPages = maxPages
        self.maxSeen = maxSeen
        self.alertAfter = alertAfter
        self.backoffMax = backoffMax
        self.maxItemBytes = maxItemBytes
        self.maxPageBytes = maxPageBytes
    }

    /// Items on one page beyond this are refused (the page fails): a hostile answer cannot make a
    /// poll hold millions of items.
    public static let maxItemsPerPage = 10_000

    /// A cursor handed out by the API may be at most this long (it is kept and sent back).
    public static let maxCursorBytes = 2048

    /// Item bodies one poll collects to emit at most; past it the walk stops and the next poll goes on.
    public static let maxPollBytes = 64 << 20

    /// How long without a success before `poller.failing`.
    public var failingAfter: Double { alertAfter ?? 3 * schedule.nominalInterval }
}

/// `every: 60s` or `cron: "*/5 8-18 * * 1-5"` with `time_zone`.
public enum PollerSchedule: Sendable, Equatable, CustomStringConvertible {
    case every(Double)
    case cron(CronSchedule)

    /// The next poll after `date` when all went well.
    public func next(after date: Date) -> Date {
        switch self {
        case .every(let seconds): date.addingTimeInterval(seconds)
        case .cron(let cron): cron.next(after: date) ?? date.addingTimeInterval(86400)
        }
    }

    /// The usual gap between polls (for back-off and `alert_after`).
    public var nominalInterval: Double {
        switch self {
        case .every(let seconds): return seconds
        case .cron(let cron):
            let start = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01
            guard let first = cron.next(after: start), let second = cron.next(after: first) else { return 86400 }
            return second.timeIntervalSince(first)
        }
    }

    public var description: String {
        switch self {
        case .every(let seconds): "every \(Self.format(seconds))"
        case .cron(let cron): "cron \(cron.expression) \(cron.timeZone.identifier)"
        }
    }

    static func format(_ seconds: Double) -> String {
        if seconds >= 3600, seconds.truncatingRemainder(dividingBy: 3600) == 0 { return "\(Int(seconds / 3600))h" }
        if seconds >= 60, seconds.truncatingRemainder(dividingBy: 60) == 0 { return "\(Int(seconds / 60))m" }
        if seconds.rounded() == seconds { return "\(Int(seconds))s" }
        return "\(seconds)s"
    }
}

/// What the first poll (or the first after `doorbell pollers reset`) emits.
public enum FirstRun: Sendable, Equatable {
    /// Remember what is there, emit nothing.
    case baseline
    /// Emit every item as new.
    case all
    /// Emit the last N items listed (APIs that list oldest first: the newest N).
    case last(Int)
}

/// `request:` — what one poll asks. Text values may hold `{{cursor}}` and `{{last_success_at}}`.
public struct PollerRequest: Sendable, Equatable {
    public var url: String
    public var method: String
    public var headers: [(String, String)]
    public var query: [(String, String)]
    public var auth: PollerAuth?
    public var timeout: Double

    public init(url: String, method: String = "GET", headers: [(String, String)] = [], query: [(String, String)] = [], auth: PollerAuth? = nil, timeout: Double = 30) {
        self.url = url
        self.method = method
        self.headers = headers
        self.query = query
        self.auth = auth
        self.timeout = timeout
    }

    public static func == (lhs: PollerRequest, rhs: PollerRequest) -> Bool {
        lhs.url == rhs.url && lhs.method == rhs.method && lhs.headers.elementsEqual(rhs.headers, by: ==) && lhs.query.elementsEqual(rhs.query, by: ==)
            && lhs.auth == rhs.auth && lhs.timeout == rhs.timeout
    }

    /// The names templates may use.
    public static let templateNames: Set<String> = ["cursor", "last_success_at"]
}

/// Basic or bearer authentication for a poller's request (never logged).
public enum PollerAuth: Sendable, Equatable {
    case basic(username: String, password: String)
    case bearer(String)

    public var headerValue: String {
        switch self {
        case .basic(let username, let password): "Basic " + Data("\(username):\(password)".utf8).base64EncodedString()
        case .bearer(let token): "Bearer " + token
        }
    }
}

/// How a poll finds its next page.
public enum PollerPagination: Sendable, Equatable {
    case none
    /// The next page's URL at a JSON pointer of the answer (absolute or relative to the request).
    case nextLink(JSONPointer)
    /// RFC 8288 `Link: <…>; rel="next"`.
    case linkHeader
    /// A cursor taken from the answer (`from`), sent as query parameter `param` for the next page;
    /// the last one is kept as the poller's `{{cursor}}`.
    case cursor(param: String, from: JSONPointer)
    /// Page numbers from `start` as query parameter `param`, until a page lists no items.
    case page(param: String, start: Int)
    /// An item offset as query parameter `param`, advancing by the items read less `overlap`, so an
    /// item pushed across a page boundary between two requests is read again rather than missed
    /// (ids seen twice in one poll count once).
    case offset(param: String, overlap: Int)
}

/// Replaces `{{cursor}}` and `{{last_success_at}}` in request text.
public enum PollerTemplate {
    /// Names used in `text` (`{{ name }}`), for `doorbell check`.
    public static func names(in text: String) -> [String] {
        var names: [String] = []
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            names.append(rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces))
            rest = rest[close.upperBound...]
        }
        return names
    }

    public static func render(_ text: String, values: [String: String]) -> String {
        guard text.contains("{{") else { return text }
        var out = ""
        var rest = Substring(text)
        while let open = rest.range(of: "{{") {
            guard let close = rest[open.upperBound...].range(of: "}}") else { break }
            out += rest[..<open.lowerBound]
            out += values[rest[open.upperBound..<close.lowerBound].trimmingCharacters(in: .whitespaces)] ?? ""
            rest = rest[close.upperBound...]
        }
        return out + rest
    }
}

/// A 5-field cron expression (minute hour day-of-month month day-of-week) in a time zone.
/// Fields take `*`, numbers, `a-b`, `*/n`, `a-b/n` and lists; day-of-week 0 or 7 is Sunday. As in
/// Vixie cron, when both day fields are restricted a day matching either one fires.
public struct CronSchedule: Sendable, Equatable {
    public let expression: String
    public let timeZone: TimeZone
    let minutes: Set<Int>
    let hours: Set<Int>
    let days: Set<Int>
    let months: Set<Int>
    let weekdays: Set<Int>
    let daysRestricted: Bool
    let weekdaysRestricted: Bool

    /// Why the expression is wrong is thrown as text naming the field.
    public init(_ expression: String, timeZone: TimeZone) throws(CronError) {
        let fields = expression.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard fields.count == 5 else { throw CronError(message: "expected 5 fields (minute hour day month weekday), found \(fields.count)") }
        self.expression = fields.joined(separator: " ")
        self.timeZone = timeZone
        minutes = try Self.field(fields[0], name: "minute", range: 0...59)
        hours = try Self.field(fields[1], name: "hour", range: 0...23)
        days = try Self.field(fields[2], name: "day of month", range: 1...31)
        months = try Self.field(fields[3], name: "month", range: 1...12)
        weekdays = Set(try Self.field(fields[4], name: "day of week", range: 0...7).map { $0 % 7 })
        daysRestricted = fields[2] != "*"
        weekdaysRestricted = fields[4] != "*"
    }

    public struct CronError: Error, Sendable, CustomStringConvertible {
        public let message: String
        public var description: String { message }
    }

    static func field(_ text: String, name: String, range: ClosedRange<Int>) throws(CronError) -> Set<Int> {
        var values: Set<Int> = []
        for part in text.split(separator: ",", omittingEmptySubsequences: false) {
            let pieces = part.split(separator: "/", omittingEmptySubsequences: false)
            guard pieces.count <= 2 else { throw CronError(message: "\(name): '\(part)' is not a cron field") }
            var step = 1
            if pieces.count == 2 {
                guard let value = Int(pieces[1]), value > 0 else { throw CronError(message: "\(name): step '\(pieces[1])' must be a positive number") }
                step = value
            }
            let span: ClosedRange<Int>
            if pieces[0] == "*" {
                span = range
            } else {
                let bounds = pieces[0].split(separator: "-", omittingEmptySubsequences: false)
                guard (1...2).contains(bounds.count), let low = Int(bounds[0]), let high = Int(bounds.last!), low <= high,
                    range.contains(low), range.contains(high)
                else { throw CronError(message: "\(name): '\(part)' must be within \(range.lowerBound)-\(range.upperBound)") }
                span = pieces.count == 2 && bounds.count == 1 ? low...range.upperBound : low...high
            }
            values.formUnion(stride(from: span.lowerBound, through: span.upperBound, by: step))
        }
        return values
    }

    /// The first whole minute after `date` that matches, within about four years; nil if none does
    /// (`0 0 31 2 *`).
    public func next(after date: Date) -> Date? {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        var candidate = calendar.dateInterval(of: .minute, for: date)!.start.addingTimeInterval(60)
        let limit = date.addingTimeInterval(4 * 366 * 86400)
        while candidate < limit {
            let parts = calendar.dateComponents([.month, .day, .weekday, .hour, .minute], from: candidate)
            let dayMatches: Bool
            let dom = days.contains(parts.day!)
            let dow = weekdays.contains(parts.weekday! - 1)
            if daysRestricted && weekdaysRestricted { dayMatches = dom || dow } else { dayMatches = dom && dow }
            if !months.contains(parts.month!) || !dayMatches {
                candidate = calendar.date(byAdding: .day, value: 1, to: calendar.startOfDay(for: candidate)) ?? candidate.addingTimeInterval(86400)
                continue
            }
            if !hours.contains(parts.hour!) {
                candidate = calendar.dateInterval(of: .hour, for: candidate)!.end
                continue
            }
            if !minutes.contains(parts.minute!) {
                candidate = candidate.addingTimeInterval(60)
                continue
            }
            return candidate
        }
        return nil
    }
}
