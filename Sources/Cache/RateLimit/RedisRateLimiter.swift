import NIOCore
import Redis

/// GCRA in Redis: one atomic script per check, one key per policy and client, on the Redis
/// server's clock (instances with skewed clocks still agree). The key expires when its bucket
/// is full again, so idle clients cost nothing.
public enum RedisRateLimiter {
    /// What the limiter runs in Redis (for `RedisClient.warmUp`).
    public static var scripts: [RedisScript] { [script, takeScript] }

    static let script = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local window = tonumber(ARGV[2]) * interval
        local stored = tonumber(redis.call('GET', KEYS[1]) or '0')
        local tat = stored
        if tat < now then tat = now end
        local newTat = tat + tonumber(ARGV[3]) * interval
        local allowAt = newTat - window
        if now < allowAt then
          return {0, math.floor((window - (tat - now)) / interval), allowAt - now, tat - now}
        end
        redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', math.ceil((newTat - now) / 1000) + 1)
        return {1, math.floor((window - (newTat - now)) / interval), 0, newTat - now}
        """)

    /// A lease: takes up to ARGV[4] tokens (whole multiples of the cost) from the bucket at once,
    /// as many as GCRA allows now: `{granted, remaining, retry after µs, reset µs}`. The bucket's
    /// arithmetic is the check's: a take of one cost is exactly one check.
    static let takeScript = RedisScript("""
        local t = redis.call('TIME')
        local now = tonumber(t[1]) * 1000000 + tonumber(t[2])
        local interval = tonumber(ARGV[1])
        local window = tonumber(ARGV[2]) * interval
        local cost = tonumber(ARGV[3])
        local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
        if tat < now then tat = now end
        local available = math.floor((now + window - tat) / interval)
        if available < cost then
          return {0, math.max(0, available), tat + cost * interval - window - now, tat - now}
        end
        local want = tonumber(ARGV[4])
        if want > available then want = available end
        local granted = want - (want % cost)
        local newTat = tat + granted * interval
        redis.call('SET', KEYS[1], string.format('%.0f', newTat), 'PX', math.ceil((newTat - now) / 1000) + 1)
        return {granted, math.floor((window - (newTat - now)) / interval), 0, newTat - now}
        """)

    public struct Grant: Sendable, Equatable {
        public var granted: Int
        public var remaining: Int
        public var retryAfterMicroseconds: Int64
        public var resetMicroseconds: Int64
    }

    /// Takes up to `count` tokens of `key`'s bucket (a lease).
    /// - Parameter arguments: from `arguments(rule:cost:)`.
    public static func take(_ key: String, count: Int, arguments: [RedisArgument], client: RedisLoopClient) -> EventLoopFuture<Grant> {
        client.evalScript(takeScript, keys: [.string(key)], arguments: arguments + [.int(count)]).flatMapThrowing { value in
            guard let parts = value.array, parts.count == 4, let granted = parts[0].integer, let remaining = parts[1].integer,
                  let retry = parts[2].integer, let reset = parts[3].integer
            else { throw RedisError.protocolError("unexpected rate limit reply \(value)") }
            return Grant(granted: Int(granted), remaining: Int(remaining), retryAfterMicroseconds: retry, resetMicroseconds: reset)
        }
    }

    /// The script's arguments for a rule and cost: the same for every check of a policy, so
    /// made once.
    public static func arguments(rule: GCRA, cost: Int) -> [RedisArgument] {
        [.int(rule.emissionInterval), .int(Int64(rule.capacity)), .int(Int64(cost))]
    }

    /// Checks and (when allowed) takes the cost from `key`'s bucket in Redis.
    /// - Parameter arguments: from `arguments(rule:cost:)`.
    public static func check(_ key: String, arguments: [RedisArgument], client: RedisLoopClient) -> EventLoopFuture<GCRA.Outcome> {
        client.evalScript(script, keys: [.string(key)], arguments: arguments).flatMapThrowing { value in
            guard let parts = value.array, parts.count == 4, let allowed = parts[0].integer, let remaining = parts[1].integer,
                  let retry = parts[2].integer, let reset = parts[3].integer
            else { throw RedisError.protocolError("unexpected rate limit reply \(value)") }
            return GCRA.Outcome(allowed: allowed == 1, remaining: Int(remaining), retryAfterMicroseconds: retry,
                                resetMicroseconds: reset, tat: 0)
        }
    }
}
