import AsyncHTTPClient
import Foundation
import NIOCore
import NIOHTTP1

/// A response with its body read under a bound: the first `keep` bytes are kept, the rest is read
/// and discarded (so a receiver's large answer costs no memory and no failure), and reading stops at
/// the request's deadline or after `discardLimit` bytes, whichever comes first.
public struct OutboundResponse: Sendable {
    /// How reading the body ended.
    public enum Ending: Sendable, Equatable {
        /// Read to its end.
        case complete
        /// The deadline came first; the rest was not waited for.
        case deadline
        /// More than `discardLimit` bytes: reading stopped and the connection was dropped.
        case limit
        /// The connection failed mid-body (reset, malformed chunking).
        case failed(String)
    }

    public var status: Int
    public var headers: HTTPHeaders
    /// The body's first bytes, at most the `keep` asked for.
    public var body: [UInt8]
    /// Bytes received in all, kept or not.
    public var received: Int
    public var ending: Ending
    /// Whether `body` holds all it was meant to: the whole answer, or the full `keep` bytes of a
    /// longer one. False when reading stopped (deadline, broken connection) before that.
    public var keptWhole: Bool

    /// Whether bytes were left out of `body` — discarded, or never received before reading stopped.
    public var truncated: Bool { received > body.count || ending != .complete }

    /// Reads `body` (chunks of any async sequence of buffers) into the bound until `deadline`.
    static func read<Body: AsyncSequence & Sendable>(
        _ body: Body, keep: Int, discardLimit: Int, until deadline: ContinuousClock.Instant
    ) async -> (kept: [UInt8], received: Int, ending: Ending) where Body.Element == ByteBuffer {
        await withTaskGroup(of: (kept: [UInt8], received: Int, ending: Ending)?.self) { group in
            group.addTask {
                var kept: [UInt8] = []
                var received = 0
                do {
                    for try await chunk in body {
                        if kept.count < keep {
                            kept += chunk.readableBytesView.prefix(keep - kept.count)
                        }
                        received += chunk.readableBytes
                        if received > keep + discardLimit { return (kept, received, .limit) }
                    }
                    // A cancelled body may simply end: that is the deadline, not the body's end.
                    return (kept, received, Task.isCancelled ? .deadline : .complete)
                } catch {
                    // Cancelled by the deadline below, or the connection broke.
                    return (kept, received, Task.isCancelled ? .deadline : .failed("\(error)"))
                }
            }
            group.addTask {
                try? await Task.sleep(until: deadline, clock: .continuous)
                return nil
            }
            var result: (kept: [UInt8], received: Int, ending: Ending)?
            while let next = await group.next() {
                if let next {
                    result = next
                    group.cancelAll()
                } else if result == nil {
                    // The deadline: stop reading; the reader answers with what it has.
                    group.cancelAll()
                }
            }
            return result ?? ([], 0, .deadline)
        }
    }
}
