import Router
import Testing

@testable import Cache

@Suite struct DigestTests {
    @Test func knownAnswers() {
        #expect(Digest.hex(Digest.sha256(Array("abc".utf8))) == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        // RFC 4231, test case 2.
        #expect(Digest.hex(Digest.hmacSHA256(key: Array("Jefe".utf8), message: Array("what do ya want for nothing?".utf8)))
            == "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843")
        #expect(Digest.base64URL([0xfb, 0xff]) == "-_8")
        #expect(Digest.base64URL(Array("hello".utf8)) == "aGVsbG8")
        #expect(Digest.constantTimeEqual([1, 2], [1, 2]) && !Digest.constantTimeEqual([1, 2], [1, 3]) && !Digest.constantTimeEqual([1], [1, 2]))
    }
}

@Suite struct ConsistencyTokenTests {
    let codec = ConsistencyTokenCodec(secret: "shared by every instance")

    @Test func roundTrips() {
        let lsn = ConsistencyToken(requirement: .replayed(LSN(0x1_0000_2A00)), expires: 2000)
        #expect(codec.decode(codec.encode(lsn), now: 1000) == lsn)
        let pin = ConsistencyToken(requirement: .primaryUntil(1_700_000_000_123), expires: 2000)
        #expect(codec.decode(codec.encode(pin), now: 1000) == pin)
        #expect(codec.encode(lsn).hasPrefix("1.l.100002a00.2000."))
    }

    @Test func forgedExpiredAndMalformedTokensAreIgnored() {
        let token = codec.encode(ConsistencyToken(requirement: .replayed(LSN(500)), expires: 2000))
        #expect(codec.decode(token, now: 2000) == nil)  // expired
        // Another secret.
        #expect(ConsistencyTokenCodec(secret: "other").decode(token, now: 1000) == nil)
        // A raised LSN with the old MAC.
        var parts = token.split(separator: ".").map(String.init)
        parts[2] = "fffff"
        #expect(codec.decode(parts.joined(separator: "."), now: 1000) == nil)
        // A pushed expiry.
        parts = token.split(separator: ".").map(String.init)
        parts[3] = "999999999"
        #expect(codec.decode(parts.joined(separator: "."), now: 1000) == nil)
        for garbage in ["", "1.l.zz.2000.x", "2.l.1f4.2000." + parts[4], "1.l.1f4.2000", String(repeating: "a", count: 500)] {
            #expect(codec.decode(garbage, now: 1000) == nil)
        }
    }

    @Test func mergingKeepsTheStricter() {
        let early = ConsistencyToken(requirement: .replayed(LSN(10)), expires: 100)
        let late = ConsistencyToken(requirement: .replayed(LSN(20)), expires: 50)
        #expect(early.merged(with: late) == late)
        let pin = ConsistencyToken(requirement: .primaryUntil(5), expires: 100)
        #expect(early.merged(with: pin) == pin)
    }

    @Test func localStoreExpiresAndBoundsEntries() {
        let store = LocalConsistencyStore(shards: 2, maxEntries: 4)
        store.record(ConsistencyToken(requirement: .replayed(LSN(7)), expires: 100), for: "alice", now: 0)
        store.record(ConsistencyToken(requirement: .replayed(LSN(3)), expires: 100), for: "alice", now: 0)
        #expect(store.lookup("alice", now: 50)?.requirement == .replayed(LSN(7)))
        #expect(store.lookup("alice", now: 100) == nil)
        for i in 0..<50 { store.record(ConsistencyToken(requirement: .replayed(LSN(1)), expires: 100), for: "client-\(i)", now: 0) }
        #expect(store.count <= 4)
    }
}
