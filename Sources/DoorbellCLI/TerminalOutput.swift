/// What the CLI prints for people carries values from webhooks (types, errors quoting rendered paths,
/// response excerpts). A control character in one (an ANSI escape, a carriage return) could repaint or
/// hide what the operator reads, so every line printed for people goes through here. JSON output for
/// scripts goes through `Swift.print` directly: its encoder escapes control characters itself.
func print(_ text: String) {
    Swift.print(text.terminalSafe)
}

extension String {
    /// Control characters (C0 but newline and tab, DEL, C1) and bidirectional overrides (which reorder
    /// what follows them on screen) shown as visible escapes, e.g. `\u{1b}`, `\u{202e}`.
    var terminalSafe: String {
        guard unicodeScalars.contains(where: \.isTerminalControl) else { return self }
        var safe = String.UnicodeScalarView()
        for scalar in unicodeScalars {
            if scalar.isTerminalControl {
                safe.append(contentsOf: "\\u{\(String(scalar.value, radix: 16))}".unicodeScalars)
            } else {
                safe.append(scalar)
            }
        }
        return String(safe)
    }
}

extension Unicode.Scalar {
    fileprivate var isTerminalControl: Bool {
        (value < 0x20 && value != 0x0A && value != 0x09) || (0x7F...0x9F).contains(value)
            || (0x202A...0x202E).contains(value) || (0x2066...0x2069).contains(value) || value == 0x200E || value == 0x200F
    }
}
