import Hummingbird
import NIOCore

/// The request context of every Doorbell route: Hummingbird's core storage plus the address of the
/// direct peer, which source allowlists check.
public struct DoorbellRequestContext: RequestContext {
    public var coreContext: CoreRequestContextStorage
    /// The IP address of the connected peer, if the transport has one.
    public let peerAddress: String?

    public init(source: ApplicationRequestContextSource) {
        self.coreContext = .init(source: source)
        self.peerAddress = source.channel.remoteAddress?.ipAddress
    }
}
