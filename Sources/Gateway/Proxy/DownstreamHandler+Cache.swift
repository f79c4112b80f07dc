import Cache
import HTTPWire
import NIOCore
import Router

/// The response cache on the request path: lookup (in-process, then Redis), hits and stale
/// answers written straight from the entry, coalesced misses, stale-if-error.
extension DownstreamHandler {
    /// What the cache makes of a cached route's GET or HEAD; nil when it must be bypassed.
    func cacheRequest(_ head: HTTPHead, client: IPAddress?, decision: Router.Decision, policy: ResponseCachePolicy,
                      hasBody: Bool) -> CacheRequest? {
        // A body, or a part of the resource: not what an entry holds.
        if hasBody || head.firstField(.range) != nil { return nil }
        let variant: String
        if policy.shared {
            variant = "-"
        } else {
            guard let identity = runtime.identity.identity(of: head, client: client?.description ?? peerText) else { return nil }
            variant = identity
        }
        let path = NormalizedPath(head.path)
        let inputs = RequestKeyInputs(head: head, path: path, parameters: runtime.router.parameters(of: decision, path: path))
        let control = CacheControl(head.combinedValue(.cacheControl))
        let pragmaNoCache = head.firstValue(named: "pragma")?.lowercased().contains("no-cache") ?? false
        return CacheRequest(
            key: policy.key.render(inputs), variant: variant, policy: policy, lookupOnly: head.method == .head,
            revalidate: control.noCache || (pragmaNoCache && head.firstField(.cacheControl) == nil),
            coalesces: decision.requirement == .any, requirement: decision.requirement)
    }

    /// Looks in this process first, then in Redis (parking the request meanwhile).
    func lookUpCache(_ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        guard let cache = runtime.cache, let request = start.cache else { return continueToUpstream(start, decision, routed) }
        if request.revalidate { return missed(start, decision, routed) }
        let now = CacheRuntime.unixMilliseconds()
        if let entry = cache.store.lookupLocal(request.key, variant: request.variant, now: now) {
            return answer(from: entry, start, decision, routed, now: now)
        }
        guard cache.store.usesRedis else { return missed(start, decision, routed) }
        // An open circuit fails the lookup at once (no I/O), and lets a trial through now and
        // then: that is how the cache comes back.
        guard let redis = loop.redis else { return bypass(start, decision, routed) }
        parked = true
        cache.store.lookupRedis(request.key, variant: request.variant, client: redis, now: now)
            .assumeIsolated()
            .whenComplete { result in
                self.parked = false
                guard self.state == .open else { return }
                switch result {
                case .success(let entry?): self.answer(from: entry, start, decision, routed, now: CacheRuntime.unixMilliseconds())
                case .success(nil): self.missed(start, decision, routed)
                case .failure: self.bypass(start, decision, routed)
                }
                self.pumpRequest()
                self.flushClient()
            }
    }

    /// Redis cannot answer: the request goes upstream as if there were no cache.
    private func bypass(_ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        loop.cacheStats.bypasses &+= 1
        var start = start
        // Nothing is stored either: Redis is failing, and the in-process near cache must only
        // hold what Redis has.
        start.cache = start.cache.map { request in
            CacheRequest(key: request.key, variant: request.variant, policy: request.policy, lookupOnly: true, revalidate: false,
                         coalesces: false, requirement: request.requirement, label: "BYPASS")
        }
        continueToUpstream(start, decision, routed)
    }

    private func answer(from entry: CachedResponse, _ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request, now: Int64) {
        guard let request = start.cache, entry.matchesVary({ start.head.firstValue(named: $0) }), request.accepts(entry) else {
            return missed(start, decision, routed)
        }
        switch entry.freshness(now: now) {
        case .fresh:
            loop.cacheStats.hits &+= 1
            serveFromCache(entry, start, decision: decision, label: "HIT", now: now)
        case .staleWhileRevalidate:
            loop.cacheStats.stale &+= 1
            serveFromCache(entry, start, decision: decision, label: "STALE", now: now)
            refresh(request, start.head, routed)
        case .staleIfError:
            var start = start
            start.cache?.staleFallback = entry
            missed(start, decision, routed)
        case .expired:
            missed(start, decision, routed)
        }
    }

