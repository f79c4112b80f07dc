import Foundation

/// A real Redis Cluster on loopback: three masters and three replicas from Debian's
/// redis-server in cluster mode, made with `redis-cli --cluster create`. Nodes notice a dead
/// master after 1 s (`cluster-node-timeout`), so a failover takes a few seconds; a replica takes
/// over however long ago it last heard from its master (`cluster-replica-validity-factor 0`:
/// a replica of a freshly made cluster otherwise counts as too stale to fail over).
public final class RedisCluster: @unchecked Sendable {
    public let nodes: [RedisServer]
    public var seedURL: String { "redis-cluster://127.0.0.1:\(nodes[0].port),127.0.0.1:\(nodes[1].port)" }

    private init(nodes: [RedisServer]) { self.nodes = nodes }

    public static func start(masters: Int = 3, replicasPerMaster: Int = 1) async throws -> RedisCluster {
        var nodes: [RedisServer] = []
        do {
            for _ in 0..<(masters * (1 + replicasPerMaster)) {
                // The bus port is named: port + 10000 may be past 65535 for a free port.
                nodes.append(try await RedisServer.start(arguments: [
                    "--cluster-enabled", "yes", "--cluster-config-file", "nodes.conf", "--cluster-node-timeout", "1000", "--cluster-replica-validity-factor", "0",
                    "--cluster-port", String(try freePort()),
                ]))
            }
            _ = try await runProcess("/usr/bin/redis-cli", ["--cluster", "create"] + nodes.map { "127.0.0.1:\($0.port)" }
                + ["--cluster-replicas", String(replicasPerMaster), "--cluster-yes"])
            let cluster = RedisCluster(nodes: nodes)
            try await cluster.waitUntilHealthy()
            return cluster
        } catch {
            for node in nodes { await node.stop() }
            throw error
        }
    }

    /// Every live node says `cluster_state:ok` and agrees on the number of masters.
    public func waitUntilHealthy(seconds: Int = 30) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        var last = ""
        while ContinuousClock.now < deadline {
            var ok = true
            for node in nodes where node.isAlive {
                let info = (try? await node.command("CLUSTER", "INFO")) ?? ""
                last = info
                if !info.contains("cluster_state:ok") { ok = false }
            }
            if ok { return }
            try await Task.sleep(for: .milliseconds(100))
        }
        throw TestClientError("redis cluster not healthy after \(seconds) s: \(last)")
    }

    /// Every live master's replicas have everything it wrote (their offsets match its own).
    public func waitForReplication(seconds: Int = 10) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            var synced = true
            for node in nodes where node.isAlive {
                let info = (try? await node.command("INFO", "replication")) ?? ""
                guard info.contains("role:master") else { continue }
                let lines = info.split(whereSeparator: \.isNewline)
                let offset = lines.first { $0.hasPrefix("master_repl_offset:") }.map { String($0.dropFirst("master_repl_offset:".count)) }
                let replicas = lines.filter { $0.hasPrefix("slave") && $0.contains("offset=") }
                if replicas.isEmpty && !info.contains("connected_slaves:0") { synced = false }
                for replica in replicas where !replica.contains("offset=\(offset ?? "?"),") { synced = false }
            }
            if synced { return }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestClientError("redis cluster replicas did not catch up within \(seconds) s")
    }

    /// The node that is master of `slot` now, as `node` sees it.
    public func master(ofSlot slot: Int) async throws -> RedisServer? {
        for node in nodes where node.isAlive {
            let info = try await node.command("CLUSTER", "NODES")
            for line in info.split(separator: "\n") {
                let fields = line.split(separator: " ")
                guard fields.count >= 9, fields[2].contains("master"), !fields[2].contains("fail") else { continue }
                for range in fields[8...] {
                    let bounds = range.split(separator: "-").compactMap { Int($0) }
                    let covers = bounds.count == 2 ? (bounds[0]...bounds[1]).contains(slot) : bounds.first == slot
                    if covers, let port = fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap({ Int($0) }) {
                        return nodes.first { $0.port == port }
                    }
                }
            }
            return nil
        }
        return nil
    }

    /// The masters now, from a live node's view.
    /// The slot ranges `server` serves as a master (none if it is not one).
    public func slots(of server: RedisServer) async throws -> [ClosedRange<Int>] {
        guard let node = nodes.first(where: { $0.isAlive }) else { return [] }
        let info = try await node.command("CLUSTER", "NODES")
        for line in info.split(separator: "\n") {
            let fields = line.split(separator: " ")
            guard fields.count >= 9, fields[2].contains("master"),
                  fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap({ Int($0) }) == server.port else { continue }
            return fields[8...].compactMap { range in
                let bounds = range.split(separator: "-").compactMap { Int($0) }
                return bounds.count == 2 ? bounds[0]...bounds[1] : bounds.first.map { $0...$0 }
            }
        }
        return []
    }

    public func masters() async throws -> [RedisServer] {
        guard let node = nodes.first(where: { $0.isAlive }) else { return [] }
        let info = try await node.command("CLUSTER", "NODES")
        return info.split(separator: "\n").compactMap { line -> RedisServer? in
            let fields = line.split(separator: " ")
            guard fields.count >= 3, fields[2].contains("master"), !fields[2].contains("fail") else { return nil }
            let port = fields[1].split(separator: "@").first?.split(separator: ":").last.flatMap { Int($0) }
            return nodes.first { $0.port == port }
        }
    }

    public func stop() async {
        for node in nodes { await node.stop() }
    }
}

