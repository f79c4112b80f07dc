import JWT
import Logging
import NIOConcurrencyHelpers
import NIOCore

/// An issuer's published keys (`jwks_url`): fetched at start, again every `jwks_refresh`, and
/// when a token names a key not in the set (a rotation) — at most once per `jwks_min_interval`,
/// so forged `kid`s cannot make the gateway hammer the issuer. A failed fetch keeps the keys it
/// has: an issuer that is down never stops tokens signed with known keys.
final class JWKSSource: Sendable {
    enum Reason: String {
        case start, periodic
        /// A token named a key the set does not have (or the set is still empty).
        case unknownKey = "unknown_kid"
    }

    let issuer: String
    let url: JWKSURL
    private let tls: UpstreamTLSMaterial?
    private let timeout: TimeAmount
    private let minInterval: TimeAmount
    private let refreshInterval: TimeAmount
    private let logger: Logger

    private struct State {
        var keys: [VerificationKey] = []
        /// Changes when the set's key ids change: tokens verified under an earlier set are
        /// verified again (a removed key stops its tokens, even those cached as verified).
        var version: UInt64 = 0
        var lastAttempt: NIODeadline?
        var inFlight: EventLoopFuture<Void>?
        var failing = false
        var refreshes: UInt64 = 0
        var failures: UInt64 = 0
    }

    private let state = NIOLockedValueBox(State())

    init(issuer: IssuerConfig, url: JWKSURL, logger: Logger) {
        self.issuer = issuer.name
        self.url = url
        tls = issuer.tlsMaterial
        timeout = issuer.jwksTimeout.timeAmount
        minInterval = issuer.jwksMinInterval.timeAmount
        refreshInterval = issuer.jwksRefresh.timeAmount
        self.logger = logger
    }

    var keys: [VerificationKey] { state.withLockedValue { $0.keys } }

    /// The keys and their version, read together.
    var snapshot: (keys: [VerificationKey], version: UInt64) { state.withLockedValue { ($0.keys, $0.version) } }

    var version: UInt64 { state.withLockedValue { $0.version } }

    /// Fetches done and failed, for `/metrics`.
    var counts: (refreshes: UInt64, failures: UInt64) { state.withLockedValue { ($0.refreshes, $0.failures) } }

    /// Whether the periodic refresh is due (sooner while the set is empty or failing).
    func isDue(now: NIODeadline = .now()) -> Bool {
        state.withLockedValue { state in
            guard state.inFlight == nil else { return false }
            guard let last = state.lastAttempt else { return true }
            return now - last >= (state.keys.isEmpty || state.failing ? minInterval : refreshInterval)
        }
    }

    /// Fetches the set again unless one is in flight (then its result is shared) or, for an
    /// unknown key, one was tried less than `jwks_min_interval` ago. The future completes on
    /// `eventLoop` once the set is as fresh as it will get; it never fails.
    func refresh(on eventLoop: EventLoop, reason: Reason) -> EventLoopFuture<Void> {
        let now = NIODeadline.now()
        let promise = eventLoop.makePromise(of: Void.self)
        let future: EventLoopFuture<Void>? = state.withLockedValue { state in
            if let inFlight = state.inFlight { return inFlight }
            if reason == .unknownKey, let last = state.lastAttempt, now - last < minInterval { return nil }
            state.lastAttempt = now
            let fetch = JWKSFetch.get(url, tls: tls, timeout: timeout, on: eventLoop)
                .map { Optional($0) }
                .recover { [logger, issuer, url] error in
                    logger.warning("auth: JWKS fetch failed; keeping the keys already known", metadata: [
                        "issuer": .string(issuer), "url": .string(url.description), "reason": .string(reason.rawValue),
                        "error": .string("\(error)"),
                    ])
                    return nil
                }
                .map { [self] (body: [UInt8]?) in self.settle(body, reason: reason) }
            state.inFlight = fetch
            return fetch
        }
        guard let future else {
            promise.succeed()
            return promise.futureResult
        }
        future.whenComplete { _ in promise.succeed() }
        return promise.futureResult
    }

    private func settle(_ body: [UInt8]?, reason: Reason) {
        var set: JWKSet?
        var problem: String?
        if let body {
            do {
                set = try JWKSet(json: body)
                if set!.keys.isEmpty { problem = "no usable signature key" }
            } catch {
                problem = "\(error)"
            }
        }
        let usable = set.flatMap { $0.keys.isEmpty ? nil : $0 }
        let (before, after) = state.withLockedValue { state in
            let before = state.keys.compactMap(\.id)
            state.inFlight = nil
            if let usable {
                if usable.keys.map(\.id) != state.keys.map(\.id) { state.version &+= 1 }
                state.keys = usable.keys
                state.refreshes &+= 1
                state.failing = false
            } else {
                state.failures &+= 1
                state.failing = true
            }
            return (before, state.keys.compactMap(\.id))
        }
        if let problem {
            logger.warning("auth: the JWKS is unusable; keeping the keys already known", metadata: [
                "issuer": .string(issuer), "url": .string(url.description), "error": .string(problem),
            ])
        } else if usable != nil, before != after {
            logger.info("auth: JWKS keys", metadata: [
                "issuer": .string(issuer), "kids": .string(after.joined(separator: ",")), "reason": .string(reason.rawValue),
                "skipped": .string(set!.skipped.joined(separator: "; ")),
            ])
        }
    }
}
