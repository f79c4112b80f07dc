/// `reload:` — whether the gateway reloads its configuration file by itself when the file
/// changes (besides SIGHUP and `POST /admin/reload`), as Traefik's file provider does.
public struct ReloadConfig: Decodable, Sendable, Equatable {
    /// Watch the file: a change (its modification time, size or inode) triggers a reload.
    public var watch = false
    /// How often the file is looked at.
    public var watchInterval = ConfigDuration.seconds(1)

    enum CodingKeys: String, CodingKey, CaseIterable {
        case watch
        case watchInterval = "watch_interval"
    }

    public init() {}

    public init(from decoder: any Decoder) throws {
        try decoder.rejectUnknownKeys(CodingKeys.self)
        let c = try decoder.container(keyedBy: CodingKeys.self)
        watch = try c.decode(.watch, default: watch)
        watchInterval = try c.decode(.watchInterval, default: watchInterval)
        if watchInterval < .milliseconds(100) || watchInterval > .seconds(3600) {
            throw DecodingError.dataCorruptedError(forKey: .watchInterval, in: c, debugDescription: "expected 100ms...1h")
        }
    }
}
