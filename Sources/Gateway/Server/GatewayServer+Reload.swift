import Cache
import Foundation
import Logging
import NIOCore

/// How a reload went: the admin reply, `/health` and the log say the same.
public struct ReloadReport: Sendable, Codable, Equatable {
    /// `ok` or `error`.
    public var result: String
    /// When it finished (Unix seconds).
    public var at: Double
    public var milliseconds: Double
    /// For a failed reload: file, line, key and what is wrong. The old configuration runs on.
    public var error: String?
    /// Settings that changed in the file but only take effect after a restart.
    public var restartRequired: [String] = []
    /// Upstream servers kept (with their connections, health and ejections), added, removed.
    public var serversKept = 0
    public var serversAdded = 0
    public var serversRemoved = 0
    /// `listen:` addresses opened and closed.
    public var listenersOpened: [String] = []
    public var listenersClosed: [String] = []

    public var succeeded: Bool { result == "ok" }
}

/// Live reload (SIGHUP, `POST /admin/reload`, or `reload.watch`): the file is read and fully
/// validated first; a valid configuration replaces the running one on each event loop at once,
/// while requests in flight finish on the one they started with. Unchanged servers keep their
/// pooled connections, health and ejections; unchanged rate-limit policies their buckets; the
/// cache its entries when its settings are the same. An invalid file changes nothing.
extension GatewayServer {
    @discardableResult
    public func reload(from path: String) async -> ReloadReport {
        await acquireReload()
        defer { reloadInProgress.withLockedValue { $0 = false } }
        let started = NIODeadline.now()
        let old = generation
        let report: ReloadReport
        do {
            guard !isDraining else { throw ConfigError(file: path, key: "", message: "the gateway is shutting down") }
            let fresh = try ConfigLoader.load(path: path)
            for warning in fresh.warnings {
                logger.warning("configuration", metadata: ["warning": "\(warning.description)"])
            }
            let answers = try await resolver.answers(for: fresh)
            report = try await apply(fresh, answers: answers, replacing: old, started: started)
        } catch {
            report = ReloadReport(result: "error", at: Date().timeIntervalSince1970, milliseconds: Self.milliseconds(since: started),
                                  error: "\(error)")
            logger.error("configuration reload failed; the running configuration stays", metadata: ["error": "\(error)"])
            if old.config.listeners.contains(where: { $0.tls != nil }) {
                old.runtime.metrics.countEvent("gateway_tls_certificate_reloads_total", [("result", "error")])
            }
        }
        old.runtime.metrics.countEvent("gateway_config_reloads_total", [("result", report.result)])
        lastReload.withLockedValue { $0 = report }
        return report
    }

    /// Upstream host names resolve to other addresses now: the servers are rebuilt from the
    /// configuration in force, as a reload would (kept addresses keep their servers).
    func addressesChanged(_ answers: [String: DNSResolver.Answer]) async {
        await acquireReload()
        defer { reloadInProgress.withLockedValue { $0 = false } }
        guard !isDraining else { return }
        let old = generation
        do {
            try await apply(old.config, answers: answers, replacing: old, started: .now(), reason: "upstream addresses changed")
        } catch {
            logger.error("cannot use the new upstream addresses; the servers in use stay", metadata: ["error": "\(error)"])
        }
    }

