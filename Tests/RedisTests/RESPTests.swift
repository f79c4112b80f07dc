import NIOCore
import Testing

@testable import Redis

/// hiredis's formatter and reader as the client uses them, without a server.
@Suite struct RESPTests {
    @Test func commandsAreFormattedBinarySafe() {
        let binary = ByteBuffer(bytes: [0, 13, 10, 255])
        let command = RedisCommand("SET", "k y", .bytes(binary))
        var expected = ByteBuffer(string: "*3\r\n$3\r\nSET\r\n$3\r\nk y\r\n$4\r\n")
        expected.writeBytes([0, 13, 10, 255])
        expected.writeString("\r\n")
        #expect(command.encoded == expected)
        #expect(command.name == "SET")
        #expect(RedisCommand("PING").encoded == ByteBuffer(string: "*1\r\n$4\r\nPING\r\n"))
        #expect(RedisCommand("GET", "").encoded == ByteBuffer(string: "*2\r\n$3\r\nGET\r\n$0\r\n\r\n"))
    }

    @Test func repliesOfEveryTypeAcrossPartialReads() throws {
        let reader = RESPReader()
        var wire = ByteBuffer(string: "+OK\r\n-ERR wrong\r\n:42\r\n$-1\r\n*-1\r\n$4\r\n")
        wire.writeBytes([0, 255, 13, 10])
        wire.writeString("\r\n*3\r\n:1\r\n*1\r\n$1\r\nx\r\n$0\r\n\r\n")
        // One byte at a time: a reply is only complete when its last byte is in.
        var replies: [RedisValue] = []
        for byte in wire.readableBytesView {
            try reader.feed(ByteBuffer(bytes: [byte]))
            while let reply = try reader.next() { replies.append(reply) }
        }
        #expect(replies == [
            .status("OK"), .error("ERR wrong"), .integer(42), .null, .null,
            .bulk(ByteBuffer(bytes: [0, 255, 13, 10])),
            .array([.integer(1), .array([.bulk(ByteBuffer(string: "x"))]), .bulk(ByteBuffer())]),
        ])
        #expect(try reader.next() == nil)
    }

    @Test func garbageIsAProtocolError() throws {
        let reader = RESPReader()
        try reader.feed(ByteBuffer(string: "?what\r\n"))
        #expect(throws: RedisError.self) { try reader.next() }
    }

    @Test func urls() throws {
        let plain = try RedisURL("redis://127.0.0.1:6380/2")
        #expect(plain.host == "127.0.0.1" && plain.port == 6380 && plain.database == 2 && plain.password == nil)
        let auth = try RedisURL("redis://app:p%40ss@cache.internal")
        #expect(auth.user == "app" && auth.password == "p@ss" && auth.port == 6379 && auth.database == 0)
        #expect(auth.description == "redis://app:***@cache.internal:6379/0")
        let passwordOnly = try RedisURL("redis://:secret@[::1]:7000/")
        #expect(passwordOnly.user == nil && passwordOnly.password == "secret" && passwordOnly.host == "::1" && passwordOnly.port == 7000)
        let secure = try RedisURL("rediss://:token@cache.example.com:6380")
        #expect(secure.tls && !plain.tls && secure.port == 6380 && secure.password == "token")
        #expect(secure.description == "rediss://:***@cache.example.com:6380/0")
        for bad in ["http://x", "redis+tls://x:6379", "rediss://", "redis://", "redis://h:0", "redis://h:99999", "redis://h/x"] {
            #expect(throws: RedisURL.ParseError.self, "\(bad)") { try RedisURL(bad) }
        }
    }

    @Test func scriptsAreNamedByTheirSHA1() {
        // sha1("return 1"), as `SCRIPT LOAD "return 1"` answers.
        #expect(RedisScript("return 1").sha1 == "e0e1f9fabfc9d4800c877a703b823ac0578ff8db")
    }
}

/// The breaker with an injected clock.
@Suite struct CircuitBreakerTests {
    let ms: Int64 = 1_000_000

    @Test func opensAfterTheThresholdAndProbesAfterTheCoolDown() {
        var breaker = CircuitBreaker(settings: .init(threshold: 3, baseOpenNanoseconds: 500 * ms, maxOpenNanoseconds: 2000 * ms))
        var steps: [Bool] = []
        steps.append(breaker.permit(now: 0))
        steps.append(breaker.recordFailure(now: 0))
        steps.append(breaker.recordFailure(now: 1))
        steps.append(breaker.recordFailure(now: 2))  // the third opens it
        #expect(steps == [true, false, false, true])
        #expect(breaker.state == .open(until: 2 + 500 * ms))
        let early = breaker.permit(now: 400 * ms)
        // Past the cool-down one probe goes, the rest still fail fast.
        let probe = breaker.permit(now: 600 * ms)
        let second = breaker.permit(now: 601 * ms)
        #expect(!early && probe && !second)
        // The probe fails: open again, for twice as long, then capped at 2 s.
        let reopened = breaker.recordFailure(now: 700 * ms)
        #expect(reopened && breaker.state == .open(until: 1700 * ms))
        let probe2 = breaker.permit(now: 1700 * ms)
        let reopened2 = breaker.recordFailure(now: 1700 * ms)
        #expect(probe2 && reopened2 && breaker.state == .open(until: 3700 * ms))
        let probe3 = breaker.permit(now: 3700 * ms)
        let closed = breaker.recordSuccess()
        #expect(probe3 && closed && breaker.state == .closed && breaker.openings == 0)
        // A success in between resets the count.
        breaker.recordFailure(now: 0)
        breaker.recordFailure(now: 0)
        breaker.recordSuccess()
        let opened = breaker.recordFailure(now: 0)
        #expect(!opened && breaker.isClosed)
    }
}