    /// Not in the cache (or not usable): lead the fetch, or wait for the one in flight.
    private func missed(_ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        guard let cache = runtime.cache, let request = start.cache else { return continueToUpstream(start, decision, routed) }
        guard request.coalesces, !request.lookupOnly, !request.revalidate else {
            loop.cacheStats.misses &+= 1
            return continueToUpstream(start, decision, routed)
        }
        let id = CacheCoalescer.id(key: request.key, variant: request.variant)
        let eventLoop = loop.eventLoop
        let resume = NIOLoopBound({ (entry: CachedResponse?) in self.coalesced(entry, start, decision, routed) }, eventLoop: eventLoop)
        let waiter = CacheCoalescer.Waiter { entry in
            eventLoop.execute { resume.value(entry) }
        }
        if cache.store.coalescer.lead(id, orWait: waiter) {
            loop.cacheStats.misses &+= 1
            var start = start
            start.cache?.coalesceID = id
            return continueToUpstream(start, decision, routed)
        }
        parked = true
        // nginx's proxy_cache_lock_timeout: past it, go upstream alone.
        eventLoop.scheduleTask(in: cache.lockTimeout) { waiter.finish(nil) }
    }

    /// The fetch this request waited for is done: its entry, or upstream alone.
    private func coalesced(_ entry: CachedResponse?, _ start: PendingStart, _ decision: Router.Decision, _ routed: Router.Request) {
        parked = false
        guard state == .open else { return }
        let now = CacheRuntime.unixMilliseconds()
        if let entry, entry.freshness(now: now) != .expired, entry.matchesVary({ start.head.firstValue(named: $0) }) {
            loop.cacheStats.coalesced &+= 1
            serveFromCache(entry, start, decision: decision, label: "HIT", now: now)
        } else {
            loop.cacheStats.misses &+= 1
            continueToUpstream(start, decision, routed)
        }
        pumpRequest()
        flushClient()
    }

    /// Answers from an entry: the stored head and body, `Age`, this request's ID and CORS
    /// headers; `304` when the client's `If-None-Match` names the entry's ETag.
    func serveFromCache(_ entry: CachedResponse, _ start: PendingStart, decision: Router.Decision?, label: String, now: Int64) {
        guard state == .open, context != nil else { return }
        let head = start.head
        let notModified = entry.etag.map { etag in Self.ifNoneMatch(head.firstValue(.ifNoneMatch), matches: etag) } ?? false
        let close = !head.keepAlive || inputClosed || loop.draining
        writeCached(entry, head: head, requestID: start.requestID, label: label, notModified: notModified,
                    addedHeaders: start.addedHeaders, rateLimit: start.rateLimit, close: close, now: now)
        if notModified { loop.cacheStats.notModified &+= 1 }
        let status = notModified ? 304 : entry.status
        let nanoseconds = (NIODeadline.now() - start.now).nanoseconds
        loop.requestStats[runtime.pools.count + 1].record(status: status, nanoseconds: nanoseconds)
        if let logger = runtime.accessLogger {
            logger.info("request", metadata: [
                "method": .string(head.method.description),
                "path": .string(head.target),
                "status": .stringConvertible(status),
                "pool": "cache",
                "server": "-",
                "cache": .string(label),
                "duration_ms": .string(Self.milliseconds(nanoseconds)),
                "bytes_in": "0",
                "bytes_out": .stringConvertible(notModified || head.method == .head ? 0 : entry.body.readableBytes),
                "client": .string(clientText),
                "request_id": .stringConvertible(start.requestID),
            ])
        }
        if close {
            closeAfterResponse(linger: false)
        } else {
            arm(.keepalive, runtime.timeouts.keepalive)
        }
    }

