import NIOConcurrencyHelpers
import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// One open `listen:` address. Its settings and TLS certificates are read once per accepted
/// connection, so a reload changes them for the connections that come next without closing the
/// socket (and so without refusing anyone in its accept queue).
final class ListenerSlot: Sendable {
    struct Current: Sendable {
        var config: ListenerConfig
        var settings: ListenerRuntime
        /// nil: cleartext.
        var certificates: ListenerCertificates?
    }

    let address: ListenAddress
    private let state: NIOLockedValueBox<Current>
    private let boundChannel = NIOLockedValueBox<Channel?>(nil)
    /// A duplicate of the listening socket's descriptor, kept for a binary upgrade.
    private let handoverBox = NIOLockedValueBox<CInt?>(nil)

    init(_ config: ListenerConfig) {
        address = config.address
        state = NIOLockedValueBox(Current(config: config, settings: ListenerRuntime(config),
                                          certificates: config.material.map(ListenerCertificates.init)))
    }

    /// Read once per accepted connection.
    var current: Current { state.withLockedValue { $0 } }

    var channel: Channel? {
        get { boundChannel.withLockedValue { $0 } }
        set { boundChannel.withLockedValue { $0 = newValue } }
    }

    var handover: CInt? {
        get { handoverBox.withLockedValue { $0 } }
        set { handoverBox.withLockedValue { $0 = newValue } }
    }

    /// Stops accepting: the channel closes, and the duplicate too (or the socket would stay
    /// open, and connections would queue on it unanswered).
    func close() async {
        try? await channel?.close()
        closeHandover()
    }

    func closeHandover() {
        if let descriptor = handoverBox.withLockedValue({ box in defer { box = nil }; return box }) {
            _ = Glibc.close(descriptor)
        }
    }

    /// A reload's `listen:` entry for this address: new settings, and the certificates read
    /// again (an existing TLS listener swaps its context; one turning TLS on gets one).
    func update(_ config: ListenerConfig) {
        state.withLockedValue { current in
            var certificates: ListenerCertificates?
            if let material = config.material {
                certificates = current.certificates ?? ListenerCertificates(material)
                certificates!.replace(with: material)
            }
            current = Current(config: config, settings: ListenerRuntime(config), certificates: certificates)
        }
    }
}
