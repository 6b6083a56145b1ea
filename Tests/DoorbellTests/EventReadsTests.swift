@testable import DoorbellAutomation
import DoorbellCore
import DoorbellStorage
import Foundation
import Testing

@Suite("Event reads")
struct EventReadsTests {
    @Test("runs asking for their events at once each get their own (the same id asked twice included), a missing id gets nil, and a store that cannot read makes the ask throw instead of answering nil")
    func coalescedReads() async throws {
        let path = try TemporaryFolder.make().appendingPathComponent("doorbell.db").path
        let server = try SQLiteEventStore(path: path)
        // Written by a command beside the server, so the server reads them from the file, not from memory.
        let command = try SQLiteEventStore(path: path, access: .readWrite)
        var ids: [String] = []
        for n in 0..<40 {
            let event = NewEvent(source: "open", type: "t", providerID: "p\(n)", receivedAt: Date(), headers: [], body: Array(#"{"n":\#(n)}"#.utf8))
            ids.append(try await command.ingest(event).id)
        }
        try await command.close()
        let reads = EventReads(store: server)
        let asked = ids + ids.prefix(10) + ["evt_not_stored"]
        let answers = try await withThrowingTaskGroup(of: (String, StoredEvent?).self) { group in
            for id in asked { group.addTask { (id, try await reads.event(id: id)) } }
            return try await group.reduce(into: []) { $0.append($1) }
        }
        #expect(answers.count == asked.count)
        for (id, stored) in answers {
            if id == "evt_not_stored" {
                #expect(stored == nil)
            } else {
                let n = try #require(ids.firstIndex(of: id))
                #expect(stored?.event.id == id)
                #expect(stored?.event.body == Array(#"{"n":\#(n)}"#.utf8))
            }
        }
        try await server.close()
        await #expect(throws: (any Error).self, "a closed store is an error, not a missing event") {
            _ = try await reads.event(id: ids[0])
        }
    }
}
