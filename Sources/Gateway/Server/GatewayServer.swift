import Cache
import Dispatch
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix
import NIOSSL
import Redis
import ServiceLifecycle

/// A running gateway: the event loops, the proxy listener and the admin listener. As a
/// `Service` it runs until SIGTERM/SIGINT, then stops accepting, lets in-flight requests finish
/// for up to `timeouts.drain`, closes what is left and returns.
public final class GatewayServer: Service, Sendable {
    public static let version = "0.1.0"

    public struct BoundAddresses: Sendable {
        /// The first listener's address.
        public var proxy: SocketAddress
        public var admin: SocketAddress
        /// Every listener's, in `listen:` order.
        public var listeners: [SocketAddress]
        public func port(ofListener index: Int) -> Int { listeners[index].port ?? 0 }
        public var proxyPort: Int { proxy.port ?? 0 }
        public var adminPort: Int { admin.port ?? 0 }
    }

    /// The configuration in force and what was built from it; a reload replaces it whole.
    final class Generation: Sendable {
        let config: GatewayConfig
        let runtime: GatewayRuntime
        let healthChecker: HealthChecker
        let databaseMonitor: DatabaseMonitor
        let consistencyQueries: ConsistencyQueries

        init(config: GatewayConfig, runtime: GatewayRuntime, healthChecker: HealthChecker, databaseMonitor: DatabaseMonitor,
             consistencyQueries: ConsistencyQueries) {
            self.config = config
            self.runtime = runtime
            self.healthChecker = healthChecker
            self.databaseMonitor = databaseMonitor
            self.consistencyQueries = consistencyQueries
        }

        /// The queries the loops use (nil without databases).
        var queries: ConsistencyQueries? { config.databases.isEmpty ? nil : consistencyQueries }
    }

    let generationBox: NIOLockedValueBox<Generation>
    var generation: Generation { generationBox.withLockedValue { $0 } }
    public var config: GatewayConfig { generation.config }
    var runtime: GatewayRuntime { generation.runtime }
    var healthChecker: HealthChecker { generation.healthChecker }
    var databaseMonitor: DatabaseMonitor { generation.databaseMonitor }
    let group: MultiThreadedEventLoopGroup
    let contexts: LoopContexts
    let routing: RoutingControl
    let logger: Logger
    /// The health checks and the database probes, each restarted by a reload that changes them;
    /// the file watcher, DNS lookups and JWKS refreshes, which read the current configuration.
    let controlPlane = NIOLockedValueBox<(health: Task<Void, Never>?, databases: Task<Void, Never>?, watcher: Task<Void, Never>?,
                                          dns: Task<Void, Never>?, jwks: Task<Void, Never>?)>((nil, nil, nil, nil, nil))
    let startedAt = NIODeadline.now()
    /// The admin listener's channel.
    private let adminChannel = NIOLockedValueBox<Channel?>(nil)
    private let shutdownStarted = NIOLockedValueBox(false)
    /// One per open `listen:` address, in file order.
    let listenerSlots: NIOLockedValueBox<[ListenerSlot]>
    /// Event loops given on the command line (then `event_loops` of the file is not used).
    let eventLoopsOverride: Int?
    /// How the last reload went (nil: none yet).
    let lastReload = NIOLockedValueBox<ReloadReport?>(nil)
    /// Reloads run one at a time.
    let reloadInProgress = NIOLockedValueBox(false)
    private let connector: UpstreamConnector & Sendable
    /// Keeps upstream host names resolved.
    let resolver: UpstreamResolver
    /// Sockets taken over from the gateway this process replaces (`--upgrade`).
    let inherited: BinaryUpgrade.InheritedSockets?
    /// The admin socket's duplicate, for a binary upgrade.
    private let adminHandover = NIOLockedValueBox<CInt?>(nil)
    /// Answers `--upgrade` processes.
    private let upgradeListener = NIOLockedValueBox<BinaryUpgrade.Listener?>(nil)
    /// A new process took over: `run()` drains and returns.
    private let handedOver = NIOLockedValueBox(false)
    private let handOverSignal: AsyncStream<Void>
    private let handOverContinuation: AsyncStream<Void>.Continuation

    /// The file `POST /admin/reload` reads (nil: the configuration did not come from a file).
    public let configPath: String?

