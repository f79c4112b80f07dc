/// `${VAR}` and `${VAR:-default}` in configuration values, read from the environment when the
/// file is loaded; `$$` is a literal `$`. A variable that is unset and has no default is an
/// error rather than an empty string, so a missing secret never becomes "no password".
struct EnvironmentExpansion {
    var environment: [String: String]

    enum Failure: Error, Equatable {
        case unset(String)
        case malformed
    }

    func expand(_ text: String) throws(Failure) -> String {
        guard text.contains("$") else { return text }
        var result = ""
        var rest = Substring(text)
        while let dollar = rest.firstIndex(of: "$") {
            result += rest[..<dollar]
            let afterDollar = rest.index(after: dollar)
            guard afterDollar < rest.endIndex else {
                result += "$"
                rest = rest[afterDollar...]
                break
            }
            switch rest[afterDollar] {
            case "$":
                result += "$"
                rest = rest[rest.index(after: afterDollar)...]
            case "{":
                guard let close = rest[afterDollar...].firstIndex(of: "}") else { throw .malformed }
                let inner = rest[rest.index(after: afterDollar)..<close]
                let name: Substring
                let fallback: Substring?
                if let separator = inner.range(of: ":-") {
                    name = inner[..<separator.lowerBound]
                    fallback = inner[separator.upperBound...]
                } else {
                    name = inner
                    fallback = nil
                }
                guard !name.isEmpty, name.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) else {
                    throw .malformed
                }
                if let value = environment[String(name)], !value.isEmpty || fallback == nil {
                    result += value
                } else if let fallback {
                    result += fallback
                } else {
                    throw .unset(String(name))
                }
                rest = rest[rest.index(after: close)...]
            default:
                result += "$"
                rest = rest[afterDollar...]
            }
        }
        result += rest
        return result
    }
}
