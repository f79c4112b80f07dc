/// The `# HELP` text of every metric family `/metrics` exposes, in one place, so Prometheus,
/// Grafana and `promtool check metrics` show what each one means. The families come from several
/// renderers (the Prometheus registry, which has no help text, and the filters' own text);
/// `annotate` adds the help line in front of each `# TYPE` line that has none.
enum MetricHelp {
    static let texts: [String: String] = [
        // Requests and errors
        "gateway_requests_total": "Requests answered, by pool, method class and status class.",
        "gateway_request_duration_seconds": "Time from a request's head to its response's end, by pool.",
        "gateway_requests_by_protocol_total": "Requests answered, by the client's HTTP version.",
        "gateway_errors_total": "Requests that ended in an error, by kind (bad_request, timeout, upstream_connect, rate_limited, ...).",
        "gateway_retries_total": "Retries: sent again (with the failure that caused it) or refused by the retry budget.",
        "gateway_client_connections": "Client connections open now.",
        "gateway_access_log_dropped_lines_total": "Access log lines dropped because their output fell behind.",
        // Upstreams, pools, databases
        "gateway_upstream_connections": "Connections to each upstream server, open and idle.",
        "gateway_upstream_available": "1 if the server takes requests (healthy, not ejected, not in maintenance).",
        "gateway_upstream_ejected": "1 if passive outlier detection ejected the server on some event loop.",
        "gateway_outlier_ejections_total": "Servers ejected by passive outlier detection, by pool and server.",
        "gateway_health_transitions_total": "Active health check state changes, by pool, server and new state.",
        "gateway_pool_fresh": "1 if the pool's replicas are within max_lag of the primary.",
        "gateway_pool_freshness_changes_total": "Times a pool became fresh or stale, by pool.",
        "gateway_pool_takes_writes": "1 for the pool that writes go to now.",
        "gateway_write_pool_changes_total": "Times the write pool changed, by the pool writes go to now (or none).",
        "gateway_database_reachable": "1 if the database answered its last probe.",
        "gateway_database_in_recovery": "1 if the database is a replica (pg_is_in_recovery).",
        "gateway_database_replay_lag_bytes": "WAL bytes the replica has not yet replayed.",
        "gateway_database_replay_lag_seconds": "Seconds since the replica last replayed a transaction the primary committed.",
        "gateway_database_fresh": "1 if the database's lag is within its pool's max_lag.",
        "gateway_database_connections": "Client connections the database has now (pg_stat_activity, every client, not only the gateway's APIs).",
        "gateway_database_max_connections": "The database's max_connections setting.",
        "gateway_dns_lookups_total": "DNS lookups of upstream names, by result.",
        "gateway_dns_changes_total": "Times an upstream name's addresses changed, by host.",
        // Read-your-writes
        "gateway_consistency_reads_total": "Reads that carried a read-your-writes token, by outcome.",
        "gateway_consistency_tokens_total": "Read-your-writes tokens issued after writes, by kind.",
        "gateway_consistency_wait_seconds": "How long reads waited for a replica to replay their client's write.",
        "gateway_consistency_store_errors_total": "Failed lookups and records of tokens in the Redis consistency store, by operation.",
        // Cache
        "gateway_cache_requests_total": "Cacheable requests, by result (hit, miss, stale, bypass, ...).",
        "gateway_cache_coalesced_total": "Misses that waited for another request's fetch of the same key.",
        "gateway_cache_not_modified_total": "Conditional requests answered 304 from the cache.",
        "gateway_cache_stale_if_error_total": "Stale entries served because the upstream failed.",
        "gateway_cache_refreshes_total": "Background refreshes of stale entries.",
        "gateway_cache_revalidated_total": "Stale entries the upstream confirmed with 304.",
        "gateway_cache_stores_total": "Responses stored, by result.",
        "gateway_cache_invalidations_total": "Invalidations of cached entries by writes or purges, by result.",
        "gateway_cache_local_entries": "Entries in the in-process cache.",
        "gateway_cache_local_bytes": "Bytes held by the in-process cache.",
        "gateway_cache_near_invalidations_total": "Near-cache entries dropped on an invalidation from another instance.",
        "gateway_cache_near_flushes_total": "Times the near cache was emptied (its invalidation feed was lost).",
        // Rate limits
        "gateway_rate_limit_requests_total": "Requests checked against a rate-limit policy, by result.",
        "gateway_rate_limit_fallbacks_total": "Checks decided in process because Redis was unavailable.",
        "gateway_rate_limit_redis_calls_total": "Redis calls of the limiter (checks and lease takes), by policy.",
        "gateway_rate_limit_leased_total": "Decisions taken from a lease without a Redis call, by policy.",
        "gateway_rate_limit_local_keys": "Keys in the in-process rate-limit table.",
        // Auth
        "gateway_auth_verifications_total": "JWT signature and claim checks, by result (cache hits are not checks).",
        "gateway_auth_token_cache_hits_total": "Requests whose token was already verified on their event loop.",
        "gateway_auth_token_cache_entries": "Verified tokens remembered, over all event loops.",
        "gateway_auth_requests_total": "Requests of routes with auth, by what auth made of them.",
        "gateway_auth_jwks_refreshes_total": "JWKS fetches by issuer and result.",
        "gateway_auth_jwks_keys": "Keys in each issuer's fetched key set.",
        // Redis
        "gateway_redis_connected": "1 if every event loop has a connection to Redis.",
        "gateway_redis_circuit_open": "1 if the circuit breaker stops commands to Redis on some event loop.",
        "gateway_redis_circuit_openings_total": "Times the Redis circuit breaker opened.",
        "gateway_redis_connects_total": "Connections made to Redis, by result.",
        "gateway_redis_redirects_total": "Redis Cluster MOVED and ASK replies followed.",
        "gateway_redis_topology_refreshes_total": "Reads of the Redis Cluster slot map.",
        "gateway_redis_master_changes_total": "Times an event loop moved to another Redis master (Sentinel or Cluster failover).",
        "gateway_redis_errors_total": "Redis commands that failed, by kind.",
        "gateway_redis_command_duration_seconds": "Time from sending a Redis command to its reply.",
        // TLS, HTTP/2, tunnels, reloads
        "gateway_tls_handshakes_total": "TLS handshakes completed, by listener and TLS version.",
        "gateway_tls_handshake_errors_total": "TLS handshakes that failed, by listener and reason.",
        "gateway_tls_certificate_expiry_timestamp_seconds": "When each served or client certificate expires (Unix time).",
        "gateway_tls_certificate_reloads_total": "Certificate reloads, by result.",
        "gateway_http2_connections_open": "HTTP/2 client connections open now.",
        "gateway_http2_connections_total": "HTTP/2 client connections accepted, by listener.",
        "gateway_http2_streams_open": "HTTP/2 streams open now.",
        "gateway_http2_streams_reset_total": "HTTP/2 streams reset by the client.",
        "gateway_http2_stream_errors_total": "HTTP/2 streams the gateway reset, by reason.",
        "gateway_http2_connection_errors_total": "HTTP/2 connections closed for a protocol error or abuse, by reason.",
        "gateway_http2_goaway_sent_total": "GOAWAY frames sent, by reason.",
        "gateway_tunnels_open": "WebSocket and CONNECT tunnels open now.",
        "gateway_tunnels_total": "WebSocket and CONNECT tunnels opened.",
        "gateway_tunnel_bytes_total": "Bytes carried by tunnels, by direction.",
        "gateway_config_reloads_total": "Configuration reloads, by result.",
        // The process
        "gateway_event_loops": "Event loops (threads serving requests): the cores the gateway uses.",
        "process_cpu_seconds_total": "User and system CPU time the gateway process has used.",
        "process_resident_memory_bytes": "The gateway process's resident memory.",
        "process_start_time_seconds": "When the gateway process started (Unix time).",
        "process_open_fds": "File descriptors the gateway process has open.",
        "process_max_fds": "The gateway process's limit on open file descriptors.",
    ]

    /// `body` with a `# HELP` line before every `# TYPE` line that lacks one.
    static func annotate(_ body: [UInt8]) -> [UInt8] {
        var out: [UInt8] = []
        out.reserveCapacity(body.count + texts.count * 80)
        var previousLine: ArraySlice<UInt8> = []
        var start = body.startIndex
        while start < body.endIndex {
            let end = body[start...].firstIndex(of: UInt8(ascii: "\n")) ?? body.endIndex
            let line = body[start..<end]
            if line.starts(with: "# TYPE ".utf8) {
                let name = String(decoding: line.dropFirst(7).prefix { $0 != UInt8(ascii: " ") }, as: UTF8.self)
                if !previousLine.starts(with: Array("# HELP \(name) ".utf8)), let help = texts[name] {
                    out += Array("# HELP \(name) \(help)\n".utf8)
                }
            }
            out += line
            if end < body.endIndex { out.append(UInt8(ascii: "\n")) }
            previousLine = line
            start = end + 1
        }
        return out
    }
}