    private func writeCached(_ entry: CachedResponse, head: HTTPHead, requestID: RequestID, label: String, notModified: Bool,
                             addedHeaders: [(String, String)], rateLimit: RateLimitFields?, close: Bool, now: Int64) {
        let sendBody = !notModified && head.method != .head
        beginClientWrite(minimumCapacity: entry.headerBlock.readableBytes + 256 + (sendBody && entry.body.readableBytes <= Self.coalesceLimit ? entry.body.readableBytes : 0))
        let status = notModified ? 304 : entry.status
        clientPending.writeStaticString("HTTP/1.1 ")
        clientPending.writeString(String(status))
        clientPending.writeStaticString(" ")
        clientPending.writeString(StatusReason.phrase(status))
        clientPending.writeStaticString("\r\nDate: ")
        clientPending.writeString(loop.dateCache.current())
        clientPending.writeStaticString("\r\n")
        if notModified {
            Self.writeValidatorFields(of: entry.headerBlock, into: &clientPending)
        } else {
            clientPending.writeImmutableBuffer(entry.headerBlock)
            clientPending.writeStaticString("Content-Length: ")
            clientPending.writeString(String(entry.body.readableBytes))
            clientPending.writeStaticString("\r\n")
        }
        clientPending.writeStaticString("Age: ")
        clientPending.writeString(String(entry.age(now: now)))
        clientPending.writeStaticString("\r\nX-Request-Id: ")
        requestID.write(into: &clientPending)
        clientPending.writeStaticString("\r\n")
        if let rateLimit {
            clientPending.writeWithUnsafeMutableBytes(minimumWritableBytes: rateLimit.length) { memory in
                var w = RawHeadWriter(memory)
                rateLimit.write(into: &w)
                return w.count
            }
        }
        for (name, value) in addedHeaders {
            clientPending.writeString(name)
            clientPending.writeStaticString(": ")
            clientPending.writeString(value)
            clientPending.writeStaticString("\r\n")
        }
        if runtime.config.debugHeaders {
            clientPending.writeStaticString("X-Cache: ")
            clientPending.writeString(label)
            clientPending.writeStaticString("\r\n")
        }
        if close {
            clientPending.writeStaticString("Connection: close\r\n")
        } else if head.minorVersion == 0 {
            clientPending.writeStaticString("Connection: keep-alive\r\n")
        }
        clientPending.writeStaticString("\r\n")
        if sendBody { writeToClient(entry.body) }
    }

    /// A 304 carries the fields a 200 would have that describe the stored representation
    /// (RFC 9110 §15.4.5), not its content fields.
    private static func writeValidatorFields(of block: ByteBuffer, into out: inout ByteBuffer) {
        let keep: Set<String> = ["cache-control", "content-location", "etag", "expires", "vary", "last-modified"]
        for line in String(buffer: block).split(separator: "\r\n") {
            guard let colon = line.firstIndex(of: ":"), keep.contains(line[..<colon].lowercased()) else { continue }
            out.writeString(String(line))
            out.writeStaticString("\r\n")
        }
    }

    /// `If-None-Match` against an entity tag, by weak comparison (RFC 9110 §13.1.2).
    static func ifNoneMatch(_ header: String?, matches etag: String) -> Bool {
        guard let header else { return false }
        func opaque(_ tag: Substring) -> Substring { tag.hasPrefix("W/") ? tag.dropFirst(2) : tag }
        let stored = opaque(Substring(etag.trimmingSpaces()))
        for candidate in header.split(separator: ",") {
            let tag = Substring(candidate.trimmingSpaces())
            if tag == "*" || opaque(tag) == stored { return true }
        }
        return false
    }

    /// The upstream failed (or could not be reached) and an entry within `stale_if_error` is
    /// at hand: it answers instead of the error.
    func serveStaleIfError(_ request: CacheRequest?, head: HTTPHead, requestID: RequestID, addedHeaders: [(String, String)],
                           rateLimit: RateLimitFields?,
                           startedAt: NIODeadline = .now(), now: Int64 = CacheRuntime.unixMilliseconds()) -> Bool {
        guard let request, let entry = request.staleFallback, entry.freshness(now: now) != .expired else { return false }
        loop.cacheStats.staleIfError &+= 1
        var start = PendingStart(head: head, requestID: requestID, hasBody: false, now: startedAt, addedHeaders: addedHeaders,
                                 appliesCORS: !addedHeaders.isEmpty, readYourWrites: nil, cache: request)
        start.rateLimit = rateLimit
        serveFromCache(entry, start, decision: nil, label: "STALE", now: now)
        return true
    }

    /// Stale-while-revalidate: one background fetch refreshes the entry (unless one runs).
    private func refresh(_ request: CacheRequest, _ head: HTTPHead, _ routed: Router.Request) {
        // A HEAD's refresh would bring no body; the next GET refreshes.
        guard let cache = runtime.cache, !request.lookupOnly else { return }
        let id = CacheCoalescer.id(key: request.key, variant: request.variant)
        guard cache.store.coalescer.lead(id, orWait: nil) else { return }
        loop.cacheStats.refreshes &+= 1
        var routed = routed
        routed.method = .get
        routed.requirement = .any
        var refreshRequest = request
        refreshRequest.coalesceID = id
        CacheRefresh.start(refreshRequest, head: head, routed: routed, loop: loop, peerAddress: peerText, peerTrusted: peerTrusted)
    }
}
