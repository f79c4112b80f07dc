import Testing

@testable import Router

struct Headers: RequestHeaders {
    var fields: [String: String] = [:]
    func firstValue(named name: String) -> String? { fields[name.lowercased()] }
}

func pattern(_ text: String) -> PathPattern { try! PathPattern(text) }

@Suite struct PathPatternTests {
    @Test func parsing() throws {
        #expect(try PathPattern("/api/users/{id}").segments == [.literal("api"), .literal("users"), .parameter("id")])
        #expect(try PathPattern("/a/*/b/**").segments == [.literal("a"), .anySegment, .literal("b"), .rest])
        #expect(throws: PathPattern.ParseError.mustStartWithSlash) { try PathPattern("api") }
        #expect(throws: PathPattern.ParseError.restNotLast) { try PathPattern("/a/**/b") }
        #expect(throws: PathPattern.ParseError.badParameter("x{id}")) { try PathPattern("/x{id}") }
        #expect(throws: PathPattern.ParseError.duplicateParameter("id")) { try PathPattern("/{id}/{id}") }
    }

    @Test func matching() {
        #expect(pattern("/api/users/{id}").match(NormalizedPath("/api/users/42?x=1")) == ["42"])
        #expect(pattern("/api/users/{id}").match(NormalizedPath("/api/users")) == nil)
        #expect(pattern("/api/users/{id}").match(NormalizedPath("/api/users/42/more")) == nil)
        #expect(pattern("/api/auth/**").match(NormalizedPath("/api/auth")) == [])
        #expect(pattern("/api/auth/**").match(NormalizedPath("/api/auth/login/x")) == [])
        #expect(pattern("/a/*/c").match(NormalizedPath("/a/b/c")) == [])
        #expect(pattern("/").match(NormalizedPath("/")) == [])
    }

    @Test func normalizationDefeatsBypasses() {
        func segments(_ path: String) -> [String] { NormalizedPath(path).segments.map(String.init) }
        #expect(segments("/api//auth/login/") == ["api", "auth", "login"])
        #expect(segments("/api/x/../auth/./login") == ["api", "auth", "login"])
        #expect(segments("/api/%61uth/login") == ["api", "auth", "login"])
        #expect(segments("/../../etc") == ["etc"])
        // An encoded slash is data, not a separator.
        #expect(segments("/files/a%2fb") == ["files", "a%2Fb"])
        #expect(segments("/v1.2/x..y/...") == ["v1.2", "x..y", "..."])
    }

    @Test func escapedSlashesAreFoundWhereverTheyAre() {
        for path in ["/a%2fb", "/a%2Fb", "%5c", "/x/%5C", "/%%2F", "/%2f%"] {
            #expect(NormalizedPath.hasEscapedSlash(path[...]), "\(path)")
        }
        for path in ["", "%", "%2", "/a%2", "/a%25", "/a%20b%", "/%3F", "/plain/path"] {
            #expect(!NormalizedPath.hasEscapedSlash(path[...]), "\(path)")
        }
        // Within a longer string, only the slice counts.
        let text = "/ok?q=%2F"
        #expect(!NormalizedPath.hasEscapedSlash(text[..<text.firstIndex(of: "?")!]))
    }
}

@Suite struct RouteTableTests {
    @Test func firstMatchWinsAcrossShapes() {
        let table = RouteTable([
            .init(pattern: pattern("/api/auth/**")),
            .init(pattern: pattern("/api/users/{id}"), conditions: .init(methods: [.get])),
            .init(pattern: pattern("/api/users/me")),
            .init(pattern: pattern("/api/users/{id}")),
            .init(pattern: pattern("/api/**")),
        ])
        func match(_ method: RequestMethod, _ path: String) -> Int? {
            table.match(path: NormalizedPath(path), method: method, host: nil, headers: Headers())?.index
        }
        #expect(match(.post, "/api/auth/login") == 0)
        #expect(match(.get, "/api/users/me") == 1)  // earlier route wins over the more specific one
        #expect(match(.put, "/api/users/me") == 2)
        #expect(match(.put, "/api/users/7") == 3)
        #expect(match(.get, "/api/other/deep/path") == 4)
        #expect(match(.get, "/elsewhere") == nil)
        let users = table.match(path: NormalizedPath("/api/users/7"), method: .get, host: nil, headers: Headers())!
        #expect(table.parameters(of: users, path: NormalizedPath("/api/users/7")) == ["7"])
    }

