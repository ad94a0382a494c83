/// What the log handler does to text from outside (MQTT payloads and topics, device names, gateway
/// answers, C libraries' messages) before it reaches a log line, so that no value can start a line
/// of its own (a forged entry) or send escape codes to the terminal that shows the log.
///
/// Text format: every control character (C0, DEL, C1), the Unicode line and paragraph separators,
/// and the bidirectional formatting characters (which reorder what a terminal shows) become
/// visible escapes: `\n`, `\r`, `\t`, `\x1b`, `\u{202e}`; a backslash becomes `\\`, so an escape
/// and the same characters typed by someone else differ. A metadata value is quoted when it
/// contains a space, a quote, `=` or nothing at all, and a quote inside it becomes `\"`, so a
/// value cannot forge another `key=value` either.
///
/// JSON format: JSON already escapes C0 controls, quotes and backslashes; the other characters
/// above are written as `\uXXXX`, which JSON readers turn back into the original value.
enum LogEscape {
    /// `text` with every character that could change how a log line reads made visible.
    static func text(_ text: String) -> String {
        guard text.unicodeScalars.contains(where: { needsEscape($0) || $0 == "\\" }) else { return text }
        var escaped = ""
        escaped.reserveCapacity(text.utf8.count + 8)
        for scalar in text.unicodeScalars {
            switch scalar {
            case "\\": escaped += "\\\\"
            case "\n": escaped += "\\n"
            case "\r": escaped += "\\r"
            case "\t": escaped += "\\t"
            case _ where needsEscape(scalar):
                let hex = String(scalar.value, radix: 16)
                escaped +=
                    scalar.value < 0x100 ? "\\x" + String(repeating: "0", count: 2 - hex.count) + hex : "\\u{\(hex)}"
            default: escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// A metadata value for the text format: escaped, and quoted when it would otherwise be
    /// ambiguous.
    static func value(_ value: String) -> String {
        let escaped = text(value)
        guard escaped.isEmpty || escaped.contains(where: { $0 == " " || $0 == "\"" || $0 == "=" }) else {
            return escaped
        }
        return "\"" + escaped.replacing("\"", with: "\\\"") + "\""
    }

    /// A serialised JSON line with the characters JSON leaves raw (DEL, C1, separators, bidi
    /// controls) written as `\uXXXX`. They can only occur inside strings, where that escape
    /// means the same character.
    static func json(_ line: String) -> String {
        guard line.unicodeScalars.contains(where: needsEscape) else { return line }
        var escaped = ""
        escaped.reserveCapacity(line.utf8.count + 8)
        for scalar in line.unicodeScalars {
            if needsEscape(scalar) {
                let hex = String(scalar.value, radix: 16)
                escaped += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
            } else {
                escaped.unicodeScalars.append(scalar)
            }
        }
        return escaped
    }

    /// Control characters (C0, DEL, C1), line and paragraph separators, bidirectional formatting.
    static func needsEscape(_ scalar: Unicode.Scalar) -> Bool {
        switch scalar.value {
        case 0x00...0x1F, 0x7F...0x9F: true
        case 0x2028, 0x2029: true
        case 0x200E, 0x200F, 0x202A...0x202E, 0x2066...0x2069: true
        default: false
        }
    }
}
