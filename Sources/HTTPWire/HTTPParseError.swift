/// Why a message could not be parsed. Each case maps to the status the gateway answers a client
/// with; for upstream responses every case is a 502.
public enum HTTPParseError: Error, Equatable, CustomStringConvertible {
    case headTooLarge
    case tooManyHeaders
    case malformedStartLine
    case unsupportedVersion
    case malformedHeader
    case invalidContentLength
    /// Both Content-Length and Transfer-Encoding: the classic request-smuggling shape.
    case conflictingFraming
    case unsupportedTransferEncoding
    case invalidHost
    case malformedChunk
    case truncatedMessage

    /// The status a client gets for a request that failed with this error.
    public var requestStatus: Int {
        switch self {
        case .headTooLarge, .tooManyHeaders: 431
        case .unsupportedVersion: 505
        case .unsupportedTransferEncoding: 501
        default: 400
        }
    }

    public var description: String {
        switch self {
        case .headTooLarge: "request header section too large"
        case .tooManyHeaders: "too many header fields"
        case .malformedStartLine: "malformed start line"
        case .unsupportedVersion: "unsupported HTTP version"
        case .malformedHeader: "malformed header field"
        case .invalidContentLength: "invalid or conflicting Content-Length"
        case .conflictingFraming: "both Content-Length and Transfer-Encoding"
        case .unsupportedTransferEncoding: "unsupported transfer coding"
        case .invalidHost: "missing, repeated or malformed Host"
        case .malformedChunk: "malformed chunked body"
        case .truncatedMessage: "connection closed in the middle of a message"
        }
    }
}
