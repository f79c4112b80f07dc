import NIOCore
import Testing

@testable import Cache

/// The cache's pure parts, with explicit times.
@Suite struct ResponseCacheUnitTests {
    struct Inputs: CacheKeyInputs {
        var parameters: [Substring] = []
        var path: Substring = "/api/subscriptions/42"
        var query: Substring = "page=2&sort=name&flag"
        var host = "API.example.com"
        var headers: [String: String] = ["accept-language": "de"]
        func pathParameter(_ index: Int) -> Substring? { index < parameters.count ? parameters[index] : nil }
        func header(_ lowercasedName: String) -> String? { headers[lowercasedName] }
    }

    @Test func cacheControlDirectives() {
        let response = CacheControl("public, max-age=60, s-maxage=\"300\", stale-while-revalidate=5")
        #expect(response.isPublic && response.maxAge == 60 && response.sMaxAge == 300 && !response.noStore)
        let privateFields = CacheControl("private=\"Set-Cookie\", no-cache")
        #expect(privateFields.isPrivate && privateFields.noCache)
        #expect(CacheControl("NO-STORE").noStore)
        #expect(CacheControl("max-age=abc").maxAge == 0, "a malformed age makes it stale, not fresh")
        #expect(CacheControl(nil) == CacheControl())
    }

    @Test func keyTemplates() throws {
        let template = try CacheKeyTemplate("sub:{user}:{query.page}:{header.Accept-Language}", parameterNames: ["user"])
        #expect(template.render(Inputs(parameters: ["42"])) == "sub:42:2:de")
        let whole = try CacheKeyTemplate(CacheKeyTemplate.defaultText, parameterNames: [])
        #expect(whole.render(Inputs()) == "api.example.com/api/subscriptions/42?page=2&sort=name&flag")
        #expect(CacheKeyTemplate.queryValue("flag", in: "page=2&flag") == "")
        #expect(CacheKeyTemplate.queryValue("missing", in: "page=2") == nil)
        #expect(throws: CacheKeyTemplate.TemplateError.self) { try CacheKeyTemplate("sub:{usr}", parameterNames: ["user"]) }
        #expect(throws: CacheKeyTemplate.TemplateError.self) { try CacheKeyTemplate("sub:{user", parameterNames: ["user"]) }
    }

    static func entry(body: String = "{\"plan\":\"pro\"}", storedAt: Int64 = 1_000_000, ttl: Int64 = 60_000, lsn: UInt64 = 0) -> CachedResponse {
        CachedResponse(
            status: 200, headerBlock: ByteBuffer(string: "Content-Type: application/json\r\nETag: \"v1\"\r\n"),
            body: ByteBuffer(string: body), etag: "\"v1\"", storedAt: storedAt, initialAge: 3,
            freshUntil: storedAt + ttl, staleWhileRevalidateUntil: storedAt + ttl + 30_000, staleIfErrorUntil: storedAt + ttl + 300_000,
            lsn: lsn, vary: [.init(name: "accept-encoding", value: "gzip"), .init(name: "accept-language", value: nil)])
    }

    @Test func entriesRoundTripAndForeignBytesAreMisses() {
        var binary = Self.entry()
        binary.body = ByteBuffer(bytes: (0...255).map { UInt8($0) })
        binary.etag = nil
        #expect(CachedResponse(decoding: binary.encoded()) == binary)
        #expect(CachedResponse(decoding: Self.entry().encoded()) == Self.entry())
        #expect(CachedResponse(decoding: ByteBuffer(string: "{\"plan\":\"pro\"}")) == nil)
        var truncated = Self.entry().encoded()
        truncated.moveWriterIndex(to: truncated.writerIndex - 1)
        #expect(CachedResponse(decoding: truncated) == nil)
    }

    @Test func freshnessAgeAndVary() {
        let entry = Self.entry()
        #expect(entry.freshness(now: 1_000_000) == .fresh)
        #expect(entry.freshness(now: 1_060_000) == .staleWhileRevalidate)
        #expect(entry.freshness(now: 1_090_000) == .staleIfError)
        #expect(entry.freshness(now: 1_360_000) == .expired)
        #expect(entry.age(now: 1_010_500) == 13)  // 3 s from the origin + 10 s here
        #expect(entry.matchesVary { ["accept-encoding": "gzip"][$0] })
        #expect(!entry.matchesVary { ["accept-encoding": "br"][$0] })
        #expect(!entry.matchesVary { ["accept-encoding": "gzip", "accept-language": "de"][$0] })
    }

    @Test func tombstonesRefuseWhatMayPredateTheWrite() {
        let tombstone = Tombstone(lsn: 0x500, notBefore: 10_000, until: 70_000)
        #expect(Tombstone(encoded: tombstone.encoded) == tombstone)
        #expect(tombstone.encoded == "0000000000000500:10000:70000")
        #expect(!tombstone.admits(lsn: 0x600, fetchStartedAt: 9_999, now: 20_000), "fetched before the invalidation")
        #expect(!tombstone.admits(lsn: 0x4FF, fetchStartedAt: 10_001, now: 20_000), "from a replica behind the write")
        #expect(tombstone.admits(lsn: 0x500, fetchStartedAt: 10_001, now: 20_000))
        #expect(tombstone.admits(lsn: 0, fetchStartedAt: 0, now: 70_000), "expired")
    }

