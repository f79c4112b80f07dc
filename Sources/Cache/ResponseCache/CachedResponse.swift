import NIOCore

/// A stored response: status, the header lines to replay, the body, and when it stops being
/// fresh and usable stale. Times are Unix milliseconds (wall clock: entries are shared by
/// gateway instances through Redis).
public struct CachedResponse: Sendable, Equatable {
    public var status: Int
    /// `Name: value\r\n` lines, end-to-end headers only (no hop-by-hop, Set-Cookie, Date, Age,
    /// Content-Length or framing headers: those are made per response).
    public var headerBlock: ByteBuffer
    public var body: ByteBuffer
    public var etag: String?
    public var storedAt: Int64
    /// The origin's own `Age` when it was stored, in seconds.
    public var initialAge: Int64
    public var freshUntil: Int64
    public var staleWhileRevalidateUntil: Int64
    public var staleIfErrorUntil: Int64
    /// The WAL position the content is known to reflect (the serving database's last probed
    /// position; 0 when unknown). A read that must see a later write cannot use the entry.
    public var lsn: UInt64
    /// The request headers the response varies on, with the values it was made for.
    public var vary: [VaryField]
    /// The origin's `Date` (served as it was, RFC 9111 §4) and its validators.
    public var date: String?
    public var lastModified: String?
    /// Never served stale (`must-revalidate` and friends).
    public var mustRevalidate: Bool
    /// May answer requests with `Authorization` on a shared route.
    public var authorizedUse: Bool

    /// It can be revalidated with a conditional request.
    public var hasValidator: Bool { etag != nil || lastModified != nil }

    public struct VaryField: Sendable, Equatable {
        public var name: String
        public var value: String?
        public init(name: String, value: String?) {
            self.name = name
            self.value = value
        }
    }

    public enum Freshness: Sendable, Equatable {
        case fresh
        /// Past its TTL but within `stale_while_revalidate`: served while one refresh runs.
        case staleWhileRevalidate
        /// Only usable if the upstream fails (`stale_if_error`).
        case staleIfError
        case expired
    }

    public init(status: Int, headerBlock: ByteBuffer, body: ByteBuffer, etag: String?, storedAt: Int64, initialAge: Int64,
                freshUntil: Int64, staleWhileRevalidateUntil: Int64, staleIfErrorUntil: Int64, lsn: UInt64, vary: [VaryField],
                date: String? = nil, lastModified: String? = nil, mustRevalidate: Bool = false, authorizedUse: Bool = false) {
        self.date = date
        self.lastModified = lastModified
        self.mustRevalidate = mustRevalidate
        self.authorizedUse = authorizedUse
        self.status = status
        self.headerBlock = headerBlock
        self.body = body
        self.etag = etag
        self.storedAt = storedAt
        self.initialAge = initialAge
        self.freshUntil = freshUntil
        self.staleWhileRevalidateUntil = staleWhileRevalidateUntil
        self.staleIfErrorUntil = staleIfErrorUntil
        self.lsn = lsn
        self.vary = vary
    }

    public func freshness(now: Int64) -> Freshness {
        if now < freshUntil { return .fresh }
        if now < staleWhileRevalidateUntil { return .staleWhileRevalidate }
        if now < staleIfErrorUntil { return .staleIfError }
        return .expired
    }

    /// When nothing is left to use it for: its stale windows, and for an entry with a
    /// validator an hour more, in which a request revalidates it (a 304 instead of a body).
    public var usableUntil: Int64 {
        let windows = max(freshUntil, staleWhileRevalidateUntil, staleIfErrorUntil)
        return hasValidator ? max(windows, freshUntil + Self.revalidationWindowMilliseconds) : windows
    }

    public static let revalidationWindowMilliseconds: Int64 = 3_600_000

    /// Stored (or refreshed by a 304) at `now` with these lifetimes: the one place an entry's
    /// windows are derived from what admission decided.
    public mutating func apply(_ lifetimes: CacheAdmission.Lifetimes, storedAt now: Int64, initialAge: Int64) {
        storedAt = now
        self.initialAge = initialAge
        freshUntil = now + lifetimes.freshMilliseconds
        staleWhileRevalidateUntil = freshUntil + lifetimes.staleWhileRevalidateMilliseconds
        staleIfErrorUntil = freshUntil + lifetimes.staleIfErrorMilliseconds
        mustRevalidate = lifetimes.mustRevalidate
        authorizedUse = lifetimes.authorizedUse
    }

    /// The `Age` header value (RFC 9111 §4.2.3).
    public func age(now: Int64) -> Int64 { initialAge + max(0, now - storedAt) / 1000 }

    /// Bytes it takes in memory (for the in-process store's bound).
    public var size: Int { headerBlock.readableBytes + body.readableBytes + 128 + vary.reduce(0) { $0 + $1.name.utf8.count + ($1.value?.utf8.count ?? 0) } }

    /// Whether the request's values of the Vary headers are those the response was made for.
    public func matchesVary(_ header: (String) -> String?) -> Bool {
        vary.allSatisfy { header($0.name) == $0.value }
    }

    // MARK: Wire format (what goes into Redis)

    static let magic: UInt32 = 0x4757_4332  // "GWC2" (entries of other versions are misses)

