import Foundation
import Yams

/// Reads a configuration file: YAML → node tree (keeping line numbers) → `${VAR}` expansion →
/// strict decoding → whole-file validation. Every failure becomes a `ConfigError` that names
/// the file, the line and the key.
public enum ConfigLoader {
    public static func load(
        path: String, environment: [String: String] = ProcessInfo.processInfo.environment
    ) throws(ConfigError) -> GatewayConfig {
        let text: String
        do {
            text = try String(contentsOfFile: path, encoding: .utf8)
        } catch {
            throw ConfigError(file: path, key: "", message: "cannot read the file (\(error.localizedDescription))")
        }
        return try parse(yaml: text, file: path, environment: environment,
                         directory: URL(fileURLWithPath: path).deletingLastPathComponent().path)
    }

    /// - Parameter directory: what relative file names in the config (certificates) are
    ///   relative to; the working directory when nil.
    public static func parse(
        yaml: String, file: String = "<config>", environment: [String: String] = [:], directory: String? = nil
    ) throws(ConfigError) -> GatewayConfig {
        let root: Node
        do {
            guard let composed = try Yams.compose(yaml: yaml) else {
                throw ConfigError(file: file, key: "", message: "the file is empty")
            }
            root = composed
        } catch let error as ConfigError {
            throw error
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw ConfigError(file: file, key: "", message: "\(error)")
        }
        guard case .mapping = root else {
            throw ConfigError(file: file, line: root.mark?.line, column: root.mark?.column, key: "",
                              message: "the top level must be a mapping of keys (listen:, pools:, ...)")
        }

        let expanded = try expandEnvironment(root, path: [], file: file, environment: environment)

        var config: GatewayConfig
        do {
            config = try YAMLDecoder().decode(GatewayConfig.self, from: expanded)
        } catch let error as DecodingError {
            throw decodingError(error, root: expanded, file: file)
        } catch let error as YamlError {
            throw yamlError(error, file: file)
        } catch {
            throw ConfigError(file: file, key: "", message: "\(error)")
        }
        do {
            try config.validate()
            let warnings = try config.loadTLS(directory: directory ?? FileManager.default.currentDirectoryPath)
                + config.auth.loadKeys(directory: directory ?? FileManager.default.currentDirectoryPath)
            config.warnings = warnings.map { located(path: $0.path, message: $0.message, root: expanded, file: file) }
        } catch {
            throw located(path: error.path, message: error.message, root: expanded, file: file)
        }
        return config
    }

    // MARK: Environment

    private static func expandEnvironment(
        _ node: Node, path: [ConfigPathComponent], file: String, environment: [String: String]
    ) throws(ConfigError) -> Node {
        switch node {
        case .scalar(var scalar):
            do {
                let expanded = try EnvironmentExpansion(environment: environment).expand(scalar.string)
                if expanded != scalar.string { scalar.string = expanded }
            } catch .unset(let name) {
                throw ConfigError(file: file, line: scalar.mark?.line, column: scalar.mark?.column,
                                  key: ConfigPathComponent.render(path),
                                  message: "environment variable \(name) is not set (write ${\(name):-default} for a default)")
            } catch {
                throw ConfigError(file: file, line: scalar.mark?.line, column: scalar.mark?.column,
                                  key: ConfigPathComponent.render(path), message: "malformed ${...} reference")
            }
            return .scalar(scalar)
        case .mapping(let mapping):
            var pairs: [(Node, Node)] = []
            for (key, value) in mapping {
                let keyPath = path + [.key(key.string ?? "?")]
                pairs.append((key, try expandEnvironment(value, path: keyPath, file: file, environment: environment)))
            }
            return .mapping(Node.Mapping(pairs, mapping.tag, mapping.style, mapping.mark))
        case .sequence(let sequence):
            var nodes: [Node] = []
            for (index, value) in sequence.enumerated() {
                nodes.append(try expandEnvironment(value, path: path + [.index(index)], file: file, environment: environment))
            }
            return .sequence(Node.Sequence(nodes, sequence.tag, sequence.style, sequence.mark))
        case .alias:
            return node
        }
    }

    // MARK: Locating errors

    private static func decodingError(_ error: DecodingError, root: Node, file: String) -> ConfigError {
        let path: [any CodingKey]
        let message: String
        switch error {
        case .typeMismatch(let type, let context):
            path = context.codingPath
            message = "expected \(describe(type))"
        case .valueNotFound(let type, let context):
            path = context.codingPath
            message = "expected \(describe(type)), found nothing"
        case .keyNotFound(let key, let context):
            path = context.codingPath
            message = "missing required key '\(key.stringValue)'"
        case .dataCorrupted(let context):
            path = context.codingPath
            message = context.debugDescription
        @unknown default:
            path = []
            message = "\(error)"
        }
        return located(path: path.map(ConfigPathComponent.init), message: message, root: root, file: file)
    }

    private static func describe(_ type: Any.Type) -> String {
        switch type {
        case is String.Type: "a string"
        case is Int.Type: "an integer"
        case is Bool.Type: "true or false"
        case is Double.Type: "a number"
        default:
            "\(type)".hasPrefix("Array") ? "a list" : (("\(type)".hasPrefix("Dictionary") || "\(type)".contains("Keyed")) ? "a mapping" : "a value of type \(type)")
        }
    }

    /// Finds the node at `path` (or its deepest existing ancestor) for its line and column; a
    /// path ending at a mapping key points at the key itself.
    static func located(path: [ConfigPathComponent], message: String, root: Node, file: String) -> ConfigError {
        var node = root
        var mark = root.mark
        for component in path {
            switch (component, node) {
            case (.key(let key), .mapping(let mapping)):
                guard let pair = mapping.first(where: { $0.key.string == key }) else { break }
                mark = pair.key.mark ?? pair.value.mark
                node = pair.value
                continue
            case (.index(let index), .sequence(let sequence)) where index < sequence.count:
                node = sequence[index]
                mark = node.mark
                continue
            default:
                break
            }
            break
        }
        return ConfigError(file: file, line: mark?.line, column: mark?.column,
                           key: ConfigPathComponent.render(path), message: message)
    }

    private static func yamlError(_ error: YamlError, file: String) -> ConfigError {
        switch error {
        case .scanner(_, let problem, let mark, _), .parser(_, let problem, let mark, _), .composer(_, let problem, let mark, _):
            return ConfigError(file: file, line: mark.line, column: mark.column, key: "", message: "YAML syntax: \(problem)")
        case .duplicatedKeysInMapping(let duplicates, let context):
            return ConfigError(file: file, line: context.mark.line, column: context.mark.column,
                               key: duplicates.joined(separator: ", "), message: "duplicated key")
        default:
            return ConfigError(file: file, key: "", message: "YAML: \(error)")
        }
    }
}
