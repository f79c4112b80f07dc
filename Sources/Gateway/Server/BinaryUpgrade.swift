import CFDPassing
import Foundation
import Logging
import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

#if canImport(Glibc)
import Glibc
#endif

/// Binary upgrade without refusing a connection, as HAProxy (`-x`) and Pingora (`--upgrade`)
/// do it: the running gateway listens on a Unix socket (`upgrade_socket`); a new process
/// started with `--upgrade` connects, asks for the listening sockets, gets them with
/// SCM_RIGHTS, starts serving on them, and says `READY`. Only then does the old process stop
/// accepting and drain. Both hold the same sockets meanwhile, so connections waiting in the
/// kernel's accept queue are accepted by one or the other, never reset. If the new process
/// fails before `READY`, the old one carries on as if nothing happened.
public enum BinaryUpgrade {
    /// What the old process sends with the descriptors: which `listen:` entry (and the admin
    /// listener) each one is, in order.
    struct Offer: Codable {
        var listeners: [String]
        var admin: String
        var pid: Int32
    }

    /// The sockets a new process took over, by configured address.
    public struct InheritedSockets: Sendable {
        var listeners: [String: CInt]
        var admin: (address: String, descriptor: CInt)?
        /// The old process's connection: `READY` goes back on it.
        fileprivate var connection: CInt
        public var oldPID: Int32

        /// Tells the old process to stop accepting and drain, and waits until it has closed its
        /// listeners (so the two never accept from the same socket at once: connections wait
        /// in the kernel's queue meanwhile). Returns whether it said so.
        func ready() -> Bool {
            defer { close(connection) }
            let message = Array("READY\n".utf8)
            guard message.withUnsafeBytes({ gw_send_fds(connection, $0.baseAddress, $0.count, nil, 0) }) == message.count else { return false }
            return BinaryUpgrade.readLine(connection) == "CLOSED"
        }

        /// The descriptors nobody claimed (a listener the new configuration dropped).
        func closeUnclaimed(_ claimed: Set<CInt>) {
            for descriptor in Array(listeners.values) + [admin?.descriptor].compactMap({ $0 }) where !claimed.contains(descriptor) {
                close(descriptor)
            }
        }
    }

    public struct Failure: Error, CustomStringConvertible {
        public var description: String
    }

    /// The new process's side: takes the sockets of the gateway listening on `path`.
    public static func takeOver(from path: String) throws -> InheritedSockets {
        let connection = try connect(to: path)
        let request = Array("SOCKETS\n".utf8)
        guard request.withUnsafeBytes({ gw_send_fds(connection, $0.baseAddress, $0.count, nil, 0) }) == request.count else {
            close(connection)
            throw Failure(description: "cannot ask the running gateway at \(path) for its sockets: \(String(cString: strerror(errno)))")
        }
        var buffer = [UInt8](repeating: 0, count: 65536)
        var descriptors = [CInt](repeating: -1, count: 64)
        var count: CInt = 64
        var timeout = timeval(tv_sec: 10, tv_usec: 0)
        setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let received = buffer.withUnsafeMutableBytes { gw_recv_fds(connection, $0.baseAddress, $0.count, &descriptors, &count) }
        guard received > 0, let offer = try? JSONDecoder().decode(Offer.self, from: Data(buffer[0..<Int(received)])),
              Int(count) == offer.listeners.count + 1
        else {
            for descriptor in descriptors.prefix(Int(count)) { close(descriptor) }
            close(connection)
            throw Failure(description: "the running gateway at \(path) did not hand over its sockets")
        }
        var listeners: [String: CInt] = [:]
        for (index, address) in offer.listeners.enumerated() { listeners[address] = descriptors[index] }
        return InheritedSockets(listeners: listeners, admin: (offer.admin, descriptors[offer.listeners.count]),
                                connection: connection, oldPID: offer.pid)
    }

