import Synchronization

/// A flag that any thread sets once and any thread reads: "the deadline fired", "stop now". Named
/// `Latch`, not `Flag`, so it never collides with ArgumentParser's `@Flag` in the CLI.
public final class Latch: Sendable {
    private let value = Atomic<Bool>(false)

    public init() {}

    /// Sets the latch; it stays set.
    public func set() { value.store(true, ordering: .releasing) }

    /// Whether `set()` has been called, by any thread.
    public var isSet: Bool { value.load(ordering: .acquiring) }
}
