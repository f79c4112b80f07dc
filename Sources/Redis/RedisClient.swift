import Logging
import NIOConcurrencyHelpers
import NIOCore

/// A Redis client on SwiftNIO with hiredis's RESP reader and command formatter: one pipelined
/// connection per event loop and server (commands from a loop's requests go out on that loop's
/// connection, batched per tick), command and connect timeouts, reconnection behind a circuit
/// breaker, `EVALSHA` with a `NOSCRIPT` fallback; a standalone server, a sentinel-watched
/// master or a Redis Cluster (`RedisURL.Topology`). It never blocks an event loop.
public final class RedisClient: Sendable {
    public struct Settings: Sendable {
        public var url: RedisURL
        public var connectTimeout: TimeAmount
        public var commandTimeout: TimeAmount
        public var breaker: CircuitBreaker.Settings
        /// For `rediss://`: puts the TLS handler first in a new connection's pipeline. The
        /// client knows no TLS library; whoever configures it does.
        public var addTLSHandler: (@Sendable (Channel) throws -> Void)?

        public init(url: RedisURL, connectTimeout: TimeAmount = .milliseconds(500), commandTimeout: TimeAmount = .milliseconds(100),
                    breaker: CircuitBreaker.Settings = .init(), addTLSHandler: (@Sendable (Channel) throws -> Void)? = nil) {
            self.url = url
            self.connectTimeout = connectTimeout
            self.commandTimeout = commandTimeout
            self.breaker = breaker
            self.addTLSHandler = addTLSHandler
        }
    }

    public let settings: Settings
    private let loops: [RedisLoopClient]
    private let next = NIOLockedValueBox(0)
    /// Sentinel topology: who the master is, shared by the loops.
    private let sentinel: RedisSentinelWatcher?

    /// - Parameter eventLoops: the loops whose requests will use Redis (each gets a connection).
    public init(settings: Settings, eventLoops: [EventLoop], logger: Logger) {
        precondition(!eventLoops.isEmpty)
        self.settings = settings
        if case .sentinel(let master) = settings.url.topology {
            sentinel = RedisSentinelWatcher(settings: settings, master: master, eventLoop: eventLoops[0], logger: logger)
        } else {
            sentinel = nil
        }
        let sentinel = self.sentinel
        loops = eventLoops.map { RedisLoopClient(eventLoop: $0, settings: settings, sentinel: sentinel, logger: logger) }
        if let sentinel {
            for loop in loops {
                sentinel.onChange { endpoint in loop.eventLoop.execute { loop.masterIs(endpoint) } }
            }
            sentinel.start()
        }
    }

    /// Where a pub/sub connection goes: the server; the current master; for a cluster, one
    /// seed after another (a message published on any node reaches subscribers on every node).
    /// - Parameter attempt: how many connections failed before this one.
    public func subscriptionEndpoint(attempt: Int, on loop: EventLoop) -> EventLoopFuture<RedisEndpoint> {
        if let sentinel { return sentinel.masterEndpoint(on: loop) }
        let endpoints = settings.url.endpoints
        return loop.makeSucceededFuture(endpoints[attempt % endpoints.count])
    }

    /// The client of `eventLoop`, for code running on it.
    public func client(on eventLoop: EventLoop) -> RedisLoopClient? {
        loops.first { $0.eventLoop === eventLoop }
    }

    /// From any thread: runs `command` on one of the loops' connections.
    public func send(_ command: RedisCommand) async throws -> RedisValue {
        let loop = pick()
        return try await loop.eventLoop.flatSubmit { loop.send(command) }.get()
    }

    /// A command whose second argument, if it has one, is its key (where a cluster sends it).
    public func send(_ arguments: RedisArgument...) async throws -> RedisValue {
        try await send(RedisCommand(arguments, keyIndex: arguments.count > 1 ? 1 : nil))
    }

    public func evalScript(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) async throws -> RedisValue {
        let loop = pick()
        return try await loop.eventLoop.flatSubmit { loop.evalScript(script, keys: keys, arguments: arguments) }.get()
    }

    /// Connects every loop's client now, loading `scripts` on each connection.
    public func warmUp(scripts: [RedisScript]) {
        for loop in loops {
            loop.eventLoop.execute { loop.warmUp(scripts: scripts) }
        }
    }

    /// Every loop's counters, summed.
    public func stats() async -> RedisStats {
        var total = RedisStats()
        for loop in loops {
            if let stats = try? await loop.eventLoop.submit({ loop.stats }).get() { total = total + stats }
        }
        return total
    }

    public func close() async {
        sentinel?.close()
        for loop in loops {
            try? await loop.eventLoop.submit { loop.close() }.get()
        }
    }

    private func pick() -> RedisLoopClient {
        let index = next.withLockedValue { value in
            value = (value + 1) % loops.count
            return value
        }
        return loops[index]
    }
}
