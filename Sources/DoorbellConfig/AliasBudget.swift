import CYaml

/// Refuses YAML whose aliases expand beyond a budget ("billion laughs"), before it is composed.
/// Composing shares an anchored node between its aliases, but readers walk the expanded tree and
/// the composer itself hashes every mapping key in full, so nine lines of anchors of anchors would be
/// billions of values (gigabytes, or minutes for a key). This pass reads libyaml's events once,
/// remembers how many values and scalar bytes each anchor stands for, and adds that much for every
/// alias: counting values alone would let one anchored megabyte scalar, aliased 100,000 times, pass.
enum AliasBudget {
    /// The most values (scalars, lists, mappings) a config may hold once its aliases are expanded.
    static let maxNodes = 200_000
    /// The most scalar bytes a config may hold once its aliases are expanded (64 MiB).
    static let maxBytes = 64 << 20

    /// What an anchor, an open collection or the whole document stands for once expanded.
    struct Size {
        var nodes = 0
        var bytes = 0

        /// Adds `other`, saturating just past the limits so a huge expansion cannot overflow.
        mutating func add(_ other: Size) {
            nodes = min(nodes + other.nodes, maxNodes + 1)
            bytes = min(bytes + other.bytes, maxBytes + 1)
        }

        var fits: Bool { nodes <= maxNodes && bytes <= maxBytes }
    }

    /// False when the expanded document would hold more than `maxNodes` values or `maxBytes` bytes
    /// of scalars. Malformed YAML passes here: the composer reports it with a better message.
    static func fits(_ yaml: String) -> Bool {
        var parser = yaml_parser_t()
        guard yaml_parser_initialize(&parser) == 1 else { return true }
        defer { yaml_parser_delete(&parser) }
        var bytes = Array(yaml.utf8)
        return bytes.withUnsafeMutableBufferPointer { buffer in
            yaml_parser_set_input_string(&parser, buffer.baseAddress, buffer.count)
            /// Size per anchor name; a later anchor of the same name replaces the earlier one.
            var anchors: [String: Size] = [:]
            /// One entry per open list or mapping: its anchor and the size counted inside so far.
            var open: [(anchor: String?, size: Size)] = []
            var total = Size()
            func add(_ size: Size) -> Bool {
                if open.isEmpty {
                    total.add(size)
                    return total.fits
                }
                open[open.count - 1].size.add(size)
                return open[open.count - 1].size.fits
            }
            while true {
                var event = yaml_event_t()
                guard yaml_parser_parse(&parser, &event) == 1 else { return true }
                defer { yaml_event_delete(&event) }
                switch event.type {
                case YAML_STREAM_END_EVENT:
                    return true
                case YAML_SCALAR_EVENT:
                    let size = Size(nodes: 1, bytes: Int(event.data.scalar.length))
                    if let name = anchorName(event.data.scalar.anchor) { anchors[name] = size }
                    guard add(size) else { return false }
                case YAML_ALIAS_EVENT:
                    guard add(anchorName(event.data.alias.anchor).flatMap { anchors[$0] } ?? Size(nodes: 1)) else { return false }
                case YAML_SEQUENCE_START_EVENT:
                    open.append((anchorName(event.data.sequence_start.anchor), Size(nodes: 1)))
                case YAML_MAPPING_START_EVENT:
                    open.append((anchorName(event.data.mapping_start.anchor), Size(nodes: 1)))
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
