import NIOCore

/// Keeps the issuers' key sets fresh: at start (bounded by each issuer's `jwks_timeout`, so the
/// first requests find keys), then every `jwks_refresh` (sooner while a set is empty or its last
/// fetch failed). Reads the current configuration each round, so a reload's new issuers are
/// picked up and removed ones forgotten.
enum JWKSRefresher {
    /// The first fetch of every key set, all at once.
    static func fetchAll(_ auth: AuthRuntime?, on group: EventLoopGroup) async {
        guard let auth else { return }
        await withTaskGroup(of: Void.self) { tasks in
            for source in auth.jwksSources where source.isDue() {
                tasks.addTask { try? await source.refresh(on: group.next(), reason: .start).get() }
            }
        }
    }

    /// Until cancelled (shutdown).
    static func run(auth: @escaping @Sendable () -> AuthRuntime?, on group: EventLoopGroup) async {
        while !Task.isCancelled {
            if let auth = auth() {
                for source in auth.jwksSources where source.isDue() {
                    _ = source.refresh(on: group.next(), reason: .periodic)
                }
            }
            try? await Task.sleep(for: .seconds(1))
        }
    }
}
