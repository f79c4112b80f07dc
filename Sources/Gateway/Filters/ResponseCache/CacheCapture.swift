import Cache
import HTTPWire
import NIOCore

/// A response being copied into the cache while it streams to the client: decided on at its
/// head (RFC 9111 storability and the route's policy), then its body collected up to
/// `max_body`.
final class CacheCapture {
    let request: CacheRequest
    let fetchStartedAt: Int64
    /// The serving database's position at the fetch (0: unknown).
    let lsn: UInt64
    /// The route applies its own CORS policy: the upstream's CORS headers are not kept.
    let routeHasCORS: Bool
    /// `cache.control_header`, lowercased: directives for this cache only, never stored.
    let controlHeader: String
    private(set) var collecting = false
    /// Set once the coalescer has been told (exactly once per leading fetch).
    var finished = false
    private var status = 0
    private var headerBlock = ByteBuffer()
    private var body = ByteBuffer()
    private var etag: String?
    private var date: String?
    private var lastModified: String?
    private var vary: [CachedResponse.VaryField] = []
    private var lifetimes = CacheAdmission.Lifetimes(freshMilliseconds: 0, staleWhileRevalidateMilliseconds: 0, staleIfErrorMilliseconds: 0,
                                                    mustRevalidate: false, authorizedUse: false)
    private var initialAge: Int64 = 0

    init(request: CacheRequest, fetchStartedAt: Int64, lsn: UInt64, routeHasCORS: Bool, controlHeader: String = "gateway-cache-control") {
        self.request = request
        self.fetchStartedAt = fetchStartedAt
        self.lsn = lsn
        self.routeHasCORS = routeHasCORS
        self.controlHeader = controlHeader
    }

    /// What RFC 9111 and RFC 9213 let this cache read off a response head.
    static func facts(of response: HTTPHead, status: Int, requestHead: HTTPHead, controlHeader: String) -> CacheAdmission.Response {
        var varyNames: [String] = []
        for field in response.fields where field.kind == .vary {
            varyNames += response.value(of: field).split(separator: ",").map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        }
        // The field aimed at this cache wins, then the one for CDNs, then everyone's.
        let control = response.firstValue(named: controlHeader) ?? response.firstValue(named: "cdn-cache-control")
            ?? response.combinedValue(.cacheControl)
        let lastModified = response.firstValue(named: "last-modified")
        return CacheAdmission.Response(
            status: status, cacheControl: CacheControl(control), hasSetCookie: response.firstField(.setCookie) != nil, vary: varyNames,
            contentLength: response.contentLength, age: age(response.firstValue(.age)), date: response.firstValue(.date),
            expires: response.firstValue(named: "expires"), lastModified: lastModified,
            hasValidator: response.firstField(.etag) != nil || lastModified != nil,
            requestHadAuthorization: requestHead.firstValue(named: "authorization") != nil)
    }

    /// `Age` as RFC 9111 §5.1 reads it: the first member of a list; anything but a
    /// non-negative integer is ignored.
    static func age(_ value: String?) -> Int64? {
        guard let first = value?.split(separator: ",").first else { return nil }
        return Int64(first.trimmingSpaces()).flatMap { $0 >= 0 ? $0 : nil }
    }

    /// Decides at the response head; true when the response will be stored.
    func admit(_ response: HTTPHead, requestHead: HTTPHead) -> Bool {
        let facts = Self.facts(of: response, status: response.status, requestHead: requestHead, controlHeader: controlHeader)
        guard case .store(let lifetimes) = CacheAdmission.decide(facts, policy: request.policy, now: CacheRuntime.unixMilliseconds() / 1000)
        else { return false }
        status = response.status
        body = ByteBuffer()
        self.lifetimes = lifetimes
        initialAge = facts.age ?? 0
        etag = response.firstValue(.etag)
        date = facts.date
        lastModified = facts.lastModified
        vary = facts.vary.map { CachedResponse.VaryField(name: $0, value: requestHead.firstValue(named: $0)) }
        headerBlock = Self.storedFields(of: response, routeHasCORS: routeHasCORS, controlHeader: controlHeader)
        collecting = true
        return true
    }

