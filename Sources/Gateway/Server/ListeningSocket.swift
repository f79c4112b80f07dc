import CFDPassing
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// A listening TCP socket the gateway opens itself (rather than letting NIO bind) so that it
/// holds the descriptor: a binary upgrade hands a duplicate of it to the new process, and the
/// kernel's accept queue, shared by both, loses no connection when the old process lets go.
enum ListeningSocket {
    /// socket, SO_REUSEADDR, bind, listen. Errors are `IOError`s, as NIO's bind throws.
    static func open(_ address: ListenAddress, backlog: Int32 = 4096) throws -> CInt {
        let socketAddress: SocketAddress
        do {
            socketAddress = try SocketAddress.makeAddressResolvingHost(address.host, port: address.port)
        } catch {
            throw IOError(errnoCode: EADDRNOTAVAIL, reason: "resolving \(address.host): \(error)")
        }
        let family: CInt = switch socketAddress {
        case .v6: AF_INET6
        default: AF_INET
        }
        let descriptor = gw_tcp_socket(family)
        guard descriptor >= 0 else { throw IOError(errnoCode: errno, reason: "socket") }
        var one: CInt = 1
        setsockopt(descriptor, SOL_SOCKET, SO_REUSEADDR, &one, socklen_t(MemoryLayout<CInt>.size))
        let bound = socketAddress.withSockAddr { pointer, length in bind(descriptor, pointer, socklen_t(length)) }
        guard bound == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "bind(descriptor:ptr:bytes:)")
        }
        guard listen(descriptor, backlog) == 0 else {
            let code = errno
            close(descriptor)
            throw IOError(errnoCode: code, reason: "listen")
        }
        return descriptor
    }
}
