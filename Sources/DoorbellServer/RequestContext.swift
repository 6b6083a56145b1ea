import Hummingbird
import NIOCore

/// The request context of every Doorbell route: Hummingbird's core storage plus the address of the
/// direct peer, which source allowlists check.
public struct DoorbellRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The connected peer, kept as NIO has it: formatting it as text is left to the few routes
    /// that read it (allowlists, sign-in limits), not paid by every request.
    private let peer: SocketAddress?

    /// The IP address of the connected peer, if the transport has one.
    public var peerAddress: String? { peer?.ipAddress }

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peer = source.channel.remoteAddress
    }
}
