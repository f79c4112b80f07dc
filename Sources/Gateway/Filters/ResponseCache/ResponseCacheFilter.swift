import Cache
import HTTPWire
import NIOCore
import Router

/// The response cache on the request path, on every route once any route caches or
/// invalidates. A cached route's GET or HEAD is looked up in this process, then in Redis (the
/// exchange suspended meanwhile); a hit is answered from the entry; a miss leads the one fetch
/// of its key or waits for it (nginx's `proxy_cache_lock`); a stale entry is served while one
/// background refresh runs (`stale_while_revalidate`), or instead of an upstream failure
/// (`stale_if_error`). What comes back is stored when RFC 9111 and the route allow. A
/// successful write removes the entries it affects before its client hears of it.
final class ResponseCacheFilter: ExchangeFilter, Sendable {
    let cache: CacheRuntime
    /// The route's caching rules; nil where the filter only invalidates (writes).
    let policy: ResponseCachePolicy?
    /// The route applies a CORS policy: the upstream's own CORS fields are not stored.
    let routeHasCORS: Bool

    init(cache: CacheRuntime, policy: ResponseCachePolicy?, routeHasCORS: Bool) {
        self.cache = cache
        self.policy = policy
        self.routeHasCORS = routeHasCORS
    }

    // MARK: Lookup

    func request(_ exchange: Exchange) -> FilterVerdict {
        let method = exchange.head.method
        guard let policy, method == .get || method == .head else { return .next }
        guard let request = cacheRequest(exchange, policy: policy) else {
            exchange.loop.cacheStats.bypasses &+= 1
            return .next
        }
        exchange.filters.cache = request
        // The field meant for this cache is not passed on.
        exchange.rewritesUpstreamFields = true
        return lookUp(exchange)
    }

    func dropsUpstreamField(_ exchange: Exchange, _ name: UnsafeRawBufferPointer) -> Bool {
        guard exchange.filters.cache != nil else { return false }
        let target = cache.controlHeader.utf8
        guard name.count == target.count else { return false }
        return zip(name, target).allSatisfy { ASCII.lowercased($0) == $1 }
    }

    /// What the cache makes of a cached route's GET or HEAD; nil when it must be bypassed.
    private func cacheRequest(_ exchange: Exchange, policy: ResponseCachePolicy) -> CacheRequest? {
        let head = exchange.head
        // A body: not what an entry answers. A protocol switch: a connection, not a response.
        if exchange.machine.requestHasBody || exchange.upgrade != nil { return nil }
        // A part of the resource: answered from an entry, but a miss is not stored (the
        // upstream's answer is only the part).
        let wantsRange = head.firstField(.range) != nil
        let variant: String
        if policy.shared {
            variant = "-"
        } else {
            guard let identity = exchange.identity else { return nil }
            variant = identity
        }
        let control = CacheControl(head.combinedValue(.cacheControl))
        let pragmaNoCache = head.firstValue(named: "pragma")?.lowercased().contains("no-cache") ?? false
        let requirement = exchange.decision.requirement
        return CacheRequest(
            key: Self.key(policy, head: head, path: exchange.path, decision: exchange.decision, router: exchange.runtime.router),
            variant: variant, policy: policy, lookupOnly: head.method == .head || wantsRange,
            revalidate: control.noCache || (pragmaNoCache && head.firstField(.cacheControl) == nil),
            coalesces: requirement == .any, requirement: requirement)
    }

    /// A request's entry key by the route's template (path parameters only when it names them).
    static func key(_ policy: ResponseCachePolicy, head: HTTPHead, path: NormalizedPath, decision: Router.Decision, router: Router) -> String {
        policy.key.render(RequestKeyInputs(
            head: head, path: path, parameters: policy.key.usesPathParameters ? router.parameters(of: decision, path: path) : []))
    }

    /// Looks in this process first, then in Redis.
    private func lookUp(_ exchange: Exchange) -> FilterVerdict {
        guard let request = exchange.filters.cache else { return .next }
        if request.revalidate { return missed(exchange) }
        let now = CacheRuntime.unixMilliseconds()
        if let entry = cache.store.lookupLocal(request.key, variant: request.variant, now: now) {
            return answer(entry, exchange, now: now)
        }
        guard cache.store.usesRedis else { return missed(exchange) }
        // An open circuit fails the lookup at once (no I/O), and lets a trial through now and
        // then: that is how the cache comes back.
        guard let redis = exchange.generation.redis else { return bypass(exchange) }
        return exchange.wait(for: cache.store.lookupRedis(request.key, variant: request.variant, client: redis, now: now)) { result in
            switch result {
            case .success(let entry?): self.answer(entry, exchange, now: CacheRuntime.unixMilliseconds())
            case .success(nil): self.missed(exchange)
            case .failure: self.bypass(exchange)
            }
        }
    }

