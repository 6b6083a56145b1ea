/// The lifecycle of a run: pending → running → succeeded | waiting_retry | dead. A delivery whose
/// endpoint is disabled is `paused` until the endpoint is enabled again.
public enum RunStatus: String, Sendable, CaseIterable {
    case pending, running, succeeded, dead, paused
    case waitingRetry = "waiting_retry"
}

/// How one attempt of a step ended.
public enum StepOutcome: Sendable, Equatable {
    case succeeded
    /// `retryable` false means a retry cannot help (a 4xx, a template error, a refused address).
    case failed(error: String, retryable: Bool, retryAfter: Double?)
}

/// A run's position as a value: which step is next and how many attempts it has had. Transitions
/// return the action the worker carries out, so the rules are tested without any I/O.
public struct RunProgress: Sendable, Equatable {
    public private(set) var status: RunStatus
    public private(set) var nextStep: Int
    /// Attempts already made of `nextStep`.
    public private(set) var attempt: Int
    public private(set) var lastError: String?

    public enum Action: Sendable, Equatable {
        /// Run step `index` now.
        case runStep(Int)
        /// Every step succeeded.
        case finished
        /// Try the same step again after this many seconds.
        case retry(after: Double)
        /// Attempts exhausted or the failure is permanent.
        case dead(reason: String)
    }

    public init(status: RunStatus = .pending, nextStep: Int = 0, attempt: Int = 0, lastError: String? = nil) {
        self.status = status
        self.nextStep = nextStep
        self.attempt = attempt
        self.lastError = lastError
    }

    /// A worker claimed the run.
    public mutating func start(stepCount: Int) -> Action {
        guard nextStep < stepCount else {
            status = .succeeded
            return .finished
        }
        status = .running
        return .runStep(nextStep)
    }

    /// Records the outcome of the current step and decides what follows. `policy` is the step's
    /// retry schedule; `random` in -1…1 drives the jitter (injected so tests are exact).
    public mutating func record(_ outcome: StepOutcome, stepCount: Int, policy: RetryPolicy, random: Double = Double.random(in: -1...1)) -> Action {
        switch outcome {
        case .succeeded:
            nextStep += 1
            attempt = 0
            lastError = nil
            if nextStep >= stepCount {
                status = .succeeded
                return .finished
            }
            return .runStep(nextStep)
        case .failed(let error, let retryable, let retryAfter):
            attempt += 1
            lastError = error
            guard retryable else {
                status = .dead
                return .dead(reason: error)
            }
            // schedule[attempt] is the wait before attempt number `attempt` (0-based).
            guard let delay = policy.delay(beforeAttempt: attempt, retryAfter: retryAfter, random: random) else {
                status = .dead
                return .dead(reason: "\(error) (gave up after \(attempt) attempts)")
            }
            status = .waitingRetry
            return .retry(after: delay)
        }
    }

    /// A person asked to run it again (replay): from the failed step, with fresh attempts.
    public mutating func replay() {
        status = .pending
        attempt = 0
        lastError = nil
    }
}
