/// An HTTP request method. The common ones are cases so that classifying a request (read or
/// write, idempotent or not) is a switch, not a string comparison.
public enum RequestMethod: Hashable, Sendable, CustomStringConvertible {
    case get, head, post, put, delete, patch, options, connect, trace
    case other(String)

    public init(_ name: String) {
        switch name {
        case "GET": self = .get
        case "HEAD": self = .head
        case "POST": self = .post
        case "PUT": self = .put
        case "DELETE": self = .delete
        case "PATCH": self = .patch
        case "OPTIONS": self = .options
        case "CONNECT": self = .connect
        case "TRACE": self = .trace
        default: self = .other(name)
        }
    }

    public var description: String {
        switch self {
        case .get: "GET"
        case .head: "HEAD"
        case .post: "POST"
        case .put: "PUT"
        case .delete: "DELETE"
        case .patch: "PATCH"
        case .options: "OPTIONS"
        case .connect: "CONNECT"
        case .trace: "TRACE"
        case .other(let name): name
        }
    }

    /// Methods whose repetition has the same effect as one request (RFC 9110 §9.2.2) and that
    /// are also safe to replay on another server: a retry may resend only these.
    public var isIdempotentRead: Bool {
        switch self {
        case .get, .head, .options: true
        default: false
        }
    }
}
