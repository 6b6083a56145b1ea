import DoorbellCore
import Foundation

/// Read-only summaries the dashboard shows that the other store protocols do not answer: queue
/// counts, activity per source and endpoint, a run's completed steps with their times.
public protocol DashboardSummaryStore: Sendable {
    /// Runs by status, automation runs and deliveries apart.
    func queueCounts() async throws -> QueueCounts
    /// Per source: its newest event and how many arrived since `since`.
    func sourceActivity(since: Date) async throws -> [String: SourceActivity]
    /// Per endpoint: attempts since `since` and how many of them got a 2xx.
    func endpointActivity(since: Date) async throws -> [String: EndpointActivity]
    /// A run's completed steps in order.
    func stepResults(runID: String) async throws -> [StepResult]
}

/// How many runs and deliveries are in each status.
public struct QueueCounts: Sendable, Equatable {
    public var runs: [RunStatus: Int]
    public var deliveries: [RunStatus: Int]

    public init(runs: [RunStatus: Int] = [:], deliveries: [RunStatus: Int] = [:]) {
        self.runs = runs
        self.deliveries = deliveries
    }
}

public struct SourceActivity: Sendable, Equatable {
    public var lastReceivedAt: Date
    public var receivedSince: Int

    public init(lastReceivedAt: Date, receivedSince: Int) {
        self.lastReceivedAt = lastReceivedAt
        self.receivedSince = receivedSince
    }
}

public struct EndpointActivity: Sendable, Equatable {
    public var attempts: Int
    public var succeeded: Int

    public init(attempts: Int, succeeded: Int) {
        self.attempts = attempts
        self.succeeded = succeeded
    }
}

/// One completed step of a run, as stored.
public struct StepResult: Sendable, Equatable {
    public var stepID: String
    public var position: Int
    /// The step's output (JSON text).
    public var output: String
    public var completedAt: Date

    public init(stepID: String, position: Int, output: String, completedAt: Date) {
        self.stepID = stepID
        self.position = position
        self.output = output
        self.completedAt = completedAt
    }
}
