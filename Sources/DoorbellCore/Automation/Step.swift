/// One action of an automation, with inputs that are Mustache templates over the event and
/// earlier steps' outputs.
public struct Step: Sendable, Equatable {
    public var id: String
    public var action: StepAction
    /// Overrides the automation's retry schedule.
    public var retry: RetryPolicy?

    public init(id: String, action: StepAction, retry: RetryPolicy? = nil) {
        self.id = id
        self.action = action
        self.retry = retry
    }
}

/// What a step does.
public enum StepAction: Sendable, Equatable {
    case http(HTTPStep)
    case chat(ChatStep)
    case exec(ExecStep)
    case file(FileStep)
    case emit(EmitStep)
    case email(EmailStep)
    case deliver(DeliverStep)

    public var kind: String {
        switch self {
        case .deliver: "deliver"
        case .email: "email"
        case .http: "http"
        case .chat: "chat"
        case .exec: "exec"
        case .file: "file"
        case .emit: "emit"
        }
    }
}

/// `http`: a request to another system; sends `Idempotency-Key: <run>-<step>`.
public struct HTTPStep: Sendable, Equatable {
    public var method: String
    public var url: String
    public var headers: [String: String]
    public enum Body: Sendable, Equatable {
        case none
        /// A JSON value whose strings are templates.
        case json(TemplateValue)
        case text(String)
        case form([String: String])
    }
    public var body: Body
    public var timeout: Double
    /// Statuses that count as success; empty means any 2xx.
    public var expect: [Int]

    public init(method: String = "POST", url: String, headers: [String: String] = [:], body: Body = .none, timeout: Double = 15, expect: [Int] = []) {
        self.method = method
        self.url = url
        self.headers = headers
        self.body = body
        self.timeout = timeout
        self.expect = expect
    }
}

/// `chat`: a message to a team chat's incoming webhook.
public struct ChatStep: Sendable, Equatable {
    public enum Kind: String, Sendable, CaseIterable { case slack, discord, teams, googleChat = "google-chat" }
    public var kind: Kind
    public var url: String
    public var text: String
    public var timeout: Double

    public init(kind: Kind, url: String, text: String, timeout: Double = 15) {
        self.kind = kind
        self.url = url
        self.text = text
        self.timeout = timeout
    }
}

/// `exec`: a local command, argv only (never a shell string); the event JSON goes to its stdin.
public struct ExecStep: Sendable, Equatable {
    /// The program (a literal, never a template) and its arguments (templates).
    public var argv: [String]
    public var env: [String: String]
    /// Names of the server's environment variables the command may see besides PATH, HOME, LANG and
    /// TZ (`inherit_env`); nothing else of the server's environment reaches it.
    public var inheritEnv: [String]
    public var directory: String?
    public var timeout: Double

    public init(argv: [String], env: [String: String] = [:], inheritEnv: [String] = [], directory: String? = nil, timeout: Double = 60) {
        self.argv = argv
        self.env = env
        self.inheritEnv = inheritEnv
        self.directory = directory
        self.timeout = timeout
    }
}

/// `file`: render a template to a path below the files directory, atomically.
public struct FileStep: Sendable, Equatable {
    /// The output path (a template), relative to `files_dir`.
    public var path: String
    /// The template file, already resolved against the config folder.
    public var template: String

    public init(path: String, template: String) {
        self.path = path
        self.template = template
    }
}

/// `emit`: a new event (type + data) that starts the automations matching it.
public struct EmitStep: Sendable, Equatable {
    public var type: String
    public var data: TemplateValue

    public init(type: String, data: TemplateValue) {
        self.type = type
        self.data = data
    }
}

/// `deliver`: send to subscriber endpoints. Without `type`, the run's own event is delivered (a
/// relay); with `type` (and `data`), a new event of ours is published and fanned out.
public struct DeliverStep: Sendable, Equatable {
    public var type: String?
    public var data: TemplateValue?
    /// Only these endpoints (each still filtered by its event types); empty means every matching one.
    public var endpoints: [String]

    public init(type: String? = nil, data: TemplateValue? = nil, endpoints: [String] = []) {
        self.type = type
        self.data = data
        self.endpoints = endpoints
    }
}

/// A JSON-shaped value from the config whose strings are templates.
public indirect enum TemplateValue: Sendable, Equatable {
    case string(String)
    case number(Double)
    case bool(Bool)
    case null
    case array([TemplateValue])
    case object([String: TemplateValue])
}

/// `email`: a message over SMTP (the top-level `smtp:` settings, or the step's own).
public struct EmailStep: Sendable, Equatable {
    /// At most this many recipients (to + cc + bcc) per message: a step is a receipt or an alert, not a
    /// mailing list, and a cap keeps a hostile body from making Doorbell a relay.
    public static let maxRecipients = 50
    /// Recipients (templates); a literal entry may hold several addresses separated by commas, a
    /// templated entry exactly one.
    public var to: [String]
    public var cc: [String]
    /// Recipients who get the message without appearing in its headers.
    public var bcc: [String]
    /// Where replies go (`Reply-To:`), templates like the recipients.
    public var replyTo: [String]
    public var subject: String
    public var text: String?
    public var html: String?
    /// Files to attach (templates), e.g. `{{steps.invoice.path}}`; they must lie below files_dir, reached
    /// without following a symbolic link.
    public var attach: [String]
    public var smtp: SMTPSettings?

    public init(to: [String], cc: [String] = [], bcc: [String] = [], replyTo: [String] = [], subject: String, text: String?, html: String? = nil, attach: [String] = [], smtp: SMTPSettings? = nil) {
        self.to = to
        self.cc = cc
        self.bcc = bcc
        self.replyTo = replyTo
        self.subject = subject
        self.text = text
        self.html = html
        self.attach = attach
        self.smtp = smtp
    }
}