/// A master, its replica and three sentinels watching them (quorum 2, a master is down after
/// 1 s), from Debian's redis-server and redis-sentinel.
public final class RedisSentinelSet: @unchecked Sendable {
    public let master: RedisServer
    public let replica: RedisServer
    public let sentinelPorts: [Int]
    public let name = "gwmaster"
    private let directory: String
    public var url: String { "redis-sentinel://" + sentinelPorts.map { "127.0.0.1:\($0)" }.joined(separator: ",") + "/\(name)" }

    private init(master: RedisServer, replica: RedisServer, sentinelPorts: [Int], directory: String) {
        self.master = master
        self.replica = replica
        self.sentinelPorts = sentinelPorts
        self.directory = directory
    }

    public static func start() async throws -> RedisSentinelSet {
        let master = try await RedisServer.start()
        let replica = try await RedisServer.start(arguments: ["--replicaof", "127.0.0.1", String(master.port)])
        let directory = NSTemporaryDirectory() + "gateway-sentinel-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        var ports: [Int] = []
        for index in 0..<3 {
            let port = try freePort()
            ports.append(port)
            let file = directory + "/sentinel-\(index).conf"
            try """
                port \(port)
                bind 127.0.0.1
                protected-mode no
                dir \(directory)
                pidfile \(directory)/sentinel-\(index).pid
                sentinel monitor gwmaster 127.0.0.1 \(master.port) 2
                sentinel down-after-milliseconds gwmaster 1000
                sentinel failover-timeout gwmaster 5000
                sentinel parallel-syncs gwmaster 1

                """.write(toFile: file, atomically: true, encoding: .utf8)
            try startWatched("/usr/bin/redis-sentinel \(file)", log: directory + "/sentinel-\(index).log")
        }
        let set = RedisSentinelSet(master: master, replica: replica, sentinelPorts: ports, directory: directory)
        // Ready when every sentinel knows the replica (and so can fail over to it).
        let deadline = ContinuousClock.now + .seconds(20)
        while ContinuousClock.now < deadline {
            var ready = true
            for port in ports {
                let replicas = (try? await runProcess("/usr/bin/redis-cli", ["-p", String(port), "SENTINEL", "REPLICAS", "gwmaster"])) ?? ""
                if !replicas.contains(String(replica.port)) { ready = false }
            }
            if ready { return set }
            try await Task.sleep(for: .milliseconds(100))
        }
        await set.stop()
        throw TestClientError("sentinels did not see the replica within 20 s")
    }

    /// The replica has everything the master wrote.
    public func waitForReplication(seconds: Int = 10) async throws {
        let deadline = ContinuousClock.now + .seconds(seconds)
        while ContinuousClock.now < deadline {
            let info = (try? await master.command("INFO", "replication")) ?? ""
            let lines = info.split(whereSeparator: \.isNewline)
            if let offset = lines.first(where: { $0.hasPrefix("master_repl_offset:") })?.dropFirst("master_repl_offset:".count),
               lines.contains(where: { $0.hasPrefix("slave0:") && $0.contains("offset=\(offset),") }) {
                return
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestClientError("the replica did not catch up within \(seconds) s")
    }

    /// The master the sentinels name now.
    public func currentMasterPort() async throws -> Int? {
        let answer = try await runProcess("/usr/bin/redis-cli", ["-p", String(sentinelPorts[0]), "SENTINEL", "get-master-addr-by-name", name])
        return answer.split(separator: "\n").last.flatMap { Int($0.trimmingCharacters(in: .whitespaces)) }
    }

    public func stop() async {
        for index in 0..<sentinelPorts.count {
            if let text = try? String(contentsOfFile: directory + "/sentinel-\(index).pid", encoding: .utf8),
               let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
                kill(pid, SIGKILL)
            }
        }
        await master.stop()
        await replica.stop()
        try? FileManager.default.removeItem(atPath: directory)
    }
}
