import Logging
import NIOCore

/// The Redis client of one event loop, over any topology: the one server of a standalone URL;
/// the current master of a sentinel set (moved when the sentinels say it changed); or, for
/// Redis Cluster, a connection per node with the slot map, each command sent to its key's
/// master, `MOVED` and `ASK` followed and the map read again after a redirect or a failure.
/// Everything here runs on `eventLoop`, like the requests that call it: no locks, no hops.
public final class RedisLoopClient: @unchecked Sendable {
    public let eventLoop: EventLoop
    let settings: RedisClient.Settings
    let logger: Logger
    private let sentinel: RedisSentinelWatcher?
    /// Standalone and sentinel: the one node commands go to (nil until a sentinel named it).
    private var primary: RedisNodeClient?
    /// Cluster: a node per endpoint, the slot map, and the refresh in progress.
    private var nodes: [RedisEndpoint: RedisNodeClient] = [:]
    private var map: RedisClusterMap?
    private var refreshing: EventLoopFuture<Void>?
    private var lastRefresh = NIODeadline.uptimeNanoseconds(0)
    private var refreshScheduled = false
    private var closed = false
    private var preloaded: [RedisScript] = []
    /// Counters of nodes no longer used (summed into `stats` so totals never go back).
    private var retired = RedisStats()
    private var own = RedisStats()

    init(eventLoop: EventLoop, settings: RedisClient.Settings, sentinel: RedisSentinelWatcher?, logger: Logger) {
        self.eventLoop = eventLoop
        self.settings = settings
        self.sentinel = sentinel
        self.logger = logger
        if case .standalone = settings.url.topology {
            primary = RedisNodeClient(eventLoop: eventLoop, endpoint: settings.url.endpoints[0], settings: settings, logger: logger)
        }
    }

    public var isCluster: Bool { settings.url.topology == .cluster }

    /// Whether commands are being sent (no circuit is open on the node they would go to; in a
    /// cluster, on any node).
    public var isAvailable: Bool {
        if isCluster { return nodes.isEmpty || nodes.values.contains { $0.isAvailable } }
        return primary?.isAvailable ?? true
    }

    public var stats: RedisStats {
        var total = retired + own
        if let primary { total = total + primary.stats }
        for node in nodes.values { total = total + node.stats }
        return total
    }

    public func send(_ command: RedisCommand) -> EventLoopFuture<RedisValue> {
        eventLoop.preconditionInEventLoop()
        if let primary { return checked(primary.send(command), from: primary) }
        if closed { return eventLoop.makeFailedFuture(RedisError.closed) }
        if let sentinel {
            return sentinel.masterEndpoint(on: eventLoop).flatMap { endpoint in
                self.masterIs(endpoint)
                guard let primary = self.primary else { return self.eventLoop.makeFailedFuture(RedisError.closed) }
                return self.checked(primary.send(command), from: primary)
            }
        }
        return sendToCluster(command, redirects: 0)
    }

    /// Runs a script by its SHA-1, sending the source only if Redis does not have it.
    public func evalScript(_ script: RedisScript, keys: [RedisArgument], arguments: [RedisArgument]) -> EventLoopFuture<RedisValue> {
        let tail = [RedisArgument.int(keys.count)] + keys + arguments
        let keyIndex = keys.isEmpty ? nil : 3
        return send(RedisCommand(["EVALSHA", .string(script.sha1)] + tail, keyIndex: keyIndex)).flatMapError { error in
            if case RedisError.reply(let message) = error, message.hasPrefix("NOSCRIPT") {
                return self.send(RedisCommand(["EVAL", .string(script.source)] + tail, keyIndex: keyIndex))
            }
            return self.eventLoop.makeFailedFuture(error)
        }
    }

    /// Connects now (not on the first command) and loads `scripts` on every connection.
    func warmUp(scripts: [RedisScript]) {
        preloaded = scripts
        primary?.warmUp(scripts: scripts)
        if isCluster, map == nil { _ = refreshMap() }
    }

    func close() {
        closed = true
        primary?.close()
        for node in nodes.values { node.close() }
    }

    // MARK: Sentinel

    /// The sentinels named `endpoint` master: commands go there from now on.
    func masterIs(_ endpoint: RedisEndpoint) {
        eventLoop.preconditionInEventLoop()
        guard !closed, primary?.endpoint != endpoint else { return }
        if let old = primary {
            retired = retired + old.stats
            retired.connected = false
            retired.breakerOpen = false
            old.close()
            own.masterChanges &+= 1
        }
        let node = RedisNodeClient(eventLoop: eventLoop, endpoint: endpoint, settings: settings, logger: logger)
        node.onTrouble = { [weak self] node in self?.sentinel?.recheck(node.endpoint) }
        if !preloaded.isEmpty { node.warmUp(scripts: preloaded) }
        primary = node
    }

    /// A demoted master answers writes with `READONLY`: the sentinels are asked again.
    private func checked(_ future: EventLoopFuture<RedisValue>, from node: RedisNodeClient) -> EventLoopFuture<RedisValue> {
        guard let sentinel else { return future }
        let endpoint = node.endpoint
        return future.flatMapErrorThrowing { error in
            if case RedisError.reply(let message) = error, message.hasPrefix("READONLY") {
                sentinel.recheck(endpoint)
            }
            throw error
        }
    }

