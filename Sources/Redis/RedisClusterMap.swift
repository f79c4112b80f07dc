/// Which node is master of each of Redis Cluster's 16384 slots, read from `CLUSTER SLOTS`.
/// Pure: parsing and lookups; the loop client owns one and replaces it on a refresh.
struct RedisClusterMap: Equatable {
    /// The masters, in the order the reply named them.
    private(set) var masters: [RedisEndpoint] = []
    /// Per slot, the index of its master in `masters` (-1: no master known).
    private(set) var slotMasters = [Int16](repeating: -1, count: RedisSlot.count)

    init() {}

    /// - Parameter askedHost: the node that answered: a master whose address the reply leaves
    ///   empty is on that host (as Redis writes it when it knows no better).
    init(clusterSlots reply: RedisValue, askedHost: String) throws {
        guard let ranges = reply.array else { throw RedisError.protocolError("CLUSTER SLOTS: not an array") }
        for range in ranges {
            guard let parts = range.array, parts.count >= 3, let start = parts[0].integer, let end = parts[1].integer,
                  let master = parts[2].array, master.count >= 2, let host = master[0].string, let port = master[1].integer,
                  (0..<Int64(RedisSlot.count)).contains(start), (start..<Int64(RedisSlot.count)).contains(end)
            else { throw RedisError.protocolError("CLUSTER SLOTS: unexpected range \(range)") }
            let endpoint = RedisEndpoint(host: host.isEmpty || host == "?" ? askedHost : host, port: Int(port))
            for slot in Int(start)...Int(end) { assign(slot, to: endpoint) }
        }
    }

    func master(ofSlot slot: Int) -> RedisEndpoint? {
        let index = slotMasters[slot]
        return index < 0 ? nil : masters[Int(index)]
    }

    /// Slots without a master (the cluster is down for their keys).
    var uncoveredSlots: Int { slotMasters.reduce(0) { $0 + ($1 < 0 ? 1 : 0) } }

    /// `MOVED slot host:port`: that slot is now there.
    mutating func assign(_ slot: Int, to endpoint: RedisEndpoint) {
        if let index = masters.firstIndex(of: endpoint) {
            slotMasters[slot] = Int16(index)
        } else {
            masters.append(endpoint)
            slotMasters[slot] = Int16(masters.count - 1)
        }
    }

    /// `MOVED 3999 127.0.0.1:6381` or `ASK 3999 127.0.0.1:6381` → (slot, endpoint).
    static func redirect(_ message: String) -> (ask: Bool, slot: Int, endpoint: RedisEndpoint)? {
        let parts = message.split(separator: " ")
        guard parts.count == 3, parts[0] == "MOVED" || parts[0] == "ASK", let slot = Int(parts[1]), (0..<RedisSlot.count).contains(slot),
              let endpoint = RedisEndpoint(redisText: parts[2])
        else { return nil }
        return (parts[0] == "ASK", slot, endpoint)
    }
}
