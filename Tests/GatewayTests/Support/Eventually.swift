/// Polls until `condition` holds or `timeout` passes; returns how long it took, or nil.
/// Many effects are asynchronous by design (stores to Redis after the response, closes,
/// health flips): tests wait for them with a bound instead of sleeping a guessed time.
func waitUntil(_ timeout: Duration, _ condition: () async throws -> Bool) async rethrows -> Duration? {
    let start = ContinuousClock.now
    while ContinuousClock.now - start < timeout, !Task.isCancelled {
        if try await condition() { return ContinuousClock.now - start }
        try? await Task.sleep(for: .milliseconds(20))
    }
    return try await condition() ? ContinuousClock.now - start : nil
}

/// Whether `condition` comes to hold within `timeout`.
func eventually(_ timeout: Duration = .seconds(5), _ condition: () async throws -> Bool) async rethrows -> Bool {
    try await waitUntil(timeout, condition) != nil
}
