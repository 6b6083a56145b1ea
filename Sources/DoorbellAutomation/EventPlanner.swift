import DoorbellCore

/// Decides everything an event starts, before it is stored, so its runs and deliveries commit with
/// it: the automations that match, and the deliveries to endpoints (see `EndpointDirectory`).
public struct EventPlanner: Sendable {
    public let matcher: AutomationMatcher
    public let directory: EndpointDirectory
    /// `forward_to` per source id.
    private let relays: [String: [String]]

    public init(automations: [Automation], directory: EndpointDirectory, sources: [Source]) {
        self.matcher = AutomationMatcher(automations: automations)
        self.directory = directory
        self.relays = Dictionary(sources.map { ($0.id, $0.forwardTo) }, uniquingKeysWith: { first, _ in first })
    }

    /// The event with its planned runs and deliveries filled in.
    public func plan(_ event: NewEvent) -> NewEvent {
        var event = event
        event.automations = matcher.matching(event) + directory.deliveries(for: event, forwardTo: relays[event.source] ?? [])
        return event
    }
}
