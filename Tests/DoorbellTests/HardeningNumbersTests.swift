@testable import DoorbellAutomation
import DoorbellCore
import Foundation
import Testing

/// Numbers that come from peers or from people: `Double` reads "inf", "nan" and "1e400", and a
/// date built from one traps the process when it becomes milliseconds. A `Retry-After: inf` from a
/// hostile endpoint or polled API once did exactly that, on every restart.
@Suite struct HardeningNumbersTests {
    @Test func retryAfterIsBoundedWhateverThePeerSends() {
        for hostile in ["inf", "infinity", "1e400", "1e17", "Fri, 31 Dec 9999 23:59:59 GMT"] {
            let seconds = StepExecutor.retryAfter(hostile)
            #expect(seconds == StepExecutor.maxRetryAfter, "Retry-After: \(hostile)")
        }
        #expect(StepExecutor.retryAfter("nan") == nil)
        #expect(StepExecutor.retryAfter("-5") == 0)
        #expect(StepExecutor.retryAfter("-inf") == 0)
        #expect(StepExecutor.retryAfter("120") == 120)
        #expect(StepExecutor.retryAfter(String(repeating: "9", count: 500)) == nil)
    }

    @Test func durationsRefuseNonFiniteAndAbsurdValues() {
        for text in ["inf", "infinity", "1e300", "nan", "1e300s", "999999999999d"] {
            #expect(Units.parseDuration(text) == nil, "\(text)")
        }
        #expect(Units.parseDuration("36500d") != nil, "100 years is the longest duration accepted")
        #expect(Units.parseDuration("36501d") == nil)
    }

    @Test func farDatesBecomeMillisecondsWithoutTrapping() {
        #expect(Timestamp.saturatingMillis(Date(timeIntervalSince1970: .infinity)) > 9_000_000_000_000_000_000)
        #expect(Timestamp.saturatingMillis(Date(timeIntervalSince1970: -.infinity)) < -9_000_000_000_000_000_000)
        #expect(Timestamp.saturatingMillis(Date(timeIntervalSince1970: .nan)) == 0)
        #expect(Timestamp.saturatingMillis(Date(timeIntervalSince1970: 1.5)) == 1500)
        _ = Timestamp.iso8601(Date(timeIntervalSince1970: 1e300))
    }
}
