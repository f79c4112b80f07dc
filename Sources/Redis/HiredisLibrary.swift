import CHiredis

/// The hiredis the Redis module is built against (its RESP reader and command formatter are
/// what the Redis client uses); reported by the admin API.
public enum HiredisLibrary {
    public static var version: String { "\(HIREDIS_MAJOR).\(HIREDIS_MINOR).\(HIREDIS_PATCH)" }
}