    /// Redis cannot answer: the request goes upstream as if there were no cache, and nothing is
    /// stored either (the in-process near cache must only hold what Redis has).
    private func bypass(_ exchange: Exchange) -> FilterVerdict {
        exchange.loop.cacheStats.bypasses &+= 1
        exchange.filters.cache?.lookupOnly = true
        exchange.filters.cache?.revalidate = false
        exchange.filters.cache?.coalesces = false
        exchange.filters.cache?.label = "BYPASS"
        return .next
    }

    private func answer(_ entry: CachedResponse, _ exchange: Exchange, now: Int64) -> FilterVerdict {
        guard let request = exchange.filters.cache, entry.matchesVary({ exchange.head.firstValue(named: $0) }),
              request.accepts(entry) else {
            return missed(exchange)
        }
        // RFC 9111 §3.5: a shared entry answers a request with Authorization only if its
        // response said it may (public, s-maxage, must-revalidate).
        if request.policy.shared, !entry.authorizedUse, exchange.head.firstValue(named: "authorization") != nil {
            return missed(exchange)
        }
        switch entry.freshness(now: now) {
        case .fresh:
            exchange.loop.cacheStats.hits &+= 1
            return .serve(served(entry, exchange, label: "HIT", now: now))
        case .staleWhileRevalidate:
            exchange.loop.cacheStats.stale &+= 1
            refresh(exchange, request)
            return .serve(served(entry, exchange, label: "STALE", now: now))
        case .staleIfError:
            exchange.filters.cache?.staleFallback = entry
            if entry.hasValidator { exchange.filters.cache?.revalidating = entry }
            return missed(exchange)
        case .expired:
            if entry.hasValidator { exchange.filters.cache?.revalidating = entry }
            return missed(exchange)
        }
    }

    /// Not in the cache (or not usable): lead the fetch, or wait for the one in flight.
    private func missed(_ exchange: Exchange) -> FilterVerdict {
        guard let request = exchange.filters.cache else { return .next }
        guard request.coalesces, !request.lookupOnly, !request.revalidate else {
            exchange.loop.cacheStats.misses &+= 1
            return .next
        }
        let id = CacheCoalescer.id(key: request.key, variant: request.variant)
        let eventLoop = exchange.loop.eventLoop
        let fetched = eventLoop.makePromise(of: CachedResponse?.self)
        let waiter = CacheCoalescer.Waiter { entry in fetched.succeed(entry) }
        if cache.store.coalescer.lead(id, orWait: waiter) {
            fetched.succeed(nil)
            exchange.loop.cacheStats.misses &+= 1
            exchange.filters.cache?.coalesceID = id
            return .next
        }
        // nginx's proxy_cache_lock_timeout: past it, go upstream alone.
        eventLoop.scheduleTask(in: cache.lockTimeout) { waiter.finish(nil) }
        return exchange.wait(for: fetched.futureResult) { result in self.coalesced((try? result.get()) ?? nil, exchange) }
    }

    /// The fetch this request waited for is done: its entry, or upstream alone.
    private func coalesced(_ entry: CachedResponse?, _ exchange: Exchange) -> FilterVerdict {
        let now = CacheRuntime.unixMilliseconds()
        if let entry, entry.freshness(now: now) != .expired, entry.matchesVary({ exchange.head.firstValue(named: $0) }) {
            exchange.loop.cacheStats.coalesced &+= 1
            return .serve(served(entry, exchange, label: "HIT", now: now))
        }
        exchange.loop.cacheStats.misses &+= 1
        return .next
    }

