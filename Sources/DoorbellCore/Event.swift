import Foundation

/// An event about to be stored: what a source received after verification.
public struct NewEvent: Sendable, Equatable {
    public var id: String
    public var source: String
    public var type: String
    /// The provider's own id, the dedupe key within a source; nil when the provider gives none.
    public var providerID: String?
    public var receivedAt: Date
    /// Request headers, names lower-cased, in arrival order.
    public var headers: [Header]
    /// The raw body, byte for byte as received (signatures are over these bytes).
    public var body: [UInt8]
    /// Automations this event starts; their runs are created in the transaction that stores it.
    public var automations: [PlannedRun]
    /// How many `emit` steps led to this event (0 for a received one); bounds chains.
    public var depth: Int

    public init(id: String = EventID.generate(), source: String, type: String, providerID: String?, receivedAt: Date = Date(), headers: [Header], body: [UInt8], automations: [PlannedRun] = [], depth: Int = 0) {
        self.id = id
        self.source = source
        self.type = type
        self.providerID = providerID
        self.receivedAt = receivedAt
        self.headers = headers
        self.body = body
        self.automations = automations
        self.depth = depth
    }
}

/// An event as stored: the new event plus its position in the store.
public struct StoredEvent: Sendable, Equatable {
    /// Monotonic insertion order; used for paging.
    public var sequence: Int64
    public var event: NewEvent

    public init(sequence: Int64, event: NewEvent) {
        self.sequence = sequence
        self.event = event
    }
}

/// One HTTP header, name lower-cased.
public struct Header: Sendable, Equatable, Codable {
    public var name: String
    public var value: String
    public init(name: String, value: String) {
        self.name = name.lowercased()
        self.value = value
    }
}

/// The answer to an ingest: the event id, and whether the provider id had been seen before.
public struct IngestOutcome: Sendable, Equatable {
    public var id: String
    public var duplicate: Bool
    public init(id: String, duplicate: Bool) {
        self.id = id
        self.duplicate = duplicate
    }
}
