/// What an exchange says about its server, for passive outlier detection.
enum ExchangeOutcome: Equatable {
    case success
    /// A 5xx answer, or a connection that failed after it was made.
    case failure
    /// The connection could not be made at all.
    case connectFailure
    /// Nothing about the server (the client left, timed out, sent too much; no server tried).
    case neutral
}