    @Test func localStoreEvictsLeastRecentlyUsedWithinItsBytes() {
        let store = LocalResponseStore(maxBytes: 64 * 1024, shardCount: 1)
        let body = String(repeating: "x", count: 10_000)
        for i in 0..<6 {
            store.store(Self.entry(body: body), key: "k\(i)", variant: "-", fetchStartedAt: 0, now: 1_000_000)
        }
        // Touch k0: it becomes the most recently used.
        #expect(store.lookup("k0", variant: "-", now: 1_000_000) != nil)
        store.store(Self.entry(body: body), key: "k6", variant: "-", fetchStartedAt: 0, now: 1_000_000)
        #expect(store.totals.bytes <= 64 * 1024)
        #expect(store.lookup("k0", variant: "-", now: 1_000_000) != nil)
        #expect(store.lookup("k1", variant: "-", now: 1_000_000) == nil, "the least recently used went first")
        #expect(store.lookup("k6", variant: "-", now: 1_000_000) != nil)
        // Past its stale windows an entry with a validator is kept for revalidation, for an
        // hour past its freshness; past that it is gone.
        #expect(store.lookup("k6", variant: "-", now: 2_000_000) != nil)
        #expect(store.lookup("k6", variant: "-", now: 1_060_000 + CachedResponse.revalidationWindowMilliseconds) == nil)
    }

    @Test func invalidationDropsEveryVariantAndLeavesATombstone() {
        let store = LocalResponseStore(maxBytes: 1 << 20)
        store.store(Self.entry(), key: "sub:1", variant: "alice", fetchStartedAt: 0, now: 1_000_000)
        store.store(Self.entry(), key: "sub:1", variant: "bob", fetchStartedAt: 0, now: 1_000_000)
        store.invalidate(["sub:1"], tombstone: Tombstone(lsn: 0, notBefore: 1_000_100, until: 1_060_000), now: 1_000_100)
        #expect(store.lookup("sub:1", variant: "alice", now: 1_000_100) == nil)
        #expect(store.lookup("sub:1", variant: "bob", now: 1_000_100) == nil)
        // A fetch that began before the invalidation is refused; one after it is stored.
        let late = store.store(Self.entry(), key: "sub:1", variant: "alice", fetchStartedAt: 1_000_050, now: 1_000_200)
        let fresh = store.store(Self.entry(), key: "sub:1", variant: "alice", fetchStartedAt: 1_000_150, now: 1_000_200)
        #expect(!late && fresh)
    }

    @Test func oneLeaderManyWaiters() {
        let coalescer = CacheCoalescer()
        let received = CallbackBox([CachedResponse?]())
        let id = CacheCoalescer.id(key: "k", variant: "-")
        #expect(coalescer.lead(id, orWait: nil))
        for _ in 0..<100 {
            let joined = coalescer.lead(id, orWait: CacheCoalescer.Waiter { entry in received.value.append(entry) })
            #expect(!joined)
        }
        coalescer.finish(id, entry: Self.entry())
        #expect(received.value.count == 100 && received.value.allSatisfy { $0 == Self.entry() })
        #expect(coalescer.inFlightCount == 0)
        #expect(coalescer.lead(id, orWait: nil), "a new fetch can lead once the last one finished")
    }
}

/// A box for results of callbacks that run synchronously in the test.
final class CallbackBox<T>: @unchecked Sendable {
    var value: T
    init(_ value: T) { self.value = value }
}

/// Keys that cannot collide, whatever clients send (issue 13: Host poisoning).
@Suite struct CacheKeyEscapingTests {
    struct Inputs: CacheKeyInputs {
        var parameters: [Substring] = []
        var path: Substring = "/"
        var query: Substring = ""
        var host = "api"
        var headers: [String: String] = [:]
        func pathParameter(_ index: Int) -> Substring? { index < parameters.count ? parameters[index] : nil }
        func header(_ lowercasedName: String) -> String? { headers[lowercasedName] }
    }

    @Test func valuesAreEscapedToTheirKind() throws {
        let template = try CacheKeyTemplate("t:{header.X-Tenant}{path}", parameterNames: [])
        // A header that carries a path separator cannot shift the boundary with the path.
        let a = template.render(Inputs(path: "/c", headers: ["x-tenant": "a/b"]))
        let b = template.render(Inputs(path: "/b/c", headers: ["x-tenant": "a"]))
        #expect(a == "t:a%2Fb/c" && b == "t:a/b/c" && a != b)
        // `%` is escaped too, so an escape in a value is not confused with a character.
        #expect(template.render(Inputs(path: "/c", headers: ["x-tenant": "a%2Fb"])) == "t:a%252Fb/c")
        let params = try CacheKeyTemplate("{id}|{query.page}", parameterNames: ["id"])
        #expect(params.render(Inputs(parameters: ["a b:c"], query: "page=x&y")) == "a%20b:c|x")
        // The default key keeps readable paths and queries.
        let whole = try CacheKeyTemplate(CacheKeyTemplate.defaultText, parameterNames: [])
        #expect(whole.render(Inputs(path: "/api/users/42", query: "a=1&b=/x?", host: "API.example.com"))
                == "api.example.com/api/users/42?a=1&b=/x?")
    }

    @Test func templatesWhosePlaceholdersCouldTradeCharactersAreRefused() {
        for ambiguous in ["{a}{b}", "{a}-{b}", "{a}:{b}", "{path}{query}", "{header.x}{header.y}", "{host}{a}", "{a}%{b}"] {
            #expect(throws: CacheKeyTemplate.TemplateError.self, "\(ambiguous)") {
                try CacheKeyTemplate(ambiguous, parameterNames: ["a", "b"])
            }
        }
        for fine in [CacheKeyTemplate.defaultText, "{host}/api/users/{a}?", "sub:{a}:{query.page}:{header.Accept-Language}",
                     "{a}/{b}", "{a}|{b}", "{header.x}:{header.y}", "{host}{path}"] {
            #expect(throws: Never.self, "\(fine)") { try CacheKeyTemplate(fine, parameterNames: ["a", "b"]) }
        }
    }
}
