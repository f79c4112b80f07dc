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
    private(set) var collecting = false
    /// Set once the coalescer has been told (exactly once per leading fetch).
    var finished = false
    private var status = 0
    private var headerBlock = ByteBuffer()
    private var body = ByteBuffer()
    private var etag: String?
    private var vary: [CachedResponse.VaryField] = []
    private var ttlMilliseconds: Int64 = 0
    private var initialAge: Int64 = 0

    init(request: CacheRequest, fetchStartedAt: Int64, lsn: UInt64, routeHasCORS: Bool) {
        self.request = request
        self.fetchStartedAt = fetchStartedAt
        self.lsn = lsn
        self.routeHasCORS = routeHasCORS
    }

    /// Decides at the response head; true when the response will be stored.
    func admit(_ response: HTTPHead, requestHead: HTTPHead) -> Bool {
        var varyNames: [String] = []
        for field in response.fields where field.kind == .vary {
            varyNames += response.value(of: field).split(separator: ",").map { $0.trimmingSpaces().lowercased() }.filter { !$0.isEmpty }
        }
        let age = response.firstValue(.age).flatMap { Int64($0.trimmingSpaces()) }
        let facts = CacheAdmission.Response(
            status: response.status, cacheControl: CacheControl(response.combinedValue(.cacheControl)),
            hasSetCookie: response.firstField(.setCookie) != nil, vary: varyNames,
            contentLength: response.contentLength, age: age)
        guard case .store(let ttl) = CacheAdmission.decide(facts, policy: request.policy) else { return false }
        status = response.status
        body = ByteBuffer()
        ttlMilliseconds = ttl
        initialAge = max(0, age ?? 0)
        etag = response.firstValue(.etag)
        vary = varyNames.map { CachedResponse.VaryField(name: $0, value: requestHead.firstValue(named: $0)) }
        headerBlock = ByteBuffer()
        for field in response.fields where !field.hopByHop {
            switch field.kind {
            case .contentLength, .transferEncoding, .setCookie, .date, .age, .xRequestID:
                continue
            default:
                let name = response.name(of: field)
                if routeHasCORS, name.lowercased().hasPrefix("access-control-") { continue }
                headerBlock.writeString(name)
                headerBlock.writeStaticString(": ")
                headerBlock.writeString(response.value(of: field))
                headerBlock.writeStaticString("\r\n")
            }
        }
        collecting = true
        return true
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
    func finish(succeeded: Bool, loop: LoopContext) {
        guard !finished else { return }
        finished = true
        let coalescer = loop.runtime.cache?.store.coalescer
        let id = request.coalesceID
        let now = CacheRuntime.unixMilliseconds()
        guard succeeded, let cache = loop.runtime.cache, let entry = entry(now: now) else {
            if let id { coalescer?.finish(id, entry: nil) }
            return
        }
        cache.store.store(entry, key: request.key, variant: request.variant, fetchStartedAt: fetchStartedAt, now: now,
                          on: loop.eventLoop, client: loop.redis)
            .assumeIsolated()
            .whenComplete { result in
                switch result {
                case .success(true): loop.cacheStats.stored &+= 1
                case .success(false): loop.cacheStats.storeRefused &+= 1
                case .failure: loop.cacheStats.storeFailed &+= 1
                }
                if let id { coalescer?.finish(id, entry: (try? result.get()) == true ? entry : nil) }
            }
    }

    /// The entry, once the whole body is in.
    func entry(now: Int64) -> CachedResponse? {
        guard collecting else { return nil }
        let policy = request.policy
        let freshUntil = now + ttlMilliseconds
        return CachedResponse(
            status: status, headerBlock: headerBlock, body: body, etag: etag, storedAt: now, initialAge: initialAge,
            freshUntil: freshUntil, staleWhileRevalidateUntil: freshUntil + policy.staleWhileRevalidateMilliseconds,
            staleIfErrorUntil: freshUntil + policy.staleIfErrorMilliseconds, lsn: lsn, vary: vary)
    }
}
