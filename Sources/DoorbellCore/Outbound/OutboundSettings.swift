import Foundation

/// `outbound:` — how Doorbell's own requests (deliveries, `http` and `chat` steps) behave.
public struct OutboundSettings: Sendable, Equatable {
    /// A delivery that has not answered 2xx within this many seconds failed.
    public var timeout: Double
    /// Which addresses may be reached (`allow_private` opens exceptions to the SSRF guard).
    public var addressPolicy: AddressPolicy
    /// Consecutive failures that open an endpoint's circuit, and the first pause.
    public var circuitFailures: Int
    public var circuitCooldown: Double
    /// An endpoint failing without a single success for this long is disabled (5 days).
    public var disableAfter: Double
    /// How long a rotated-out secret keeps signing alongside the new one (24 h).
    public var rotationOverlap: Double

    public init(timeout: Double = 15, addressPolicy: AddressPolicy = AddressPolicy(), circuitFailures: Int = 5, circuitCooldown: Double = 30, disableAfter: Double = 5 * 86400, rotationOverlap: Double = 86400) {
        self.timeout = timeout
        self.addressPolicy = addressPolicy
        self.circuitFailures = circuitFailures
        self.circuitCooldown = circuitCooldown
        self.disableAfter = disableAfter
        self.rotationOverlap = rotationOverlap
    }
}