    // MARK: Cluster

    private func sendToCluster(_ command: RedisCommand, redirects: Int) -> EventLoopFuture<RedisValue> {
        guard let map else {
            return refreshMap().flatMap { self.map == nil ? self.eventLoop.makeFailedFuture(RedisError.unavailable) : self.sendToCluster(command, redirects: redirects) }
        }
        let endpoint = command.slot.flatMap { map.master(ofSlot: $0) } ?? map.masters.first
        guard let endpoint else {
            refreshSoon()
            return eventLoop.makeFailedFuture(RedisError.reply("CLUSTERDOWN no master serves this slot"))
        }
        return node(endpoint).send(command).flatMapError { error in
            self.clusterFailed(command, error: error, redirects: redirects)
        }
    }

    private func clusterFailed(_ command: RedisCommand, error: Error, redirects: Int) -> EventLoopFuture<RedisValue> {
        guard case RedisError.reply(let message) = error else {
            // Connection trouble, a timeout or an open circuit: the node may have failed over.
            refreshSoon()
            return eventLoop.makeFailedFuture(error)
        }
        if let redirect = RedisClusterMap.redirect(message), redirects < 5 {
            own.redirects &+= 1
            let target = node(redirect.endpoint)
            if redirect.ask {
                // The slot is migrating: this one command goes to the importing node.
                target.send(RedisCommand("ASKING")).whenFailure { _ in }
                return target.send(command).flatMapError { self.clusterFailed(command, error: $0, redirects: redirects + 1) }
            }
            map?.assign(redirect.slot, to: redirect.endpoint)
            refreshSoon()
            return sendToCluster(command, redirects: redirects + 1)
        }
        if message.hasPrefix("CLUSTERDOWN") || message.hasPrefix("TRYAGAIN") || message.hasPrefix("READONLY") {
            refreshSoon()
        }
        return eventLoop.makeFailedFuture(error)
    }

    private func node(_ endpoint: RedisEndpoint) -> RedisNodeClient {
        if let node = nodes[endpoint] { return node }
        let node = RedisNodeClient(eventLoop: eventLoop, endpoint: endpoint, settings: settings, logger: logger)
        node.onTrouble = { [weak self] _ in self?.refreshSoon() }
        if !preloaded.isEmpty { node.warmUp(scripts: preloaded) }
        nodes[endpoint] = node
        return node
    }

    /// Reads the slot map again, at most every 250 ms.
    private func refreshSoon() {
        guard isCluster, !closed, !refreshScheduled, refreshing == nil else { return }
        let wait = lastRefresh + .milliseconds(250) - .now()
        if wait <= .zero {
            _ = refreshMap()
        } else {
            refreshScheduled = true
            eventLoop.assumeIsolated().scheduleTask(in: wait) {
                self.refreshScheduled = false
                _ = self.refreshMap()
            }
        }
    }

    /// `CLUSTER SLOTS` from the first node that answers: known masters first, then the seeds.
    private func refreshMap() -> EventLoopFuture<Void> {
        if let refreshing { return refreshing }
        var candidates = (map?.masters ?? []).filter { nodes[$0]?.isAvailable ?? true }
        for seed in settings.url.endpoints where !candidates.contains(seed) { candidates.append(seed) }
        for endpoint in nodes.keys where !candidates.contains(endpoint) { candidates.append(endpoint) }
        let promise = eventLoop.makePromise(of: Void.self)
        refreshing = promise.futureResult
        own.topologyRefreshes &+= 1
        askForSlots(candidates[...], promise: promise)
        return promise.futureResult
    }

    private func askForSlots(_ candidates: ArraySlice<RedisEndpoint>, promise: EventLoopPromise<Void>) {
        guard let endpoint = candidates.first, !closed else {
            logger.warning("redis cluster: no node answered CLUSTER SLOTS", metadata: ["redis": "\(settings.url)"])
            finishRefresh(promise)
            return
        }
        node(endpoint).send(RedisCommand("CLUSTER", "SLOTS")).assumeIsolated().whenComplete { result in
            guard case .success(let reply) = result, let fresh = try? RedisClusterMap(clusterSlots: reply, askedHost: endpoint.host),
                  !fresh.masters.isEmpty else {
                self.askForSlots(candidates.dropFirst(), promise: promise)
                return
            }
            if let old = self.map, Set(old.masters) != Set(fresh.masters) {
                self.own.masterChanges &+= 1
                self.logger.info("redis cluster: masters changed", metadata: [
                    "from": "\(old.masters.map(\.description).sorted())", "to": "\(fresh.masters.map(\.description).sorted())"])
            }
            self.map = fresh
            // Nodes that are no longer masters get no commands: close them.
            for (endpoint, node) in self.nodes where !fresh.masters.contains(endpoint) {
                self.retired = self.retired + node.stats
                self.retired.connected = false
                self.retired.breakerOpen = false
                node.close()
                self.nodes[endpoint] = nil
            }
            self.finishRefresh(promise)
        }
    }

    private func finishRefresh(_ promise: EventLoopPromise<Void>) {
        refreshing = nil
        lastRefresh = .now()
        promise.succeed(())
    }
}