    private static func connect(to path: String) throws -> CInt {
        let descriptor = gw_unix_stream_socket()
        guard descriptor >= 0 else { throw Failure(description: "socket: \(String(cString: strerror(errno)))") }
        var address: sockaddr_un
        do {
            address = try unixAddress(path)
        } catch {
            close(descriptor)
            throw error
        }
        let result = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(descriptor, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        guard result == 0 else {
            let reason = String(cString: strerror(errno))
            close(descriptor)
            throw Failure(description: "no running gateway answers at \(path) (upgrade_socket): \(reason)")
        }
        return descriptor
    }

    /// One line (at most 64 bytes), blocking up to the socket's receive timeout.
    static func readLine(_ connection: CInt) -> String? {
        var bytes: [UInt8] = []
        var byte: UInt8 = 0
        while bytes.count < 64 {
            guard read(connection, &byte, 1) == 1 else { return nil }
            if byte == UInt8(ascii: "\n") { return String(decoding: bytes, as: UTF8.self) }
            bytes.append(byte)
        }
        return nil
    }

    private static func unixAddress(_ path: String) throws -> sockaddr_un {
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        let bytes = Array(path.utf8)
        guard bytes.count < MemoryLayout.size(ofValue: address.sun_path) else {
            throw Failure(description: "upgrade_socket path too long: \(path)")
        }
        withUnsafeMutableBytes(of: &address.sun_path) { raw in
            for (index, byte) in bytes.enumerated() { raw[index] = byte }
        }
        return address
    }

    /// The old process's side: a Unix socket at `path`, served on a thread of its own (a
    /// handover is rare and short; it never touches an event loop).
    final class Listener: Sendable {
        private let descriptor: CInt
        let path: String
        private let stopped = NIOLockedValueBox(false)
        private let thread: NIOThreadPool

        /// - Parameters:
        ///   - offer: what to hand over when asked (the listeners' descriptors, the admin one).
        ///   - handedOver: called once a new process said `READY`; it stops accepting before it
        ///     returns (the new process starts accepting when it hears `CLOSED`).
        init(path: String, logger: Logger, offer: @escaping @Sendable () -> (Offer, [CInt]), handedOver: @escaping @Sendable () -> Void) throws {
            self.path = path
            var address = try BinaryUpgrade.unixAddress(path)
            unlink(path)
            let fd = gw_unix_stream_socket()
            guard fd >= 0 else { throw Failure(description: "upgrade_socket \(path): \(String(cString: strerror(errno)))") }
            let bound = withUnsafePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
            }
            guard bound == 0, listen(fd, 4) == 0 else {
                let reason = String(cString: strerror(errno))
                close(fd)
                throw Failure(description: "upgrade_socket \(path): \(reason)")
            }
            chmod(path, 0o600)
            descriptor = fd
            thread = NIOThreadPool(numberOfThreads: 1)
            thread.start()
            let descriptor = self.descriptor, stopped = self.stopped
            thread.submit { _ in
                Self.serve(descriptor, stopped: stopped, logger: logger, offer: offer, handedOver: handedOver)
            }
        }

        private static func serve(_ descriptor: CInt, stopped: NIOLockedValueBox<Bool>, logger: Logger,
                                  offer: @Sendable () -> (Offer, [CInt]), handedOver: @Sendable () -> Void) {
            while !stopped.withLockedValue({ $0 }) {
                var waiting = pollfd(fd: descriptor, events: Int16(POLLIN), revents: 0)
                guard poll(&waiting, 1, 200) > 0 else { continue }
                let connection = accept(descriptor, nil, nil)
                guard connection >= 0 else { continue }
                defer { close(connection) }
                var timeout = timeval(tv_sec: 60, tv_usec: 0)
                setsockopt(connection, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
                guard BinaryUpgrade.readLine(connection) == "SOCKETS" else { continue }
                let (offerMessage, descriptors) = offer()
                guard let json = try? JSONEncoder().encode(offerMessage) else { continue }
                let sent = Array(json).withUnsafeBytes { raw in
                    descriptors.withUnsafeBufferPointer { gw_send_fds(connection, raw.baseAddress, raw.count, $0.baseAddress, CInt($0.count)) }
                }
                guard sent == json.count else {
                    logger.warning("binary upgrade: could not hand over the sockets", metadata: ["error": "\(String(cString: strerror(errno)))"])
                    continue
                }
                logger.notice("binary upgrade: a new process took the listening sockets; waiting for it to be ready")
                // The new process starts serving, then says READY; if it exits first, this
                // process just goes on.
                guard BinaryUpgrade.readLine(connection) == "READY" else {
                    logger.warning("binary upgrade: the new process went away before it was ready; carrying on")
                    continue
                }
                stopped.withLockedValue { $0 = true }
                handedOver()
                let closed = Array("CLOSED\n".utf8)
                _ = closed.withUnsafeBytes { gw_send_fds(connection, $0.baseAddress, $0.count, nil, 0) }
            }
        }

        /// Stops answering; the socket file is removed unless a new process has taken the path.
        func stop(removingFile: Bool) async {
            stopped.withLockedValue { $0 = true }
            close(descriptor)
            if removingFile { unlink(path) }
            try? await thread.shutdownGracefully()
        }
    }
}
