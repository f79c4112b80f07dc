import Logging

/// SIGHUP: the TLS listeners' certificates, keys and client CAs are read again, so a renewed
/// certificate (certbot, cert-manager) is served without a restart. Until the live-operations
/// reload exists, this is all SIGHUP does.
extension GatewayServer {
    /// Reads the configuration file at `path` again and gives each TLS listener the `tls:` it
    /// now has (certificate files, ciphers, versions, client CA). New connections get it;
    /// established ones keep their session. If the file is invalid, a file is missing or a key
    /// does not match, or `listen:` itself changed, nothing changes and the error is logged
    /// with file, line and key. Returns whether the new certificates are in use.
    @discardableResult
    public func reloadCertificates(from path: String) -> Bool {
        let fresh: GatewayConfig
        do {
            fresh = try ConfigLoader.load(path: path)
        } catch {
            certificateReloadFailed(error.description)
            return false
        }
        let sameListeners = fresh.listeners.count == config.listeners.count
            && zip(fresh.listeners, config.listeners).allSatisfy { new, old in
                new.address == old.address && (new.material == nil) == (old.material == nil)
            }
        guard sameListeners else {
            certificateReloadFailed("\(path): listen: changed (addresses or which listeners have tls:); that needs a restart")
            return false
        }
        for warning in fresh.warnings {
            logger.warning("configuration", metadata: ["warning": "\(warning.description)"])
        }
        var names: [String] = []
        for (slot, listener) in zip(certificates, fresh.listeners) {
            guard let slot, let material = listener.material else { continue }
            slot.replace(with: material)
            names += material.identities.map { $0.names.first ?? "(default)" }
        }
        runtime.metrics.countEvent("gateway_tls_certificate_reloads_total", [("result", "ok")])
        logger.info("TLS certificates reloaded", metadata: ["certificates": "\(names.joined(separator: ","))"])
        return true
    }

    private func certificateReloadFailed(_ reason: String) {
        runtime.metrics.countEvent("gateway_tls_certificate_reloads_total", [("result", "error")])
        logger.error("TLS certificate reload failed; the certificates in use stay", metadata: ["error": "\(reason)"])
    }
}