    @discardableResult
    private func apply(_ config: GatewayConfig, answers: [String: DNSResolver.Answer], replacing old: Generation, started: NIODeadline,
                       reason: String = "configuration reloaded") async throws -> ReloadReport {
        var restartRequired: [String] = []
        if config.admin != old.config.admin { restartRequired.append("admin") }
        if eventLoopsOverride == nil, config.eventLoops != old.config.eventLoops { restartRequired.append("event_loops") }

        let runtime = try GatewayRuntime(config: config, metrics: old.runtime.metrics, logger: logger,
                                         accessLog: old.runtime.accessLogOutput, eventLoops: Array(group.makeIterator()),
                                         previous: old.runtime, answers: answers)
        // New listeners are opened before anything changes: one that cannot be opened fails the
        // reload with the old configuration intact.
        let (opened, closing) = try await openListeners(config)

        if let redis = runtime.redis, redis !== old.runtime.redis {
            redis.warmUp(scripts: runtime.redisScripts)
        }
        if let cache = runtime.cache, cache.store !== old.runtime.cache?.store { cache.store.start() }

        let databasesUnchanged = config.databases.map(\.name) == old.config.databases.map(\.name)
            && config.databases.map(\.url) == old.config.databases.map(\.url) && config.health == old.config.health
        let carried = runtime.carriedServers(from: old.runtime) ?? []
        routing.reconfigure(to: runtime, from: old.runtime, databasesUnchanged: databasesUnchanged)
        let healthChecker = HealthChecker(servers: runtime.servers, settings: config.health, group: group, routing: routing,
                                          metrics: runtime.metrics, logger: logger, carrying: (old.healthChecker, carried))
        let databaseMonitor = databasesUnchanged ? old.databaseMonitor
            : DatabaseMonitor(databases: config.databases, settings: config.health, routing: routing, metrics: runtime.metrics, logger: logger)
        let consistencyQueries = databasesUnchanged ? old.consistencyQueries
            : ConsistencyQueries(connectionStrings: config.databases.map(\.url), threadPool: databaseMonitor.threadPool,
                                 timeout: config.health.databaseTimeout)
        let generation = Generation(config: config, runtime: runtime, healthChecker: healthChecker,
                                    databaseMonitor: databaseMonitor, consistencyQueries: consistencyQueries)

        // The switch: each loop takes the new configuration in one step on its own thread.
        let routing = self.routing, queries = generation.queries
        _ = await contexts.collect { context in
            let snapshot = routing.snapshot()
            context.adopt(runtime, routingState: snapshot.runtime === runtime ? snapshot.state : routing.state(),
                          consistencyQueries: queries)
        }
        generationBox.withLockedValue { $0 = generation }
        updateListeners(config)
        for slot in closing {
            await slot.close()
        }

        // The control plane follows: health checks of the new server list (kept servers keep
        // their state), probes of new databases.
        let tasks = controlPlane.withLockedValue { $0 }
        tasks.health?.cancel()
        if !databasesUnchanged { tasks.databases?.cancel() }
        await tasks.health?.value
        if !databasesUnchanged { await tasks.databases?.value }
        if !isDraining {
            controlPlane.withLockedValue { current in
                current.health = Task { await healthChecker.run() }
                if !databasesUnchanged { current.databases = Task { await databaseMonitor.run() } }
            }
        }
        routing.publish()
        for server in runtime.droppedServers(from: old.runtime) {
            runtime.metrics.removeGauges(with: [("pool", server.poolName), ("server", server.authority)])
        }
        for pool in old.runtime.pools where !runtime.pools.contains(where: { $0.name == pool.name }) {
            runtime.metrics.removeGauges(with: [("pool", pool.name)])
        }
        retireLater(old: old.runtime, new: runtime, queries: databasesUnchanged ? nil : old.consistencyQueries,
                    after: old.config.timeouts.drain)

        let kept = carried.compactMap { $0 }.count
        let report = ReloadReport(
            result: "ok", at: Date().timeIntervalSince1970, milliseconds: Self.milliseconds(since: started),
            restartRequired: restartRequired, serversKept: kept, serversAdded: runtime.servers.count - kept,
            serversRemoved: old.runtime.servers.count - kept,
            listenersOpened: opened.map(\.address.description), listenersClosed: closing.map(\.address.description))
        if config.listeners.contains(where: { $0.tls != nil }) {
            runtime.metrics.countEvent("gateway_tls_certificate_reloads_total", [("result", "ok")])
        }
        logger.notice("\(reason)", metadata: [
            "ms": "\(Int(report.milliseconds))", "servers_kept": "\(report.serversKept)", "servers_added": "\(report.serversAdded)",
            "servers_removed": "\(report.serversRemoved)", "routes": "\(config.routes.count)",
            "listeners_opened": "\(report.listenersOpened.joined(separator: ","))",
            "listeners_closed": "\(report.listenersClosed.joined(separator: ","))",
        ])
        for key in restartRequired {
            logger.warning("configuration reload: this change needs a restart; the running value stays", metadata: ["key": "\(key)"])
        }
        return report
    }

    /// Binds the addresses `config` adds to `listen:`; returns them and the slots it drops.
    private func openListeners(_ config: GatewayConfig) async throws -> (opened: [ListenerSlot], closing: [ListenerSlot]) {
        let slots = listenerSlots.withLockedValue { $0 }
        var opened: [ListenerSlot] = []
        for (index, listener) in config.listeners.enumerated() where !slots.contains(where: { $0.address == listener.address }) {
            let slot = ListenerSlot(listener)
            do {
                slot.channel = try await bind(slot, key: config.listeners.count == 1 ? "listen" : "listen[\(index)]")
            } catch {
                for slot in opened { await slot.close() }
                throw error
            }
            opened.append(slot)
        }
        let closing = slots.filter { slot in !config.listeners.contains { $0.address == slot.address } }
        listenerSlots.withLockedValue { current in
            current = config.listeners.map { listener in
                (current + opened).first { $0.address == listener.address }!
            }
        }
        return (opened, closing)
    }

    /// Kept listeners take their new settings and certificates for the connections to come.
    private func updateListeners(_ config: GatewayConfig) {
        let slots = listenerSlots.withLockedValue { $0 }
        for listener in config.listeners {
            slots.first { $0.address == listener.address }?.update(listener)
        }
    }

    /// What the old configuration alone used (a Redis client, a cache store, database queries)
    /// is closed once its requests in flight have had `timeouts.drain` to finish.
    private func retireLater(old: GatewayRuntime, new: GatewayRuntime, queries: ConsistencyQueries?, after drain: ConfigDuration) {
        let redis = old.redis.flatMap { $0 === new.redis ? nil : $0 }
        let store = old.cache.flatMap { $0.store === new.cache?.store ? nil : $0.store }
        guard redis != nil || store != nil || queries != nil else { return }
        Task {
            try? await Task.sleep(for: .nanoseconds(drain.nanoseconds))
            queries?.close()
            await store?.close()
            await redis?.close()
        }
    }

    private func acquireReload() async {
        while !reloadInProgress.withLockedValue({ busy in
            defer { busy = true }
            return !busy
        }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    /// Shutdown waits for a reload under way, so the two never interleave.
    func waitForReload() async {
        while reloadInProgress.withLockedValue({ $0 }) {
            try? await Task.sleep(for: .milliseconds(10))
        }
    }

    private static func milliseconds(since start: NIODeadline) -> Double {
        Double((NIODeadline.now() - start).nanoseconds) / 1e6
    }
}