    /// - Parameters:
    ///   - eventLoops: overrides `event_loops` of the config (command line).
    ///   - configPath: the file the configuration came from, read again by a reload.
    ///   - inherited: the listening sockets of the gateway this one replaces (`--upgrade`).
    public convenience init(config: GatewayConfig, logger: Logger, accessLog: (any AccessLogOutput)?, eventLoops: Int? = nil,
                            configPath: String? = nil, inherited: BinaryUpgrade.InheritedSockets? = nil) throws {
        try self.init(config: config, logger: logger, accessLog: accessLog, eventLoops: eventLoops,
                      connector: TCPUpstreamConnector(), configPath: configPath, inherited: inherited)
    }

    init(config: GatewayConfig, logger: Logger, accessLog: (any AccessLogOutput)?, eventLoops: Int?, connector: UpstreamConnector & Sendable,
         configPath: String? = nil, inherited: BinaryUpgrade.InheritedSockets? = nil) throws {
        self.logger = logger
        self.inherited = inherited
        (handOverSignal, handOverContinuation) = AsyncStream.makeStream(of: Void.self)
        self.configPath = configPath
        self.connector = connector
        eventLoopsOverride = eventLoops
        listenerSlots = NIOLockedValueBox(config.listeners.map(ListenerSlot.init))
        let metrics = GatewayMetrics()
        // At zero from the start, so the first failed reload is an increase Prometheus sees
        // (a counter that appears at 1 has no increase) and the alert on it fires.
        for result in ["ok", "error"] { metrics.countEvent("gateway_config_reloads_total", [("result", result)], by: 0) }
        let answers = try UpstreamResolver.lookUpAll(config)
        resolver = UpstreamResolver(metrics: metrics, logger: logger)
        resolver.seed(answers, config: config)
        let threads = eventLoops ?? config.eventLoops ?? System.coreCount
        group = MultiThreadedEventLoopGroup(numberOfThreads: threads)
        let runtime: GatewayRuntime
        do {
            runtime = try GatewayRuntime(config: config, metrics: metrics, logger: logger, accessLog: accessLog,
                                         eventLoops: Array(group.makeIterator()), answers: answers)
        } catch {
            try? group.syncShutdownGracefully()
            throw error
        }
        contexts = LoopContexts(group: group, runtime: runtime, connector: connector)
        routing = RoutingControl(runtime: runtime, contexts: contexts, metrics: runtime.metrics, logger: logger)
        let healthChecker = HealthChecker(servers: runtime.servers, settings: config.health, group: group, routing: routing,
                                          metrics: runtime.metrics, logger: logger)
        let databaseMonitor = DatabaseMonitor(databases: config.databases, settings: config.health, routing: routing,
                                              metrics: runtime.metrics, logger: logger)
        let consistencyQueries = ConsistencyQueries(connectionStrings: config.databases.map(\.url), threadPool: databaseMonitor.threadPool,
                                                    timeout: config.health.databaseTimeout)
        generationBox = NIOLockedValueBox(Generation(config: config, runtime: runtime, healthChecker: healthChecker,
                                                     databaseMonitor: databaseMonitor, consistencyQueries: consistencyQueries))
    }

