@testable import DoorbellStorage
import Foundation
import Synchronization
import Testing

@Suite("Group commit observer")
struct CommitObserverTests {
    @Test("the commit observer calls its handler at the same stack depth on the 10,000th commit as on the first (it once re-wrapped the handler on every commit: slower each time, then a stack overflow)")
    func handlerDoesNotDeepen() {
        let observer = CommitObserver()
        let depths = Mutex<[Int]>([])
        let total = Mutex(0)
        observer.observe { items, _ in
            total.withLock { $0 += items }
            if items == 1 { depths.withLock { $0.append(Thread.callStackSymbols.count) } }
        }
        observer.record(1, .zero)
        for _ in 0..<10_000 { observer.record(2, .milliseconds(1)) }
        observer.record(1, .zero)
        let seen = depths.withLock { $0 }
        #expect(seen.count == 2)
        #expect(seen.first == seen.last, "stack depth at the first and the 10,002nd call: \(seen)")
        #expect(total.withLock { $0 } == 20_002, "every commit reached the handler")
    }
}
