/// The header names the gateway acts on, recognised once while parsing so that forwarding and
/// framing never compare names again.
public enum KnownHeader: UInt8 {
    case other
    case host
    case contentLength
    case transferEncoding
    case connection
    case keepAlive
    case te
    case trailer
    case upgrade
    case proxyConnection
    case expect
    case xForwardedFor
    case xForwardedHost
    case xForwardedProto
    case xRequestID
    case date
    case setCookie
    case cacheControl
    case etag
    case age
    /// Set by the gateway for the upstream; a client's own values are dropped.
    case xGatewayTarget
    case xGatewayRegion
    case origin
    case ifNoneMatch
    case ifModifiedSince
    case range
    case vary
    /// RFC 7239; believed (and forwarded) only from trusted proxies.
    case forwarded
    /// Where a bearer token is (auth reads it on every request of an `auth:` route).
    case authorization
    /// W3C Trace Context: continued or replaced by the gateway's own span.
    case traceparent
    case tracestate

    /// Hop-by-hop headers of RFC 9110 §7.6.1 (plus the legacy Proxy-Connection and Keep-Alive):
    /// meaningful for one connection only, never forwarded.
    public var isHopByHop: Bool {
        switch self {
        case .connection, .keepAlive, .te, .trailer, .transferEncoding, .upgrade, .proxyConnection:
            true
        default:
            false
        }
    }

    public static func classify(_ bytes: UnsafeRawBufferPointer, _ offset: Int, _ count: Int) -> KnownHeader {
        @inline(__always) func eq(_ literal: StaticString) -> Bool {
            ASCII.equalsLowercase(bytes, offset, count, literal)
        }
        switch count {
        case 2: return eq("te") ? .te : .other
        case 5: return eq("range") ? .range : .other
        case 9: return eq("forwarded") ? .forwarded : .other
        case 10 where eq("tracestate"): return .tracestate
        case 11: return eq("traceparent") ? .traceparent : .other
        case 3: return eq("age") ? .age : .other
        case 4:
            if eq("host") { return .host }
            if eq("date") { return .date }
            if eq("etag") { return .etag }
            if eq("vary") { return .vary }
            return .other
        case 6:
            if eq("expect") { return .expect }
            if eq("origin") { return .origin }
            return .other
        case 7:
            if eq("trailer") { return .trailer }
            if eq("upgrade") { return .upgrade }
            return .other
        case 10:
            if eq("connection") { return .connection }
            if eq("keep-alive") { return .keepAlive }
            if eq("set-cookie") { return .setCookie }
            return .other
        case 12: return eq("x-request-id") ? .xRequestID : .other
        case 13:
            if eq("cache-control") { return .cacheControl }
            if eq("if-none-match") { return .ifNoneMatch }
            if eq("authorization") { return .authorization }
            return .other
        case 14: return eq("content-length") ? .contentLength : .other
        case 15: return eq("x-forwarded-for") ? .xForwardedFor : .other
        case 16:
            if eq("x-forwarded-host") { return .xForwardedHost }
            if eq("proxy-connection") { return .proxyConnection }
            if eq("x-gateway-target") { return .xGatewayTarget }
            if eq("x-gateway-region") { return .xGatewayRegion }
            return .other
        case 17:
            if eq("transfer-encoding") { return .transferEncoding }
            if eq("x-forwarded-proto") { return .xForwardedProto }
            if eq("if-modified-since") { return .ifModifiedSince }
            return .other
        default:
            return .other
        }
    }
}

/// One header line of a parsed head, as offsets into the head's bytes (no copies).
public struct HeaderField {
    public var nameStart: Int32
    public var nameLength: Int32
    public var valueStart: Int32
    public var valueLength: Int32
    public var kind: KnownHeader
    /// Set for hop-by-hop headers and for the headers a `Connection` field names.
    public var hopByHop: Bool
}
