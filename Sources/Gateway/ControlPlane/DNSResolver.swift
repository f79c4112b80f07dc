import CAres
import CFDPassing

#if canImport(Glibc)
import Glibc
#endif

/// Looks host names up with c-ares: every address of a name (IPv4 and IPv6) and the smallest
/// TTL of the answer, from the configured DNS servers or those of /etc/resolv.conf. A lookup
/// blocks its thread (c-ares' own poll loop), so it runs on a thread pool, never on an event loop.
struct DNSResolver: Sendable {
    /// `IP` or `IP:PORT` (nil or empty: /etc/resolv.conf, re-read at every lookup).
    var servers: [String]
    var timeoutMilliseconds: Int
    var tries: Int
    /// AF_UNSPEC (every address), AF_INET or AF_INET6.
    var family: Int32 = AF_UNSPEC

    struct Answer: Sendable, Equatable {
        /// Sorted, textual (`10.0.0.5`, `fd00::5`): the same answer compares equal.
        var addresses: [String]
        /// The smallest TTL of the records (nil when the source has none, such as /etc/hosts).
        var ttlSeconds: Int?
    }

    struct Failure: Error, CustomStringConvertible {
        var host: String
        var reason: String
        var description: String { "cannot resolve '\(host)': \(reason)" }
    }

    private static let initialized: Bool = ares_library_init(ARES_LIB_INIT_ALL) == ARES_SUCCESS

    /// What the callback leaves for the poll loop (same thread: c-ares calls back from
    /// `ares_process_fd` or `ares_destroy`).
    private final class Pending {
        var family: Int32 = AF_UNSPEC
        var done = false
        var status = ARES_SUCCESS
        var addresses: [String] = []
        var ttl: Int?
    }

    func lookup(_ host: String) throws -> Answer {
        guard Self.initialized else { throw Failure(host: host, reason: "c-ares did not initialise") }
        var channel: ares_channel?
        var options = ares_options()
        options.timeout = Int32(timeoutMilliseconds)
        options.tries = Int32(tries)
        let initStatus = ares_init_options(&channel, &options, ARES_OPT_TIMEOUTMS | ARES_OPT_TRIES)
        guard initStatus == ARES_SUCCESS, let channel else {
            throw Failure(host: host, reason: String(cString: ares_strerror(initStatus)))
        }
        defer { ares_destroy(channel) }
        if !servers.isEmpty {
            let status = ares_set_servers_ports_csv(channel, servers.joined(separator: ","))
            guard status == ARES_SUCCESS else {
                throw Failure(host: host, reason: "bad DNS server list \(servers): \(String(cString: ares_strerror(status)))")
            }
        }
        var hints = ares_addrinfo_hints()
        // Always both families, filtered below: c-ares 1.18 (Debian 12) can spin forever in
        // ares_process_fd on an AF_INET-only getaddrinfo.
        hints.ai_family = AF_UNSPEC
        hints.ai_socktype = gw_sock_stream()
        let pending = Pending()
        pending.family = family
        let argument = Unmanaged.passRetained(pending).toOpaque()
        ares_getaddrinfo(channel, host, nil, &hints, { argument, status, _, result in
            let pending = Unmanaged<Pending>.fromOpaque(argument!).takeRetainedValue()
            pending.done = true
            pending.status = status
            guard let result else { return }
            defer { ares_freeaddrinfo(result) }
            var node = result.pointee.nodes
            while let current = node {
                let family = current.pointee.ai_family
                if pending.family == AF_UNSPEC || family == pending.family, let text = Self.text(of: current.pointee.ai_addr) {
                    pending.addresses.append(text)
                }
                pending.ttl = min(pending.ttl ?? Int.max, Int(current.pointee.ai_ttl))
                node = current.pointee.ai_next
            }
        }, argument)
        // c-ares' own loop: wait on its sockets for as long as it says, then let it work.
        let deadline = monotonicMilliseconds() + Int64(timeoutMilliseconds * max(1, tries) * max(1, servers.count)) + 1000
        while !pending.done {
            if monotonicMilliseconds() > deadline {
                ares_cancel(channel)
                break
            }
            var sockets = [ares_socket_t](repeating: ARES_SOCKET_BAD, count: Int(ARES_GETSOCK_MAXNUM))
            let bits = ares_getsock(channel, &sockets, ARES_GETSOCK_MAXNUM)
            var polled: [pollfd] = []
            for index in 0..<Int(ARES_GETSOCK_MAXNUM) {
                let readable = bits & (1 << index) != 0
                let writable = bits & (1 << (index + Int(ARES_GETSOCK_MAXNUM))) != 0
                guard readable || writable else { continue }
                polled.append(pollfd(fd: sockets[index], events: Int16((readable ? POLLIN : 0) | (writable ? POLLOUT : 0)), revents: 0))
            }
            var wait = timeval()
            let limit = ares_timeout(channel, nil, &wait)
            let milliseconds = limit.map { Int32($0.pointee.tv_sec * 1000 + $0.pointee.tv_usec / 1000) } ?? 100
            let ready = poll(&polled, nfds_t(polled.count), max(1, min(milliseconds, 1000)))
            if ready <= 0 {
                ares_process_fd(channel, ARES_SOCKET_BAD, ARES_SOCKET_BAD)  // timeouts and retries
                continue
            }
            for entry in polled where entry.revents != 0 {
                let read = entry.revents & Int16(POLLIN | POLLERR | POLLHUP) != 0 ? entry.fd : ARES_SOCKET_BAD
                let write = entry.revents & Int16(POLLOUT) != 0 ? entry.fd : ARES_SOCKET_BAD
                ares_process_fd(channel, read, write)
            }
        }
        guard pending.done else { throw Failure(host: host, reason: "timed out") }
        guard pending.status == ARES_SUCCESS else {
            throw Failure(host: host, reason: String(cString: ares_strerror(pending.status)))
        }
        guard !pending.addresses.isEmpty else { throw Failure(host: host, reason: "no addresses") }
        let ttl = pending.ttl.flatMap { $0 > 0 ? $0 : nil }
        return Answer(addresses: Array(Set(pending.addresses)).sorted(), ttlSeconds: ttl)
    }

    private static func text(of address: UnsafeMutablePointer<sockaddr>?) -> String? {
        guard let address else { return nil }
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { ipv4 in
                var raw = ipv4.pointee.sin_addr
                return inet_ntop(AF_INET, &raw, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { ipv6 in
                var raw = ipv6.pointee.sin6_addr
                return inet_ntop(AF_INET6, &raw, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        default:
            return nil
        }
    }

    private func monotonicMilliseconds() -> Int64 {
        var now = timespec()
        clock_gettime(CLOCK_MONOTONIC, &now)
        return Int64(now.tv_sec) * 1000 + Int64(now.tv_nsec) / 1_000_000
    }
}
