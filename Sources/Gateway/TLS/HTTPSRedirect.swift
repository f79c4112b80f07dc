import HTTPWire

/// The answer of a `redirect_https` listener: the same URL on HTTPS. 301 for GET and HEAD (what
/// browsers and nginx's `return 301 https://$host$request_uri` use); 308 for other methods, so
/// a client repeats its POST with the same method and body rather than turning it into a GET.
enum HTTPSRedirect {
    static func response(for head: HTTPHead, port: Int, requestID: RequestID) -> LocalResponse {
        guard let host = head.host, let location = location(host: host, port: port, target: head.target) else {
            return LocalResponse.error(400, "a Host is needed to redirect to HTTPS", requestID: requestID, errorKind: "bad_request")
        }
        let status = head.method == .get || head.method == .head ? 301 : 308
        return LocalResponse(status: status, headers: [("Location", location)])
    }

    /// `https://HOST[:PORT]TARGET`, the host without the port it came with; the target in
    /// origin form (an absolute-form target loses its scheme and authority).
    static func location(host: String, port: Int, target: String) -> String? {
        var name = Substring(host)
        if name.hasPrefix("[") {
            guard let close = name.firstIndex(of: "]") else { return nil }
            name = name[...close]
        } else if let colon = name.lastIndex(of: ":") {
            name = name[..<colon]
        }
        guard !name.isEmpty else { return nil }
        var path = Substring(target)
        if !path.hasPrefix("/") {
            // http://authority/path?query → /path?query
            guard let scheme = path.range(of: "://") else { return nil }
            let rest = path[scheme.upperBound...]
            path = rest.firstIndex(where: { $0 == "/" || $0 == "?" }).map { rest[$0...] } ?? "/"
            if path.hasPrefix("?") { path = "/" + path }
        }
        return "https://" + name + (port == 443 ? "" : ":\(port)") + path
    }
}