    /// An entry as this request's answer: `304` when the client's `If-None-Match` names its
    /// ETag, `206` for one range of a 200 (`If-Range` permitting).
    private func served(_ entry: CachedResponse, _ exchange: Exchange, label: String, now: Int64) -> CachedAnswer {
        let head = exchange.head
        let notModified = entry.etag.map { Self.ifNoneMatch(head.firstValue(.ifNoneMatch), matches: $0) } ?? false
        if notModified { exchange.loop.cacheStats.notModified &+= 1 }
        exchange.filters.cache?.label = label
        var answer = CachedAnswer(entry: entry, label: label, notModified: notModified, now: now)
        if !notModified, entry.status == 200, let range = head.firstValue(.range),
           ByteRange.ifRangeHolds(head.firstValue(named: "if-range"), etag: entry.etag, lastModified: entry.lastModified) {
            answer.range = ByteRange.resolve(range, length: entry.body.readableBytes)
        }
        return answer
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

    /// Stale-while-revalidate: one background fetch refreshes the entry (unless one runs).
    private func refresh(_ exchange: Exchange, _ request: CacheRequest) {
        // A HEAD's refresh would bring no body; the next GET refreshes.
        guard !request.lookupOnly else { return }
        let id = CacheCoalescer.id(key: request.key, variant: request.variant)
        guard cache.store.coalescer.lead(id, orWait: nil) else { return }
        exchange.loop.cacheStats.refreshes &+= 1
        var refresh = request
        refresh.coalesceID = id
        refresh.staleFallback = nil
        refresh.label = "MISS"
        BackgroundDownstream.run({ downstream in
            let repeated = Exchange(repeating: exchange, downstream: downstream)
            repeated.filters.cache = refresh
            return repeated
        }, on: exchange.loop)
    }

    // MARK: Storing what comes back

    /// An attempt begins: the first one starts capturing the response (tagged with what its
    /// pool had replayed; a read that had to see a position went only where that position was,
    /// so its entry reflects it too), a retry starts the capture over.
    func upstreamRequest(_ exchange: Exchange) {
        guard let request = exchange.filters.cache, !request.lookupOnly, let pool = exchange.pool else { return }
        if let capture = exchange.filters.cacheCapture {
            capture.abandonAttempt()
            return
        }
        var lsn = exchange.generation.routingState.positionLSN[pool.index]?.value ?? 0
        if case .replayed(let needed) = exchange.decision.requirement { lsn = max(lsn, needed.value) }
        exchange.filters.cacheCapture = CacheCapture(request: request, fetchStartedAt: CacheRuntime.unixMilliseconds(), lsn: lsn,
                                                     routeHasCORS: routeHasCORS, controlHeader: cache.controlHeader)
        // The cache needs the whole response, not a 304 about the client's copy; a stale
        // entry with a validator asks whether it is still good instead.
        exchange.dropsConditionals = true
        if let entry = request.revalidating {
            var conditionals: [(String, String)] = []
            if let etag = entry.etag { conditionals.append(("If-None-Match", etag)) }
            if let modified = entry.lastModified { conditionals.append(("If-Modified-Since", modified)) }
            exchange.revalidationConditionals = conditionals
        }
    }

    func responseHead(_ exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>? {
        if let capture = exchange.filters.cacheCapture, !capture.admit(head, requestHead: exchange.head) {
            capture.finish(succeeded: false, loop: exchange.loop, generation: exchange.generation)
        }
        guard !exchange.decision.isRead, (200..<300).contains(head.status) else { return nil }
        return invalidate(after: exchange, head)
    }

    func responseBody(_ exchange: Exchange, _ part: ByteBuffer) {
        // Past max_body: the client still gets it all, the cache none of it.
        if let capture = exchange.filters.cacheCapture, capture.collecting, !capture.append(part) {
            capture.finish(succeeded: false, loop: exchange.loop, generation: exchange.generation)
        }
    }

    /// A stale entry within `stale_if_error` answers instead of a failure or a 5xx; a 304 to
    /// a revalidation refreshes the entry (RFC 9111 §4.3.4) and serves it.
    func replacement(_ exchange: Exchange, for response: HTTPHead?) -> CachedAnswer? {
        let now = CacheRuntime.unixMilliseconds()
        if let response, response.status == 304 {
            guard let entry = exchange.filters.cache?.revalidating else { return nil }
            let refreshed = self.refreshed(entry, by: response, exchange, now: now)
            exchange.loop.cacheStats.revalidated &+= 1
            return served(refreshed, exchange, label: "REVALIDATED", now: now)
        }
        guard let entry = exchange.filters.cache?.staleFallback, entry.freshness(now: now) != .expired else { return nil }
        exchange.loop.cacheStats.staleIfError &+= 1
        return served(entry, exchange, label: "STALE", now: now)
    }

    /// The stored entry with the 304's fields and freshness, stored again (and handed to the
    /// requests waiting for this fetch). A 304 that forbids storing still lets it answer once.
    private func refreshed(_ entry: CachedResponse, by response: HTTPHead, _ exchange: Exchange, now: Int64) -> CachedResponse {
        let facts = CacheCapture.facts(of: response, status: entry.status, requestHead: exchange.head, controlHeader: cache.controlHeader)
        guard let request = exchange.filters.cache,
              case .store(let lifetimes) = CacheAdmission.decide(facts, policy: request.policy, now: now / 1000) else { return entry }
        var updated = entry
        updated.headerBlock = Self.merge(entry.headerBlock, with: CacheCapture.storedFields(
            of: response, routeHasCORS: routeHasCORS, controlHeader: cache.controlHeader))
        updated.etag = response.firstValue(.etag) ?? entry.etag
        updated.lastModified = facts.lastModified ?? entry.lastModified
        updated.date = facts.date ?? entry.date
        updated.apply(lifetimes, storedAt: now, initialAge: facts.age ?? 0)
        exchange.filters.cacheCapture?.store(updated, loop: exchange.loop, generation: exchange.generation)
        return updated
    }

    /// Stored fields, each replaced by the 304's field of the same name where it has one.
    static func merge(_ stored: ByteBuffer, with update: ByteBuffer) -> ByteBuffer {
        func lines(_ block: ByteBuffer) -> [(name: String, line: Substring)] {
            String(buffer: block).split(separator: "\r\n").compactMap { line in
                line.firstIndex(of: ":").map { (line[..<$0].lowercased(), line) }
            }
        }
        let updates = lines(update)
        let updated = Set(updates.map(\.name))
        var merged = ByteBuffer()
        for (name, line) in lines(stored) where !updated.contains(name) {
            merged.writeSubstring(line)
            merged.writeStaticString("\r\n")
        }
        for (_, line) in updates {
            merged.writeSubstring(line)
            merged.writeStaticString("\r\n")
        }
        return merged
    }

    /// A complete response is stored; otherwise the requests waiting for this fetch go upstream
    /// themselves.
    func end(_ exchange: Exchange) {
        if let capture = exchange.filters.cacheCapture {
            capture.finish(succeeded: exchange.upstreamResponseComplete, loop: exchange.loop, generation: exchange.generation)
        } else if let id = exchange.filters.cache?.coalesceID {
            cache.store.coalescer.finish(id, entry: nil)
        }
    }

    func fieldsLength(_ exchange: Exchange, _ kind: ResponseKind) -> Int {
        guard exchange.runtime.config.debugHeaders, kind != .local, let request = exchange.filters.cache else { return 0 }
        return 11 + request.label.utf8.count
    }

    func writeFields(_ exchange: Exchange, _ kind: ResponseKind, into writer: inout RawHeadWriter) {
        guard exchange.runtime.config.debugHeaders, kind != .local, let request = exchange.filters.cache else { return }
        writer.header("X-Cache", request.label)
    }

    // MARK: Invalidation

    /// A successful write removes its route's `invalidates` keys and the cached GET of the URI
    /// it wrote (RFC 9111 §4.4) before its head goes out, and leaves a tombstone with the
    /// write's position, so that a fetch from a replica behind the write is not stored.
    private func invalidate(after exchange: Exchange, _ head: HTTPHead) -> EventLoopFuture<Void>? {
        let keys = invalidationKeys(exchange)
        guard !keys.isEmpty else { return nil }
        let loop = exchange.loop
        let generation = exchange.generation
        let cache = self.cache
        return exchange.writePosition(head).assumeIsolated().flatMap { lsn -> EventLoopFuture<Void> in
            let now = CacheRuntime.unixMilliseconds()
            return cache.store.invalidate(keys, tombstone: cache.tombstone(writeLSN: lsn, now: now), now: now,
                                          on: loop.eventLoop, client: generation.redis)
                .assumeIsolated()
                .map { _ in loop.cacheStats.invalidations &+= UInt64(keys.count) }
                .recover { _ in
                    // The write happened: its client gets its answer. Entries Redis still
                    // holds expire with their TTL; the failure is counted and logged.
                    loop.cacheStats.invalidationFailures &+= UInt64(keys.count)
                    exchange.runtime.logger.warning("cache invalidation failed", metadata: [
                        "keys": .stringConvertible(keys.joined(separator: " ")),
                        "request_id": .stringConvertible(exchange.requestID),
                    ])
                }
                .nonisolated()
        }.nonisolated()
    }

    /// The keys a successful write removes, each rendered from the write request.
    func invalidationKeys(_ exchange: Exchange) -> [String] {
        let head = exchange.head
        let path = exchange.path
        let router = exchange.runtime.router
        var keys: [String] = []
        if let route = exchange.decision.route, !cache.invalidations[route].isEmpty {
            let inputs = RequestKeyInputs(head: head, path: path, parameters: router.parameters(of: exchange.decision, path: path))
            keys += cache.invalidations[route].map { $0.render(inputs) }
        }
        let table = router.table
        if let match = table.match(path: path, method: .get, host: head.host, headers: head), let policy = cache.policies[match.index] {
            let inputs = RequestKeyInputs(head: head, path: path, parameters: table.parameters(of: match, path: path))
            let key = policy.key.render(inputs)
            if !keys.contains(key) { keys.append(key) }
        }
        return keys
    }
}