    public func encoded() -> ByteBuffer {
        var out = ByteBuffer()
        out.reserveCapacity(64 + headerBlock.readableBytes + body.readableBytes)
        out.writeInteger(Self.magic)
        out.writeInteger(UInt16(status))
        for value in [storedAt, initialAge, freshUntil, staleWhileRevalidateUntil, staleIfErrorUntil] { out.writeInteger(value) }
        out.writeInteger(lsn)
        Self.writeString(etag, into: &out)
        Self.writeString(date, into: &out)
        Self.writeString(lastModified, into: &out)
        out.writeInteger(UInt8((mustRevalidate ? 1 : 0) | (authorizedUse ? 2 : 0)))
        out.writeInteger(UInt16(vary.count))
        for field in vary {
            Self.writeString(field.name, into: &out)
            Self.writeString(field.value, into: &out)
        }
        out.writeInteger(UInt32(headerBlock.readableBytes))
        out.writeImmutableBuffer(headerBlock)
        out.writeInteger(UInt32(body.readableBytes))
        out.writeImmutableBuffer(body)
        return out
    }

    /// nil for anything that is not an entry this version wrote (a foreign or corrupt value is
    /// a miss, never an error).
    public init?(decoding input: ByteBuffer) {
        var buffer = input
        guard buffer.readInteger(as: UInt32.self) == Self.magic,
              let status = buffer.readInteger(as: UInt16.self),
              let storedAt = buffer.readInteger(as: Int64.self),
              let initialAge = buffer.readInteger(as: Int64.self),
              let freshUntil = buffer.readInteger(as: Int64.self),
              let swr = buffer.readInteger(as: Int64.self),
              let sie = buffer.readInteger(as: Int64.self),
              let lsn = buffer.readInteger(as: UInt64.self),
              let etag = Self.readString(&buffer),
              let date = Self.readString(&buffer),
              let lastModified = Self.readString(&buffer),
              let flags = buffer.readInteger(as: UInt8.self),
              let varyCount = buffer.readInteger(as: UInt16.self)
        else { return nil }
        var vary: [VaryField] = []
        for _ in 0..<varyCount {
            guard let name = Self.readString(&buffer), let value = Self.readString(&buffer), let name else { return nil }
            vary.append(VaryField(name: name, value: value))
        }
        guard let headerLength = buffer.readInteger(as: UInt32.self), let headerBlock = buffer.readSlice(length: Int(headerLength)),
              let bodyLength = buffer.readInteger(as: UInt32.self), let body = buffer.readSlice(length: Int(bodyLength)),
              buffer.readableBytes == 0
        else { return nil }
        self.init(status: Int(status), headerBlock: headerBlock, body: body, etag: etag, storedAt: storedAt, initialAge: initialAge,
                  freshUntil: freshUntil, staleWhileRevalidateUntil: swr, staleIfErrorUntil: sie, lsn: lsn, vary: vary,
                  date: date, lastModified: lastModified, mustRevalidate: flags & 1 != 0, authorizedUse: flags & 2 != 0)
    }

    /// Length-prefixed; 0xFFFF for nil.
    private static func writeString(_ text: String?, into out: inout ByteBuffer) {
        guard let text else {
            out.writeInteger(UInt16.max)
            return
        }
        let bytes = Array(text.utf8.prefix(Int(UInt16.max) - 1))
        out.writeInteger(UInt16(bytes.count))
        out.writeBytes(bytes)
    }

    /// `.some(nil)` for a stored nil; nil when the buffer is short.
    private static func readString(_ buffer: inout ByteBuffer) -> String?? {
        guard let length = buffer.readInteger(as: UInt16.self) else { return nil }
        if length == UInt16.max { return .some(nil) }
        guard let text = buffer.readString(length: Int(length)) else { return nil }
        return .some(text)
    }
}

/// What an invalidation leaves behind: until `until`, responses fetched before `notBefore`, or
/// from a database that had not replayed the write's position, cannot be stored (they may
/// predate the write).
public struct Tombstone: Sendable, Equatable {
    /// The write's WAL position (0 when unknown).
    public var lsn: UInt64
    /// Unix milliseconds: fetches that started before this may predate the write.
    public var notBefore: Int64
    /// Unix milliseconds: after this the tombstone refuses nothing.
    public var until: Int64

    public init(lsn: UInt64, notBefore: Int64, until: Int64) {
        self.lsn = lsn
        self.notBefore = notBefore
        self.until = until
    }

    /// Whether a response fetched at `fetchStartedAt` reflecting `lsn` may be stored at `now`.
    public func admits(lsn entryLSN: UInt64, fetchStartedAt: Int64, now: Int64) -> Bool {
        now >= until || (entryLSN >= lsn && fetchStartedAt > notBefore)
    }

    /// `LSNHEX16:NOTBEFORE:UNTIL`; the LSN has a fixed width so Lua compares it as a string.
    public var encoded: String {
        let hex = String(lsn, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex + ":" + String(notBefore) + ":" + String(until)
    }

    public init?(encoded text: String) {
        let parts = text.split(separator: ":")
        guard parts.count == 3, let lsn = UInt64(parts[0], radix: 16), let at = Int64(parts[1]), let until = Int64(parts[2]) else { return nil }
        self.init(lsn: lsn, notBefore: at, until: until)
    }

    /// An entry's LSN in the same fixed-width form.
    public static func hex(_ lsn: UInt64) -> String {
        let hex = String(lsn, radix: 16)
        return String(repeating: "0", count: 16 - hex.count) + hex
    }
}
