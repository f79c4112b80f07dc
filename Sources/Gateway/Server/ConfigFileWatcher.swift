import NIOCore

#if canImport(Glibc)
import Glibc
#endif

/// `reload.watch`: looks at the configuration file every `reload.watch_interval` and reloads
/// when it changed. Editors and config managers often replace a file in several steps, so a
/// change is acted on once the file has stayed the same for one more look.
struct ConfigFileWatcher {
    /// What identifies one version of the file without reading it.
    struct Signature: Equatable {
        var inode: UInt64
        var size: Int64
        var modified: Int64
    }

    static func signature(of path: String) -> Signature? {
        var info = stat()
        guard stat(path, &info) == 0 else { return nil }
        return Signature(inode: UInt64(info.st_ino), size: Int64(info.st_size),
                         modified: Int64(info.st_mtim.tv_sec) * 1_000_000_000 + Int64(info.st_mtim.tv_nsec))
    }

    let path: String
    let server: GatewayServer

    /// Until cancelled. The setting is read on every look, so a reload can turn watching on
    /// or off.
    func run() async {
        var seen = Self.signature(of: path)
        var pending: Signature?
        while !Task.isCancelled {
            let settings = server.config.reload
            try? await Task.sleep(for: .nanoseconds(settings.watchInterval.nanoseconds))
            guard settings.watch, !Task.isCancelled else { continue }
            let now = Self.signature(of: path)
            if now == seen {
                pending = nil
                continue
            }
            // Missing (being replaced) or just changed: wait for it to settle.
            guard let now, now == pending else {
                pending = now
                continue
            }
            seen = now
            pending = nil
            server.logger.info("configuration file changed; reloading", metadata: ["file": "\(path)"])
            await server.reload(from: path)
        }
    }
}
