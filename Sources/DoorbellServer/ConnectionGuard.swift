import DoorbellConfig
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The limits one client connection is held to (`server:` in doorbell.yml).
struct ConnectionLimits: Sendable {
    /// From a request's first byte until its headers are complete.
    var headerTimeout: TimeAmount
    /// From a request's headers until its body is complete.
    var bodyTimeout: TimeAmount
    /// After a graceful shutdown begins, how long an open request may still take.
    var shutdownGrace: TimeAmount
    /// Where cut-off connections are noted (debug: a slowloris attack would flood anything louder).
    var logger: Logger

    init(_ settings: ServerSettings, logger: Logger) {
        self.logger = logger
        self.headerTimeout = .configured(settings.headerTimeout)
        self.bodyTimeout = .configured(settings.bodyTimeout)
        self.shutdownGrace = .configured(settings.shutdownGrace)
    }
}

extension TimeAmount {
    /// A duration from the config (seconds, fractions allowed).
    static func configured(_ seconds: Double) -> TimeAmount { .nanoseconds(Int64(seconds * 1e9)) }
}

/// Which part of a request a connection is waiting for, and so which deadline applies. A value, so
/// its rules read (and test) without sockets; the handlers turn its actions into timers.
struct RequestDeadlineState: Equatable {
    enum Reading: Equatable {
        /// Between requests: the idle timeout (Hummingbird's) applies, none of ours.
        case nothing
        /// Some bytes of a request arrived, its headers are not complete: the header timeout runs.
        case head
        /// Headers complete, body still arriving: the body timeout runs.
        case body
    }

    enum Action: Equatable {
        case none
        case arm(TimeAmount)
        case disarm
    }

    private(set) var reading = Reading.nothing
    let limits: Limits

    /// The two timeouts, without the rest of `ConnectionLimits`.
    struct Limits: Equatable {
        var header: TimeAmount
        var body: TimeAmount
    }

    init(limits: Limits) {
        self.limits = limits
    }

    /// Raw bytes arrived (before HTTP decoding): between requests they start a request's header clock.
    mutating func bytesReceived() -> Action {
        guard reading == .nothing else { return .none }
        reading = .head
        return .arm(limits.header)
    }

    /// A request's headers are complete: its body has `body` to arrive in full.
    mutating func headReceived() -> Action {
        reading = .body
        return .arm(limits.body)
    }

    /// A request has arrived in full; the handler's own time is not limited here.
    mutating func endReceived() -> Action {
        reading = .nothing
        return .disarm
    }
}

/// Holds a connection to `RequestDeadlineState`: a slow client (slowloris: headers a byte at a time,
/// a body that trickles or never ends) is cut off at its deadline instead of holding the connection
/// forever, and after a graceful shutdown begins an open request gets `shutdownGrace`, then its
/// connection is closed, so no client can hold up SIGTERM. Sits after the HTTP decoder (it sees
/// request parts) and puts a `FirstByteSentinel` at the front of the pipeline to see raw bytes.
final class ConnectionGuard: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart

    private var state: RequestDeadlineState
    private let shutdownGrace: TimeAmount
    private let logger: Logger
    private var deadline: Scheduled<Void>?
    private var shutdownDeadline: Scheduled<Void>?

    init(_ limits: ConnectionLimits) {
        self.state = RequestDeadlineState(limits: .init(header: limits.headerTimeout, body: limits.bodyTimeout))
        self.shutdownGrace = limits.shutdownGrace
        self.logger = limits.logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        try? context.pipeline.syncOperations.addHandler(FirstByteSentinel(), position: .first)
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        deadline?.cancel()
        shutdownDeadline?.cancel()
    }

    func channelInactive(context: ChannelHandlerContext) {
        deadline?.cancel()
        shutdownDeadline?.cancel()
        context.fireChannelInactive()
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head: apply(state.headReceived(), context)
        case .body: break
        case .end: apply(state.endReceived(), context)
        }
        context.fireChannelRead(data)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is ChannelShouldQuiesceEvent, shutdownDeadline == nil {
            // Hummingbird closes idle connections now and waits for busy ones; this bounds the wait.
            shutdownDeadline = context.eventLoop.assumeIsolated().scheduleTask(in: shutdownGrace) { [logger] in
                logger.notice("closing a connection still busy after shutdown_grace", metadata: ["peer": "\(context.channel.remoteAddress?.ipAddress ?? "?")"])
                context.close(promise: nil)
            }
        }
        context.fireUserInboundEventTriggered(event)
    }

    /// Called by the sentinel, on the same event loop, when raw bytes arrive.
    fileprivate func bytesReceived(_ context: ChannelHandlerContext) {
        apply(state.bytesReceived(), context)
    }

    private func apply(_ action: RequestDeadlineState.Action, _ context: ChannelHandlerContext) {
        switch action {
        case .none: return
        case .disarm:
            deadline?.cancel()
            deadline = nil
        case .arm(let amount):
            deadline?.cancel()
            deadline = context.eventLoop.assumeIsolated().scheduleTask(in: amount) { [weak self] in
                self?.expired(context)
            }
        }
    }

    private func expired(_ context: ChannelHandlerContext) {
        deadline = nil
        if state.reading != .nothing {
            logger.debug("connection cut off", metadata: [
                "reason": "\(state.reading == .head ? "header_timeout" : "body_timeout")", "peer": "\(context.channel.remoteAddress?.ipAddress ?? "?")",
            ])
        }
        switch state.reading {
        case .nothing: return
        case .head:
            // Nothing of this request has been answered yet, so a plain 408 can go out first.
            var buffer = context.channel.allocator.buffer(capacity: 96)
            buffer.writeString("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            sentinel(context)?.writeAndFlush(NIOAny(buffer), promise: nil)
            context.close(promise: nil)
        case .body:
            context.close(promise: nil)
        }
    }

    /// The sentinel's context: writes from there go straight to the socket, past the HTTP encoder.
    private func sentinel(_ context: ChannelHandlerContext) -> ChannelHandlerContext? {
        try? context.pipeline.syncOperations.context(handlerType: FirstByteSentinel.self)
    }
}

/// First in the pipeline: tells its `ConnectionGuard` when raw bytes arrive, so a request's header
/// clock starts at its first byte (the HTTP decoder reports nothing until the headers are complete).
/// It finds the guard through the pipeline rather than holding it, so neither outlives the other.
final class FirstByteSentinel: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        if let guardContext = try? context.pipeline.syncOperations.context(handlerType: ConnectionGuard.self),
            let owner = guardContext.handler as? ConnectionGuard
        {
            owner.bytesReceived(guardContext)
        }
        context.fireChannelRead(data)
    }
}
