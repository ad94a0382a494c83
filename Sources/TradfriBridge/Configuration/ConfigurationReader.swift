import Yams

/// Typed reading of one YAML node, with errors that carry the file, line and dotted key path.
struct ConfigNode {
    let node: Node
    let key: String
    let file: String

    var line: Int? { node.mark.map { $0.line } }

    func error(_ message: String) -> ConfigurationError {
        ConfigurationError(file: file, line: line, key: key, message: message)
    }

    /// The members of a mapping. Unknown keys are an error that names them (and suggests the
    /// closest known key), so a typo never silently falls back to a default.
    func members(allowed: [String]) throws(ConfigurationError) -> [String: ConfigNode] {
        if case .scalar(let scalar) = node, scalar.string.isEmpty || scalar.string == "~" { return [:] }
        guard let mapping = node.mapping else { throw error("must be a mapping of keys to values") }
        var result: [String: ConfigNode] = [:]
        for (keyNode, valueNode) in mapping {
            guard let name = keyNode.string else {
                throw ConfigurationError(file: file, line: keyNode.mark?.line, key: key, message: "keys must be text")
            }
            let path = key.isEmpty ? name : "\(key).\(name)"
            guard allowed.contains(name) else {
                var message = "unknown key"
                if let suggestion = closest(to: name, in: allowed) { message += " (did you mean '\(suggestion)'?)" }
                message += "; known keys here: \(allowed.joined(separator: ", "))"
                throw ConfigurationError(file: file, line: keyNode.mark?.line, key: path, message: message)
            }
            guard result[name] == nil else {
                throw ConfigurationError(file: file, line: keyNode.mark?.line, key: path, message: "appears twice")
            }
            result[name] = ConfigNode(node: valueNode, key: path, file: file)
        }
        return result
    }

    var isNull: Bool {
        if case .scalar(let scalar) = node {
            return scalar.string.isEmpty || scalar.string == "~" || scalar.string == "null"
        }
        return false
    }

    func string() throws(ConfigurationError) -> String {
        guard case .scalar(let scalar) = node else { throw error("must be a text value") }
        return scalar.string
    }

    func optionalString() throws(ConfigurationError) -> String? {
        isNull ? nil : try string()
    }

    func int(in range: ClosedRange<Int>) throws(ConfigurationError) -> Int {
        guard case .scalar = node, let value = node.int else {
            throw error("must be a whole number between \(range.lowerBound) and \(range.upperBound)")
        }
        guard range.contains(value) else {
            throw error("\(value) is out of range (\(range.lowerBound)…\(range.upperBound))")
        }
        return value
    }

    func optionalInt(in range: ClosedRange<Int>) throws(ConfigurationError) -> Int? {
        isNull ? nil : try int(in: range)
    }

    func seconds(in range: ClosedRange<Double>) throws(ConfigurationError) -> Double {
        guard case .scalar = node, let value = node.float ?? node.int.map(Double.init) else {
            throw error("must be a number of seconds between \(range.lowerBound) and \(range.upperBound)")
        }
        guard range.contains(value) else {
            throw error("\(value) is out of range (\(range.lowerBound)…\(range.upperBound) seconds)")
        }
        return value
    }

    func bool() throws(ConfigurationError) -> Bool {
        guard case .scalar = node, let value = node.bool else { throw error("must be true or false") }
        return value
    }

    func oneOf(_ choices: [String]) throws(ConfigurationError) -> String {
        let value = try string()
        guard choices.contains(value) else {
            throw error("'\(value)' is not one of: \(choices.joined(separator: ", "))")
        }
        return value
    }

    /// The items of a list, each with the key path `<key>[<index>]` (counted from 0).
    func items() throws(ConfigurationError) -> [ConfigNode] {
        guard let sequence = node.sequence else { throw error("must be a list") }
        return sequence.enumerated().map { index, item in
            ConfigNode(node: item, key: "\(key)[\(index)]", file: file)
        }
    }

    func stringList() throws(ConfigurationError) -> [String] {
        if isNull { return [] }
        guard let sequence = node.sequence else { throw error("must be a list") }
        var result: [String] = []
        for item in sequence {
            guard case .scalar(let scalar) = item else {
                throw ConfigurationError(
                    file: file, line: item.mark?.line, key: key, message: "list items must be text")
            }
            result.append(scalar.string)
        }
        return result
    }

    private func closest(to name: String, in candidates: [String]) -> String? {
        let scored = candidates.map { ($0, editDistance(name, $0)) }.min { $0.1 < $1.1 }
        guard let (candidate, distance) = scored, distance <= max(2, name.count / 3) else { return nil }
        return candidate
    }
}

private func editDistance(_ a: String, _ b: String) -> Int {
    let a = Array(a), b = Array(b)
    guard !a.isEmpty else { return b.count }
    guard !b.isEmpty else { return a.count }
    var previous = Array(0...b.count)
    for i in 1...a.count {
        var current = [i] + Array(repeating: 0, count: b.count)
        for j in 1...b.count {
            current[j] = min(previous[j] + 1, current[j - 1] + 1, previous[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
        }
        previous = current
    }
    return previous[b.count]
}