    /// The end-to-end fields an entry replays: not the message's own (framing, Date, Age, the
    /// request ID, cookies), not the directives meant for this cache, and not the upstream's
    /// CORS fields where the route applies its own.
    static func storedFields(of response: HTTPHead, routeHasCORS: Bool, controlHeader: String) -> ByteBuffer {
        var block = ByteBuffer()
        for field in response.fields where !field.hopByHop {
            switch field.kind {
            case .contentLength, .transferEncoding, .setCookie, .date, .age, .xRequestID:
                continue
            default:
                let name = response.name(of: field)
                let lowercased = name.lowercased()
                if lowercased == controlHeader { continue }
                if routeHasCORS, lowercased.hasPrefix("access-control-") { continue }
                block.writeString(name)
                block.writeStaticString(": ")
                block.writeString(response.value(of: field))
                block.writeStaticString("\r\n")
            }
        }
        return block
    }

    /// Returns false (and stops collecting) past `max_body`.
    func append(_ part: ByteBuffer) -> Bool {
        guard collecting else { return false }
        guard body.readableBytes + part.readableBytes <= request.policy.maxBody else {
            collecting = false
            body = ByteBuffer()
            return false
        }
        var part = part
        body.writeBuffer(&part)
        return true
    }

    /// The attempt failed and another server will be tried: its response decides afresh.
    func abandonAttempt() {
        collecting = false
        body = ByteBuffer()
    }

    /// The fetch is over: a complete response is stored, and the requests waiting for it get
    /// it if it was (one refused by a newer invalidation may predate a write: they fetch anew).
    func finish(succeeded: Bool, loop: LoopContext, generation: LoopGeneration) {
        guard !finished else { return }
        finished = true
        let coalescer = generation.runtime.cache?.store.coalescer
        let id = request.coalesceID
        let now = CacheRuntime.unixMilliseconds()
        guard succeeded, generation.runtime.cache != nil, let entry = entry(now: now) else {
            if let id { coalescer?.finish(id, entry: nil) }
            return
        }
        deliver(entry, loop: loop, generation: generation)
    }

    private func deliver(_ entry: CachedResponse, loop: LoopContext, generation: LoopGeneration) {
        guard let cache = generation.runtime.cache else { return }
        let coalescer = cache.store.coalescer
        let id = request.coalesceID
        let now = CacheRuntime.unixMilliseconds()
        cache.store.store(entry, key: request.key, variant: request.variant, fetchStartedAt: fetchStartedAt, now: now,
                          on: loop.eventLoop, client: generation.redis)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(true): loop.cacheStats.stored &+= 1
                case .success(false): loop.cacheStats.storeRefused &+= 1
                case .failure: loop.cacheStats.storeFailed &+= 1
                }
                if let id { coalescer.finish(id, entry: (try? result.get()) == true ? entry : nil) }
            }
    }

    /// Stores an entry made otherwise (a revalidated one) as this fetch's result.
    func store(_ entry: CachedResponse, loop: LoopContext, generation: LoopGeneration) {
        guard !finished else { return }
        finished = true
        collecting = false
        deliver(entry, loop: loop, generation: generation)
    }

    /// The entry, once the whole body is in.
    func entry(now: Int64) -> CachedResponse? {
        guard collecting else { return nil }
        var entry = CachedResponse(
            status: status, headerBlock: headerBlock, body: body, etag: etag, storedAt: now, initialAge: initialAge,
            freshUntil: now, staleWhileRevalidateUntil: now, staleIfErrorUntil: now, lsn: lsn, vary: vary,
            date: date, lastModified: lastModified)
        entry.apply(lifetimes, storedAt: now, initialAge: initialAge)
        return entry
    }
}