    @Test func hostAndHeaderConditions() {
        let table = RouteTable([
            .init(pattern: pattern("/**"), conditions: .init(hosts: [HostPattern("*.mobile.example")])),
            .init(pattern: pattern("/**"), conditions: .init(headers: [HeaderCondition(name: "x-client", value: "web")])),
            .init(pattern: pattern("/**"), conditions: .init(headers: [HeaderCondition(name: "x-beta", value: nil)])),
            .init(pattern: pattern("/**"), conditions: .init(hosts: [HostPattern("API.example.com")])),
        ])
        func match(host: String?, _ headers: [String: String] = [:]) -> Int? {
            table.match(path: NormalizedPath("/x"), method: .get, host: host, headers: Headers(fields: headers))?.index
        }
        #expect(match(host: "eu.mobile.example:8443") == 0)
        #expect(match(host: "mobile.example") == nil)
        #expect(match(host: "x", ["x-client": "web"]) == 1)
        #expect(match(host: "x", ["x-client": "app"]) == nil)
        #expect(match(host: "x", ["x-beta": "anything"]) == 2)
        #expect(match(host: "api.EXAMPLE.com:80") == 3)
    }

    /// The trie gives the same answer as trying each route in order, on random tables.
    @Test func trieAgreesWithLinearScan() {
        var random = Xorshift(seed: 42)
        let words = ["api", "users", "auth", "v1", "x"]
        func word() -> String { words[random.below(words.count)] }
        for _ in 0..<200 {
            var entries: [RouteTable.Entry] = []
            for _ in 0..<(1 + random.below(12)) {
                var text = ""
                for _ in 0..<(random.below(4)) {
                    switch random.below(4) {
                    case 0: text += "/{p\(random.below(1000))}"
                    case 1: text += "/*"
                    default: text += "/" + word()
                    }
                }
                if random.below(3) == 0 { text += "/**" }
                let methods: Set<RequestMethod>? = random.below(3) == 0 ? [.get] : nil
                entries.append(.init(pattern: (try? PathPattern(text.isEmpty ? "/" : text)) ?? pattern("/"), conditions: .init(methods: methods)))
            }
            let table = RouteTable(entries)
            for _ in 0..<20 {
                let path = "/" + (0..<random.below(5)).map { _ in word() }.joined(separator: "/")
                let method: RequestMethod = random.below(2) == 0 ? .get : .post
                let normalized = NormalizedPath(path)
                let linear = entries.firstIndex {
                    $0.pattern.match(normalized) != nil && ($0.conditions.methods?.contains(method) ?? true)
                }
                #expect(table.match(path: normalized, method: method, host: nil, headers: Headers())?.index == linear,
                        "\(entries.map(\.pattern.text)) \(method) \(path)")
            }
        }
    }
}

@Suite struct CORSPolicyTests {
    let web = CORSPolicy(name: "web", allowOrigins: ["https://app.example.com", "https://*.preview.example.com"],
                         allowMethods: [.get, .put, .post], allowHeaders: ["Content-Type", "Authorization"],
                         exposeHeaders: ["X-Request-Id"], allowCredentials: true, maxAgeSeconds: 600)

    @Test func origins() {
        #expect(web.allows(origin: "https://app.example.com"))
        #expect(web.allows(origin: "https://pr-12.preview.example.com"))
        #expect(!web.allows(origin: "https://preview.example.com"))
        #expect(!web.allows(origin: "http://app.example.com"))
        #expect(!web.allows(origin: "https://evil.example"))
        #expect(!web.allows(origin: "https://app.example.com.evil.example"))
    }

    @Test func preflight() {
        guard case .allowed(let headers) = web.preflight(origin: "https://app.example.com", requestMethod: "PUT",
                                                          requestHeaders: "content-type, authorization") else {
            Issue.record("refused")
            return
        }
        let map = Dictionary(headers, uniquingKeysWith: { a, _ in a })
        #expect(map["Access-Control-Allow-Origin"] == "https://app.example.com")
        #expect(map["Access-Control-Allow-Credentials"] == "true")
        #expect(map["Access-Control-Allow-Methods"] == "GET, PUT, POST")
        #expect(map["Access-Control-Allow-Headers"] == "content-type, authorization")
        #expect(map["Access-Control-Max-Age"] == "600")
        #expect(web.preflight(origin: "https://evil.example", requestMethod: "GET", requestHeaders: nil) == .refused)
        #expect(web.preflight(origin: "https://app.example.com", requestMethod: "DELETE", requestHeaders: nil) == .refused)
        #expect(web.preflight(origin: "https://app.example.com", requestMethod: "GET", requestHeaders: "x-secret") == .refused)
    }

    @Test func actualResponses() {
        #expect(web.responseHeaders(origin: "https://evil.example").isEmpty)
        let headers = Dictionary(web.responseHeaders(origin: "https://app.example.com"), uniquingKeysWith: { a, _ in a })
        #expect(headers["Access-Control-Allow-Origin"] == "https://app.example.com")
        #expect(headers["Access-Control-Expose-Headers"] == "X-Request-Id")
        #expect(headers["Vary"] == "Origin")
        let open = CORSPolicy(name: "open", allowOrigins: ["*"], allowMethods: [.get], allowHeaders: [], exposeHeaders: [],
                              allowCredentials: false, maxAgeSeconds: nil)
        #expect(open.responseHeaders(origin: "https://any.example").first?.1 == "*")
    }
}