    /// Binds both listeners and starts serving; returns the bound addresses (port 0 in the
    /// config means "any free port").
    @discardableResult
    public func start() async throws -> BoundAddresses {
        let generation = self.generation
        let config = generation.config, runtime = generation.runtime
        let queries = generation.queries
        runtime.cache?.store.start()
        runtime.redis?.warmUp(scripts: runtime.redisScripts)
        contexts.forEach { context in
            context.current.consistencyQueries = queries
            context.start()
        }
        // Issuers' key sets before the first request (each fetch bounded by its jwks_timeout).
        await JWKSRefresher.fetchAll(runtime.auth, on: group)
        if let inherited {
            // Taking over: the old process stops accepting first, then this one starts, so the
            // two never accept from one socket at once; connections wait in the kernel's queue.
            let confirmed = (try? await NIOThreadPool.singleton.runIfActive { inherited.ready() }) ?? false
            if !confirmed {
                logger.warning("binary upgrade: the old process did not confirm it stopped accepting; accepting anyway")
            }
        }
        let slots = listenerSlots.withLockedValue { $0 }
        var listeners: [Channel] = []
        for (index, slot) in slots.enumerated() {
            do {
                let channel = try await bind(slot, key: slots.count == 1 ? "listen" : "listen[\(index)]")
                slot.channel = channel
                listeners.append(channel)
            } catch {
                for slot in slots { await slot.close() }
                throw error
            }
        }
        let proxy = listeners[0]

        let admin: Channel
        do {
            let descriptor = try inheritedDescriptor(admin: config.admin) ?? ListeningSocket.open(config.admin, backlog: 128)
            adminHandover.withLockedValue { $0 = dup(descriptor) }
            admin = try await AdminServer(gateway: self).bind(group: group, descriptor: descriptor)
        } catch let error as IOError {
            for slot in slots { await slot.close() }
            throw ListenError(key: "admin", address: config.admin, reason: error.description)
        } catch {
            for slot in slots { await slot.close() }
            throw error
        }
        adminChannel.withLockedValue { $0 = admin }
        serving.withLockedValue { $0 = true }
        inherited?.closeUnclaimed(claimedDescriptors.withLockedValue { $0 })
        listenForUpgrades()
        // The control plane: health checks and database probes, until shutdown cancels them.
        let healthChecker = generation.healthChecker, databaseMonitor = generation.databaseMonitor
        controlPlane.withLockedValue { tasks in
            tasks.health = Task { await healthChecker.run() }
            tasks.databases = Task { await databaseMonitor.run() }
            if let configPath {
                let watcher = ConfigFileWatcher(path: configPath, server: self)
                tasks.watcher = Task { await watcher.run() }
            }
            tasks.dns = Task { [resolver] in
                await resolver.run(config: { self.config }, changed: { answers in await self.addressesChanged(answers) })
            }
            tasks.jwks = Task { [group] in await JWKSRefresher.run(auth: { self.runtime.auth }, on: group) }
        }
        let bound = BoundAddresses(proxy: proxy.localAddress!, admin: admin.localAddress!, listeners: listeners.map { $0.localAddress! })
        for (index, listener) in config.listeners.enumerated() {
            if let material = listener.material {
                let names = material.identities.map { $0.names.first ?? "(default)" }.joined(separator: ",")
                logger.info("TLS listener", metadata: ["listen": "\(Self.describe(bound.listeners[index]))", "certificates": "\(names)",
                                                       "min_version": "\(listener.tls!.minVersion.rawValue)",
                                                       "client_ca": "\(listener.tls!.clientCA ?? "-")"])
            }
        }
        logger.info("gateway started", metadata: [
            "listen": "\(bound.listeners.map(Self.describe).joined(separator: ","))", "admin": "\(Self.describe(bound.admin))", "event_loops": "\(contexts.ordered.count)",
            "pools": "\(runtime.pools.map(\.name).joined(separator: ","))", "version": "\(Self.version)",
            "hiredis": "\(NativeLibraries.all["hiredis"]!)", "libpq": "\(NativeLibraries.libpq)",
        ])
        return bound
    }

