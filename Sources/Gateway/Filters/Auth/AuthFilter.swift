import Foundation
import HTTPWire
import JWT
import NIOCore

/// JWT verification on routes with `auth: required` or `optional`: the request's token is
/// verified (or found in the loop's cache of verified tokens), and its claims become the
/// exchange's identity (`identity: [jwt:sub]`), pick plan-aware limits (`by_claim`) and go
/// upstream as headers (`claims_to_headers`). It runs after CORS (a preflight carries no token)
/// and before rate limits, so a forged or expired token is refused before it can spend anyone's
/// budget, and limits count verified users.
///
/// Required and missing or invalid: 401 with `WWW-Authenticate: Bearer` (RFC 6750 §3; with
/// `error="invalid_token"` and a description when a token was presented). Optional and invalid:
/// the request goes on as anonymous.
final class AuthFilter: ExchangeFilter, Sendable {
    let required: Bool
    let auth: AuthRuntime

    init(required: Bool, auth: AuthRuntime) {
        self.required = required
        self.auth = auth
    }

    func request(_ exchange: Exchange) -> FilterVerdict {
        guard let token = auth.token(in: exchange.head) else {
            if required {
                exchange.loop.auth.stats.missing &+= 1
                exchange.loop.auth.stats.refused &+= 1
                return .respond(Self.unauthorized(exchange, error: nil))
            }
            exchange.loop.auth.stats.anonymous &+= 1
            return .next
        }
        let now = Int64(Date().timeIntervalSince1970)
        if let verified = exchange.loop.auth.cached(token, auth: auth, now: now) {
            exchange.loop.auth.stats.cacheHits &+= 1
            exchange.filters.auth = verified
            return .next
        }
        return verify(token, exchange, now: now, mayFetchKeys: true)
    }

    private func verify(_ token: String, _ exchange: Exchange, now: Int64, mayFetchKeys: Bool) -> FilterVerdict {
        let (result, issuer) = auth.verify(token, now: now)
        switch result {
        case .failure(let error) where mayFetchKeys && (error == .unknownKey || error == .noKeys):
            // A key the set does not have yet (a rotation) or a set not fetched yet: fetch it
            // (at most once per jwks_min_interval) and try once more.
            if let jwks = issuer?.jwks {
                return exchange.wait(for: jwks.refresh(on: exchange.loop.eventLoop, reason: .unknownKey)) { _ in
                    self.verify(token, exchange, now: Int64(Date().timeIntervalSince1970), mayFetchKeys: false)
                }
            }
        default:
            break
        }
        exchange.loop.auth.stats.count(result)
        switch result {
        case .success(let verified):
            exchange.loop.auth.remember(token, verified, capacity: auth.cacheCapacity, now: now)
            exchange.filters.auth = verified
            return .next
        case .failure(let error):
            if required {
                exchange.loop.auth.stats.refused &+= 1
                return .respond(Self.unauthorized(exchange, error: error))
            }
            exchange.loop.auth.stats.anonymous &+= 1
            return .next
        }
    }

    /// 401 with the challenge of RFC 6750 §3: no error code when no token came; otherwise
    /// `invalid_token` with what was wrong.
    static func unauthorized(_ exchange: Exchange, error: TokenError?) -> LocalResponse {
        let challenge = error.map { "Bearer error=\"invalid_token\", error_description=\"\($0.rawValue): \($0)\"" } ?? "Bearer"
        let message = error.map { "invalid token: \($0)" } ?? "authentication required: no bearer token"
        return LocalResponse.error(401, message, requestID: exchange.requestID, errorKind: "unauthorized",
                                   extraHeaders: [("WWW-Authenticate", challenge)])
    }
}
