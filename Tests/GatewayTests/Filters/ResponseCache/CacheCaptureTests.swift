import Cache
import HTTPWire
import NIOCore
import Testing

@testable import Gateway

/// What a response must be for the cache to keep it, and what of it is kept (`CacheCapture`
/// over `CacheAdmission`'s RFC 9111 rules and the route's policy).
@Suite struct CacheCaptureTests {
    static func policy(shared: Bool = true, maxBody: Int = 1024, staleIfError: Int64 = 0) throws -> ResponseCachePolicy {
        ResponseCachePolicy(ttlMilliseconds: 60_000, staleWhileRevalidateMilliseconds: 0, staleIfErrorMilliseconds: staleIfError,
                            maxBody: maxBody, shared: shared, statuses: [200, 404], key: try CacheKeyTemplate("{path}", parameterNames: []))
    }

    static func capture(_ policy: ResponseCachePolicy, cors: Bool = false) -> CacheCapture {
        let request = CacheRequest(key: "/k", variant: "-", policy: policy, lookupOnly: false, revalidate: false, coalesces: true,
                                   requirement: .any)
        return CacheCapture(request: request, fetchStartedAt: 0, lsn: 7, routeHasCORS: cors)
    }

    let request = try! HeadWriterTests.parse("GET /k HTTP/1.1\r\nHost: api\r\nAccept-Language: de\r\n\r\n", .request)

    func admits(_ response: String, policy: ResponseCachePolicy? = nil) throws -> Bool {
        let head = try HeadWriterTests.parse(response, .response)
        return Self.capture(try policy ?? Self.policy()).admit(head, requestHead: request)
    }

    @Test func refusesWhatASharedCacheMustNotKeep() throws {
        #expect(try admits("HTTP/1.1 200 OK\r\nContent-Length: 1\r\n\r\n"))
        #expect(try admits("HTTP/1.1 404 Not Found\r\nContent-Length: 1\r\n\r\n"))
        #expect(try !admits("HTTP/1.1 500 Internal Server Error\r\nContent-Length: 1\r\n\r\n"))
        #expect(try !admits("HTTP/1.1 200 OK\r\nCache-Control: no-store\r\nContent-Length: 1\r\n\r\n"))
        #expect(try !admits("HTTP/1.1 200 OK\r\nCache-Control: private\r\nContent-Length: 1\r\n\r\n"))
        #expect(try admits("HTTP/1.1 200 OK\r\nCache-Control: private\r\nContent-Length: 1\r\n\r\n", policy: Self.policy(shared: false)))
        #expect(try !admits("HTTP/1.1 200 OK\r\nSet-Cookie: a=b\r\nContent-Length: 1\r\n\r\n"))
        #expect(try !admits("HTTP/1.1 200 OK\r\nVary: *\r\nContent-Length: 1\r\n\r\n"))
        #expect(try !admits("HTTP/1.1 200 OK\r\nContent-Length: 2048\r\n\r\n"))
        // Already stale by its own lifetime, with nothing to serve it stale for.
        #expect(try !admits("HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nContent-Length: 1\r\n\r\n"))
        #expect(try admits("HTTP/1.1 200 OK\r\nCache-Control: max-age=0\r\nContent-Length: 1\r\n\r\n", policy: Self.policy(staleIfError: 1000)))
    }

    @Test func keepsTheRepresentationNotTheMessage() throws {
        let capture = Self.capture(try Self.policy(), cors: true)
        let head = try HeadWriterTests.parse("HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 4\r\nDate: x\r\nAge: 3\r\n"
                                             + "X-Request-Id: up\r\nConnection: close\r\nAccess-Control-Allow-Origin: *\r\nETag: \"t\"\r\n"
                                             + "Vary: Accept-Language\r\n\r\n", .response)
        #expect(capture.admit(head, requestHead: request))
        #expect(capture.append(ByteBuffer(string: "da")) && capture.append(ByteBuffer(string: "ta")))
        let entry = try #require(capture.entry(now: 10_000))
        #expect(String(buffer: entry.headerBlock) == "Content-Type: text/plain\r\nETag: \"t\"\r\nVary: Accept-Language\r\n")
        #expect(String(buffer: entry.body) == "data")
        #expect(entry.etag == "\"t\"" && entry.lsn == 7 && entry.age(now: 10_000) == 3)
        #expect(entry.vary == [CachedResponse.VaryField(name: "accept-language", value: "de")])
        // Its Age used part of the route's 60 s.
        #expect(entry.freshUntil == 10_000 + 57_000)
    }

    @Test func aBodyPastMaxBodyIsNotKeptAndARetryStartsOver() throws {
        let capture = Self.capture(try Self.policy(maxBody: 4))
        let chunked = try HeadWriterTests.parse("HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n", .response)
        #expect(capture.admit(chunked, requestHead: request))
        #expect(capture.append(ByteBuffer(string: "1234")))
        #expect(!capture.append(ByteBuffer(string: "5")))
        #expect(capture.entry(now: 0) == nil)
        capture.abandonAttempt()
        #expect(capture.admit(chunked, requestHead: request))
        #expect(capture.append(ByteBuffer(string: "ok")))
        #expect(capture.entry(now: 0).map { String(buffer: $0.body) } == "ok")
    }
}