    /// Opens one `listen:` entry: cleartext, TLS (the handshake first, then the same HTTP/1.1
    /// connection handler) or a redirect to HTTPS. Which of these, and the certificates, are
    /// read from the slot per connection: a reload changes them without closing the socket.
    func bind(_ slot: ListenerSlot, key: String) async throws -> Channel {
        let contexts = self.contexts
        let address = slot.address
        let descriptor: CInt
        do {
            descriptor = try inheritedDescriptor(listener: address) ?? ListeningSocket.open(address)
        } catch let error as IOError {
            throw ListenError(key: key, address: address, reason: error.description)
        }
        slot.handover = dup(descriptor)
        return try await ServerBootstrap(group: group)
            .childChannelOption(.socketOption(.tcp_nodelay), value: 1)
            .childChannelOption(.allowRemoteHalfClosure, value: true)
            .childChannelOption(.maxMessagesPerRead, value: 4)
            // NIO keeps a receive buffer per channel: a small one to start with (a request head
            // is a few hundred bytes), growing while reads fill it (uploads).
            .childChannelOption(.recvAllocator, value: AdaptiveRecvByteBufferAllocator(minimum: 64, initial: 512, maximum: 65536))
            .childChannelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    let current = slot.current
                    if let certificates = current.certificates {
                        try channel.pipeline.syncOperations.addHandler(NIOSSLServerHandler(context: certificates.context))
                    }
                    let handler = HTTP1Connection(loop: contexts.context(for: channel.eventLoop), listener: current.settings)
                    try channel.pipeline.syncOperations.addHandler(handler)
                }
            }
            .withBoundSocket(descriptor: descriptor)
            .mapListenError(address: address, key: key)
    }

    public func run() async throws {
        try await start()
        // Returns on SIGTERM/SIGINT (through the ServiceGroup), when the task is cancelled, or
        // when a new process (`--upgrade`) has taken the listening sockets over.
        let signal = handOverSignal
        await withTaskGroup(of: Void.self) { group in
            group.addTask { try? await gracefulShutdown() }
            group.addTask { for await _ in signal { return } }
            await group.next()
            group.cancelAll()
        }
        await shutdown()
    }

    /// Stops accepting, drains in-flight requests for up to `timeouts.drain`, then closes
    /// everything and stops the event loops.
    public func shutdown() async {
        let first = shutdownStarted.withLockedValue { started in
            defer { started = true }
            return !started
        }
        guard first else { return }
        await waitForReload()
        let drain = config.timeouts.drain
        logger.info("draining", metadata: ["timeout": "\(drain)"])
        await stopAccepting()
        await upgradeListener.withLockedValue({ $0 })?.stop(removingFile: !handedOver.withLockedValue { $0 })
        // After a handover, idle keep-alive clients get a moment to send their next request
        // (answered, with Connection: close) instead of a close that could cross it.
        let idleGrace: TimeAmount? = handedOver.withLockedValue { $0 } ? .milliseconds(min(1000, drain.nanoseconds / 1_000_000)) : nil
        contexts.forEach { $0.beginDrain(idleGrace: idleGrace) }
        // Connections the listeners accepted just before closing are still being registered
        // on their loops: one pass through every loop's queue lets them become active (and
        // counted) before the count below could read zero and end the drain under them.
        for _ in 0..<2 { _ = await contexts.collect { _ in () } }
        let deadline = NIODeadline.now() + drain.timeAmount
        while NIODeadline.now() < deadline {
            let open = await contexts.collect { $0.clientConnectionCount }.reduce(0, +)
            if open == 0 { break }
            try? await Task.sleep(for: .milliseconds(20))
        }
        let left = await contexts.collect { $0.clientConnectionCount }.reduce(0, +)
        if left > 0 {
            logger.warning("drain timeout: closing connections still open", metadata: ["connections": "\(left)"])
        }
        let tasks = controlPlane.withLockedValue { $0 }
        for task in [tasks.watcher, tasks.dns, tasks.jwks, tasks.health, tasks.databases].compactMap({ $0 }) {
            task.cancel()
            await task.value
        }
        await resolver.shutdown()
        let generation = self.generation
        let runtime = generation.runtime
        generation.consistencyQueries.close()
        await runtime.cache?.store.close()
        await runtime.redis?.close()
        contexts.forEach { $0.closeEverything() }
        try? await Task.sleep(for: .milliseconds(20))
        try? await group.shutdownGracefully()
        logger.info("stopped")
    }

    var isDraining: Bool { shutdownStarted.withLockedValue { $0 } }

    private let serving = NIOLockedValueBox(false)
    /// Every listener is open and accepting.
    public var isServing: Bool { serving.withLockedValue { $0 } }

    /// Descriptors taken from `inherited` so far (the rest are closed once started).
    private let claimedDescriptors = NIOLockedValueBox<Set<CInt>>([])

    private func inheritedDescriptor(listener address: ListenAddress) -> CInt? {
        guard let descriptor = inherited?.listeners[address.description] else { return nil }
        let fresh = claimedDescriptors.withLockedValue { $0.insert(descriptor).inserted }
        return fresh ? descriptor : nil
    }

    private func inheritedDescriptor(admin address: ListenAddress) -> CInt? {
        guard let admin = inherited?.admin, admin.address == address.description else { return nil }
        let fresh = claimedDescriptors.withLockedValue { $0.insert(admin.descriptor).inserted }
        return fresh ? admin.descriptor : nil
    }

    /// What a new process gets: every listening socket (duplicates; both processes accept
    /// until it is ready) and the admin one.
    private func upgradeOffer() -> (BinaryUpgrade.Offer, [CInt]) {
        let slots = listenerSlots.withLockedValue { $0 }.filter { $0.handover != nil }
        let admin = adminHandover.withLockedValue { $0 }
        let offer = BinaryUpgrade.Offer(listeners: slots.map(\.address.description), admin: config.admin.description, pid: getpid())
        return (offer, slots.compactMap(\.handover) + [admin ?? -1])
    }

    /// A new process is ready: stop accepting now (on the upgrade listener's thread, before it
    /// tells the new process to start), then drain and exit.
    private func handOver() {
        logger.notice("binary upgrade: the new process is ready; closing the listeners, draining and exiting")
        handedOver.withLockedValue { $0 = true }
        // On the upgrade listener's thread, which may block: the new process must not start
        // accepting before this one has stopped.
        let done = DispatchSemaphore(value: 0)
        Task {
            await self.stopAccepting()
            done.signal()
        }
        done.wait()
        handOverContinuation.yield()
    }

    /// Closes every listener (and the admin one) without losing a connection it accepted: first
    /// it stops accepting, then connections already accepted finish their setup (on their loop,
    /// then back on the listener's) — NIO closes an accepted connection whose listener closed
    /// before its setup completed, and that client would see a reset — and only then do the
    /// listeners close, with the duplicates kept for an upgrade.
    func stopAccepting() async {
        let slots = listenerSlots.withLockedValue { $0 }
        let admin = adminChannel.withLockedValue { $0 }
        let listeners = slots.compactMap(\.channel) + [admin].compactMap { $0 }
        for channel in listeners { try? await channel.setOption(ChannelOptions.autoRead, value: false).get() }
        for _ in 0..<3 {
            for loop in group.makeIterator() { try? await loop.submit {}.get() }
        }
        for channel in listeners { try? await channel.close().get() }
        for slot in slots { slot.closeHandover() }
        if let descriptor = adminHandover.withLockedValue({ box in defer { box = nil }; return box }) { close(descriptor) }
    }

    /// Answers the next `--upgrade` on `upgrade_socket` (the path is taken over from a process
    /// this one replaced).
    private func listenForUpgrades() {
        do {
            let listener = try BinaryUpgrade.Listener(
                path: config.upgradeSocketPath, logger: logger,
                offer: { [weak self] in self?.upgradeOffer() ?? (BinaryUpgrade.Offer(listeners: [], admin: "", pid: getpid()), []) },
                handedOver: { [weak self] in self?.handOver() })
            upgradeListener.withLockedValue { $0 = listener }
        } catch {
            logger.warning("binary upgrades are off: cannot listen on upgrade_socket", metadata: ["error": "\(error)"])
        }
    }

    /// `127.0.0.1:8080` / `[::1]:8080` rather than NIO's `[IPv4]127.0.0.1/127.0.0.1:8080`.
    static func describe(_ address: SocketAddress) -> String {
        let ip = address.ipAddress ?? "?"
        return ip.contains(":") ? "[\(ip)]:\(address.port ?? 0)" : "\(ip):\(address.port ?? 0)"
    }
}

/// A listener that could not be opened, said in the config's terms.
public struct ListenError: Error, CustomStringConvertible {
    public var key: String
    public var address: ListenAddress
    public var reason: String

    public var description: String {
        let cause = reason.contains("errno: 98") ? "the address is already in use"
            : reason.contains("errno: 13") ? "permission denied (ports below 1024 need privileges)"
            : reason.contains("errno: 99") ? "no interface has that address"
            : reason
        return "cannot listen on \(address) (\(key)): \(cause)"
    }
}

extension EventLoopFuture where Value == Channel {
    /// Awaits a bind, turning socket errors into a `ListenError` naming the config key.
    func mapListenError(address: ListenAddress, key: String) async throws -> Channel {
        do {
            return try await get()
        } catch let error as IOError {
            throw ListenError(key: key, address: address, reason: error.description)
        }
    }
}
