import CYaml

/// Refuses YAML whose aliases expand beyond a budget ("billion laughs"), before it is composed.
/// Composing shares an anchored node between its aliases, but readers walk the expanded tree and
/// the composer itself hashes every mapping key in full, so nine lines of anchors of anchors would be
/// billions of values (gigabytes, or minutes for a key). This pass reads libyaml's events once,
/// remembers how many values each anchor stands for, and adds that much for every alias.
enum AliasBudget {
    /// The most values (scalars, lists, mappings) a config may hold once its aliases are expanded.
    static let maxNodes = 200_000

    /// False when the expanded document would hold more than `maxNodes` values. Malformed YAML
    /// passes here: the composer reports it with a better message.
    static func fits(_ yaml: String) -> Bool {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return true }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(yaml.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            /// Values per anchor name; a later anchor of the same name replaces the earlier one.
            var anchors: [String: Int] = [:]
            /// One entry per open list or mapping: its anchor and the values counted inside so far.
            var open: [(anchor: String?, size: Int)] = []
            var total = 0
            func add(_ size: Int) -> Bool {
                if open.isEmpty {
                    total = min(total + size, maxNodes + 1)
                    return total <= maxNodes
                }
                open[open.count - 1].size = min(open[open.count - 1].size + size, maxNodes + 1)
                return open[open.count - 1].size <= maxNodes
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return true }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return true
                case YAML_SCALAR_EVENT:
                    if let name = anchorName(event.data.scalar.anchor) { anchors[name] = 1 }
                    guard add(1) else { return false }
                case YAML_ALIAS_EVENT:
                    guard add(anchorName(event.data.alias.anchor).flatMap { anchors[$0] } ?? 1) else { return false }
                case YAML_SEQUENCE_START_EVENT:
                    open.append((anchorName(event.data.sequence_start.anchor), 1))
                case YAML_MAPPING_START_EVENT:
                    open.append((anchorName(event.data.mapping_start.anchor), 1))
                case YAML_SEQUENCE_END_EVENT, YAML_MAPPING_END_EVENT:
                    guard let closed = open.popLast() else { return true }
                    if let name = closed.anchor { anchors[name] = closed.size }
                    guard add(closed.size) else { return false }
                default:
                    break
                }
            }
        }
    }

    private static func anchorName(_ pointer: UnsafeMutablePointer<yaml_char_t>?) -> String? {
        pointer.map { String(cString: UnsafeRawPointer($0).assumingMemoryBound(to: CChar.self)) }
    }
}
