import Cache
import CLibpq
import Redis

/// The C libraries linked in, by version, for `/health` and the start-up log.
enum NativeLibraries {
    /// libpq's version as `major.minor` (PQlibVersion gives 150018 for 15.18).
    static var libpq: String {
        let version = Int(PQlibVersion())
        return "\(version / 10000).\(version % 10000)"
    }

    static var all: [String: String] {
        ["hiredis": HiredisLibrary.version, "libpq": libpq]
    }
}
