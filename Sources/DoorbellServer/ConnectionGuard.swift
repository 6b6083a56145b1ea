import DoorbellConfig
import HummingbirdCore
import Logging
import NIOCore
import NIOHTTPTypes

/// The limits one client connection is held to (`server:` in doorbell.yml).
struct ConnectionLimits: Sendable {
    /// Until a request's headers are complete: from accept for a connection's first request (a
    /// connection that never sends a byte holds a slot no longer), from its first byte for later ones.
    var headerTimeout: TimeAmount
    /// From a request's headers until its body is complete.
    var bodyTimeout: TimeAmount
    /// After a graceful shutdown begins, how long an open request may still take.
    var shutdownGrace: TimeAmount
    /// Where cut-off connections are noted (debug: a slowloris attack would flood anything louder).
    var logger: Logger

    init(_ settings: ServerSettings, logger: Logger) {
        self.logger = logger
        self.headerTimeout = TimeAmount(settings.headerTimeout)
        self.bodyTimeout = TimeAmount(settings.bodyTimeout)
        self.shutdownGrace = TimeAmount(settings.shutdownGrace)
    }
}

/// Which part of a request a connection is waiting for, and so which deadline applies. A value, so
/// its rules read (and test) without sockets; the handlers turn its actions into timers.
struct RequestDeadlineState: Equatable {
    enum Reading: Equatable {
        /// Between requests: the idle timeout (Hummingbird's) applies, none of ours.
        case nothing
        /// A new connection's first request is awaited, or some bytes of a request arrived, and its
        /// headers are not complete: the header timeout runs.
        case head
        /// Headers complete, body still arriving: the body timeout runs.
        case body
    }

    enum Action: Equatable {
        case none
        case arm(TimeAmount)
        case disarm
    }

    /// What to do when the armed deadline passes.
    enum Expiry: Equatable {
        /// Nothing is being read (the deadline was stale).
        case ignore
        /// Answer 408 and close: nothing is owed on the connection, so the 408 cannot land inside
        /// or in place of another response.
        case timeoutAndClose
        /// Just close: a body is half read, or an earlier request (pipelined) still awaits its
        /// response, which a 408 written now would interleave with or stand in for.
        case close
    }

    private(set) var reading = Reading.nothing
    /// Requests whose head arrived and whose response has not been written in full.
    private(set) var responsesOwed = 0
    /// Whether `connectionOpened` was applied (it may be reported twice: handler added, channel active).
    private var opened = false
    let limits: Limits

    /// The two timeouts, without the rest of `ConnectionLimits`.
    struct Limits: Equatable {
        var header: TimeAmount
        var body: TimeAmount
    }

    init(limits: Limits) {
        self.limits = limits
    }

    /// The connection was accepted: its first request's header clock starts now, not at its first
    /// byte, so a silent connection is closed at the header timeout instead of the idle timeout.
    mutating func connectionOpened() -> Action {
        guard !opened, reading == .nothing else { return .none }
        opened = true
        reading = .head
        return .arm(limits.header)
    }

    /// Raw bytes arrived (before HTTP decoding): between requests they start a request's header clock.
    mutating func bytesReceived() -> Action {
        guard reading == .nothing else { return .none }
        reading = .head
        return .arm(limits.header)
    }

    /// A request's headers are complete: its body has `body` to arrive in full, and it is owed a response.
    mutating func headReceived() -> Action {
        reading = .body
        responsesOwed += 1
        return .arm(limits.body)
    }

    /// A response was written in full.
    mutating func responseSent() {
        responsesOwed = max(0, responsesOwed - 1)
    }

    /// The armed deadline passed.
    func expired() -> Expiry {
        switch reading {
        case .nothing: .ignore
        case .head: responsesOwed == 0 ? .timeoutAndClose : .close
        case .body: .close
        }
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
/// request parts and the response parts written back) and puts a `FirstByteSentinel` at the front
/// of the pipeline to see raw bytes.
final class ConnectionGuard: ChannelDuplexHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPRequestPart
    typealias InboundOut = HTTPRequestPart
    typealias OutboundIn = HTTPResponsePart
    typealias OutboundOut = HTTPResponsePart

    private var state: RequestDeadlineState
    private let shutdownGrace: TimeAmount
    private let logger: Logger
    private var deadline: Scheduled<Void>?
    private var shutdownDeadline: Scheduled<Void>?
    /// This handler's own context, for the sentinel's calls (set while the handler is in a pipeline).
    private var context: ChannelHandlerContext?

    init(_ limits: ConnectionLimits) {
        self.state = RequestDeadlineState(limits: .init(header: limits.headerTimeout, body: limits.bodyTimeout))
        self.shutdownGrace = limits.shutdownGrace
        self.logger = limits.logger
    }

    func handlerAdded(context: ChannelHandlerContext) {
        self.context = context
        try? context.pipeline.syncOperations.addHandler(FirstByteSentinel(owner: self), position: .first)
        if context.channel.isActive { apply(state.connectionOpened(), context) }
    }

    /// The header clock of the first request starts at accept (see `RequestDeadlineState.connectionOpened`).
    func channelActive(context: ChannelHandlerContext) {
        apply(state.connectionOpened(), context)
        context.fireChannelActive()
    }

    func handlerRemoved(context: ChannelHandlerContext) {
        self.context = nil
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

    func write(context: ChannelHandlerContext, data: NIOAny, promise: EventLoopPromise<Void>?) {
        if case .end = unwrapOutboundIn(data) { state.responseSent() }
        context.write(data, promise: promise)
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
    fileprivate func bytesReceived() {
        guard let context else { return }
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
        let expiry = state.expired()
        if expiry != .ignore {
            logger.debug("connection cut off", metadata: [
                "reason": "\(state.reading == .head ? "header_timeout" : "body_timeout")", "peer": "\(context.channel.remoteAddress?.ipAddress ?? "?")",
            ])
        }
        switch expiry {
        case .ignore: return
        case .timeoutAndClose:
            // Nothing is owed on this connection and nothing of this request was decoded, so a plain
            // 408 written below the HTTP encoder is the only thing the client reads.
            var buffer = context.channel.allocator.buffer(capacity: 96)
            buffer.writeString("HTTP/1.1 408 Request Timeout\r\nConnection: close\r\nContent-Length: 0\r\n\r\n")
            sentinel(context)?.writeAndFlush(NIOAny(buffer), promise: nil)
            context.close(promise: nil)
        case .close:
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
/// Holds its guard weakly (both live in one pipeline, on one event loop), so a read costs no
/// pipeline search.
final class FirstByteSentinel: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = ByteBuffer
    typealias InboundOut = ByteBuffer

    private weak var owner: ConnectionGuard?

    init(owner: ConnectionGuard) {
        self.owner = owner
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        owner?.bytesReceived()
        context.fireChannelRead(data)
    }
}
