import Testing

@testable import Gateway

@Suite struct ConfigLoaderTests {
    let minimal = """
        listen: 127.0.0.1:8080
        pools:
          primary: { role: primary, servers: [http://127.0.0.1:9000] }
        """

    func parseError(_ yaml: String, environment: [String: String] = [:]) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "gw.yaml", environment: environment)
            return nil
        } catch {
            return error
        }
    }

    @Test func minimalConfigGetsDefaults() throws {
        let config = try ConfigLoader.parse(yaml: minimal)
        #expect(config.listen == ListenAddress(host: "127.0.0.1", port: 8080))
        #expect(config.admin == ListenAddress(host: "127.0.0.1", port: 9901))
        #expect(config.pools.map(\.name) == ["primary"])
        #expect(config.pools[0].servers == [ServerConfig(url: UpstreamURL(host: "127.0.0.1", port: 9000))])
        #expect(config.timeouts.clientHeader == .seconds(10))
        #expect(config.limits.maxBodySize == ByteSize(10 << 20))
        #expect(config.debugHeaders == false)
    }

    @Test func fullSectionsAndOrderOfPools() throws {
        let config = try ConfigLoader.parse(yaml: """
            listen: ":8081"
            admin: "[::1]:9902"
            event_loops: 1
            debug_headers: true
            access_log: false
            trusted_proxies: [10.0.0.0/8, "::1"]
            limits: { max_header_size: 16k, max_headers: 50, max_body_size: 1MiB }
            timeouts: { client_header: 500ms, client_body: 2s, keepalive: 1m, send: 30, drain: 1.5s }
            upstream: { connect_timeout: 250ms, response_timeout: 5s, idle_timeout: 10s, max_connections: 8, queue_timeout: 1s }
            pools:
              zeta: { role: replica, region: eu-west, servers: [{ url: "http://10.0.0.2:80", weight: 3 }] }
              alpha: { servers: ["http://api.internal"] }
            """)
        #expect(config.pools.map(\.name) == ["zeta", "alpha"])
        #expect(config.pools[0].servers[0].weight == 3)
        #expect(config.pools[1].servers[0].url == UpstreamURL(host: "api.internal", port: 80))
        #expect(config.pools[1].role == .primary)
        #expect(config.admin == ListenAddress(host: "::1", port: 9902))
        #expect(config.listen == ListenAddress(host: "0.0.0.0", port: 8081))
        #expect(config.limits.maxHeaderSize == ByteSize(16384))
        #expect(config.timeouts.clientHeader == .milliseconds(500))
        #expect(config.timeouts.send == .seconds(30))
        #expect(config.timeouts.drain == .milliseconds(1500))
        #expect(config.upstream.maxConnections == 8)
        #expect(config.trustedProxies.count == 2)
        #expect(config.eventLoops == 1)
    }

    @Test func unknownKeyNamesLineKeyAndSuggestion() throws {
        let error = try #require(parseError("""
            listen: 127.0.0.1:8080
            pools:
              primary:
                role: primary
                sevrers: [http://127.0.0.1:9000]
            """))
        #expect(error.line == 5)
        #expect(error.key == "pools.primary.sevrers")
        #expect(error.message.contains("unknown key 'sevrers'"))
        #expect(error.message.contains("did you mean 'servers'"))
        #expect(error.description.hasPrefix("gw.yaml:5:"))
    }

    @Test func badValuesAreLocated() throws {
        let duration = try #require(parseError(minimal + "\ntimeouts:\n  keepalive: 5 minutes\n"))
        #expect(duration.line == 5)
        #expect(duration.key == "timeouts.keepalive")
        #expect(duration.message.contains("expected a duration"))

        let url = try #require(parseError("""
            pools:
              primary:
                servers:
                  - http://127.0.0.1:9000
                  - htp://x
            """))
        #expect(url.line == 5)
        #expect(url.key == "pools.primary.servers[1]")

        let type = try #require(parseError(minimal + "\ndebug_headers: [1]\n"))
        #expect(type.key == "debug_headers")
        #expect(type.line == 4)
    }

    @Test func environmentExpansion() throws {
        let yaml = """
            listen: ${LISTEN:-127.0.0.1:8090}
            pools:
              primary: { servers: ["http://${API_HOST}:${API_PORT:-9000}"] }
            """
        let config = try ConfigLoader.parse(yaml: yaml, environment: ["API_HOST": "10.1.2.3"])
        #expect(config.listen.port == 8090)
        #expect(config.pools[0].servers[0].url == UpstreamURL(host: "10.1.2.3", port: 9000))
        let unset = try #require(parseError(yaml))
        #expect(unset.message.contains("API_HOST is not set"))
        #expect(unset.key == "pools.primary.servers[0]")
        #expect(unset.line == 3)
        #expect(try EnvironmentExpansion(environment: [:]).expand("cost: $$5 and $x") == "cost: $5 and $x")
    }

    @Test func wholeFileRules() throws {
        #expect(parseError("listen: 127.0.0.1:8080\n")?.message.contains("at least one pool") == true)
        let admin = try #require(parseError(minimal + "\nadmin: 0.0.0.0:9901\n"))
        #expect(admin.key == "admin_token")
        #expect(parseError(minimal + "\nadmin: 0.0.0.0:9901\nadmin_token: s3cret\n") == nil)
        let replicasOnly = try #require(parseError("pools:\n  r: { role: replica, servers: [http://127.0.0.1:1] }\n"))
        #expect(replicasOnly.message.contains("no pool has role 'primary'"))
    }

    @Test func yamlSyntaxErrorsHaveALine() throws {
        let error = try #require(parseError("listen: 127.0.0.1:8080\npools:\n  primary: { servers: [http://a:1\n"))
        #expect(error.line != nil)
        #expect(error.message.hasPrefix("YAML syntax"))
        #expect(parseError("- a\n- b\n")?.message.contains("top level must be a mapping") == true)
        #expect(parseError("")?.message == "the file is empty")
    }
}

@Suite struct RoutingConfigTests {
    func parseError(_ yaml: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "gw.yaml")
            return nil
        } catch {
            return error
        }
    }

    let pools = """
        pools:
          primary: { role: primary, region: us-east, servers: [http://127.0.0.1:9000] }
          eu: { role: replica, region: eu-west, servers: [http://127.0.0.1:9001] }

        """

    @Test func fullRoutingSection() throws {
        let config = try ConfigLoader.parse(yaml: pools + """
            read_methods: [GET, HEAD, OPTIONS, search]
            regions:
              default: eu-west
              header: { name: CloudFront-Viewer-Country, map: { DE: eu-west } }
              cidrs: { 10.1.0.0/16: eu-west, "2001:db8::/32": us-east }
              fallback: { eu-west: [us-east] }
            cors:
              web: { allow_origins: [https://app.example.com], allow_credentials: true, max_age: 1h }
            routes:
              - { name: auth, match: { path: /api/auth/**, methods: [post, GET], host: api.example.com }, to: primary }
              - { match: { path: "/api/users/{id}", headers: { X-Client: mobile, X-Beta: "*" } }, to: eu, cors: web }
            """)
        #expect(config.readMethods == ["GET", "HEAD", "OPTIONS", "SEARCH"])
        #expect(config.routes.count == 2)
        #expect(config.routes[0].methods == ["POST", "GET"])
        #expect(config.routes[0].hosts == ["api.example.com"])
        #expect(config.routes[1].headers.map(\.value) == ["mobile", nil])
        let runtime = try GatewayRuntime(config: config, metrics: GatewayMetrics(), logger: .init(label: "t"), accessLog: nil)
        #expect(runtime.router.regions.names == ["us-east", "eu-west"])
        #expect(runtime.router.regions.defaultRegion == 1)
        #expect(runtime.router.readOrder == [[], [1]])
        #expect(runtime.router.corsPolicies.first?.maxAgeSeconds == 3600)
        #expect(runtime.router.routes[1].target == .pool(1))
    }

    @Test func referencesMustExist() throws {
        let badPool = try #require(parseError(pools + "routes:\n  - { match: { path: /x }, to: nowhere }\n"))
        #expect(badPool.key == "routes[0].to")
        #expect(badPool.line == 5)
        #expect(badPool.message.contains("neither auto, primary nor a pool"))
        #expect(parseError(pools + "routes:\n  - { match: { path: /x }, cors: web }\n")?.key == "routes[0].cors")
        #expect(parseError(pools + "regions: { default: mars }\n")?.key == "regions.default")
        #expect(parseError(pools + "regions: { fallback: { eu-west: [mars] } }\n")?.key == "regions.fallback.eu-west")
        #expect(parseError(pools + "regions: { cidrs: { 10.0.0.0/8: mars } }\n")?.message.contains("unknown region 'mars'") == true)
        #expect(parseError(pools + "regions: { cidrs: { not-a-block: eu-west } }\n")?.message.contains("not an address block") == true)
        #expect(parseError("pools:\n  r: { role: replica, servers: [http://a:1] }\n  p: { servers: [http://b:1] }\n")?.key == "pools.r.region")
    }

    @Test func badPatternsAndPolicies() throws {
        let pattern = try #require(parseError(pools + "routes:\n  - match: { path: /a/**/b }\n"))
        #expect(pattern.key == "routes[0].match.path")
        #expect(pattern.message.contains("'**' may only be the last segment"))
        #expect(parseError(pools + "routes:\n  - match: { path: /a, metods: [GET] }\n")?.message.contains("did you mean 'methods'") == true)
        #expect(parseError(pools + "cors:\n  web: { allow_origins: ['*'], allow_credentials: true }\n")?.message.contains("cannot be combined") == true)
        #expect(parseError(pools.replacingOccurrences(of: "region: eu-west,", with: "region: eu-west, balancer: random,"))?.message
            .contains("least_request or round_robin") == true)
    }
}

@Suite struct HealthConfigTests {
    func parseError(_ yaml: String) -> ConfigError? {
        do {
            _ = try ConfigLoader.parse(yaml: yaml, file: "gw.yaml")
            return nil
        } catch {
            return error
        }
    }

    let base = """
        databases:
          main: "postgresql://postgres@127.0.0.1:5432/app?sslmode=disable&connect_timeout=2"
          eu: postgresql://postgres@127.0.0.1:5433/app
        pools:
          primary: { role: primary, region: us-east, database: main, servers: [http://127.0.0.1:9000] }
          eu: { role: replica, region: eu-west, database: eu, servers: [http://127.0.0.1:9001] }

        """

    @Test func sections() throws {
        let config = try ConfigLoader.parse(yaml: base + """
            health: { path: /healthz, interval: 5s, timeout: 2s, rise: 3, fall: 4, expected_status: [200, 3xx],
                      jitter: 0.2, max_lag: 10s, max_lag_bytes: 64MiB, database_interval: 500ms, database_timeout: 1s, database_fall: 3 }
            outlier_detection: { consecutive_errors: 7, base_ejection_time: 10s, max_ejection_time: 1m, max_ejected_percent: 30 }
            retries: { attempts: 1, budget_percent: 10, min_per_second: 5 }
            """)
        #expect(config.databases.map(\.name) == ["main", "eu"])
        #expect(config.databases[0].url.hasSuffix("connect_timeout=2"))
        #expect(config.pools[1].database == "eu")
        #expect(config.health.path == "/healthz")
        #expect(config.health.isExpected(200) && config.health.isExpected(302) && !config.health.isExpected(204))
        #expect(config.health.maxLagBytes == ByteSize(64 << 20))
        #expect(config.outlierDetection.consecutiveErrors == 7)
        #expect(config.retries.budgetPercent == 10)
        // Defaults: no active checks without a path.
        #expect(try ConfigLoader.parse(yaml: base).health.path == nil)
    }

    @Test func mistakes() throws {
        #expect(parseError(base + "health: { interval: 1s, timeout: 2s }\n")?.key == "health.timeout")
        #expect(parseError(base + "health: { expected_status: [6xx] }\n")?.message.contains("2xx") == true)
        #expect(parseError(base + "health: { path: healthz }\n")?.key == "health.path")
        #expect(parseError(base.replacingOccurrences(of: "database: eu,", with: "database: mars,"))?.key == "pools.eu.database")
        #expect(parseError(base.replacingOccurrences(of: "database: main,", with: ""))?.key == "pools.primary.database")
        #expect(parseError(base.replacingOccurrences(of: "postgresql://postgres@127.0.0.1:5433/app", with: "mysql://x"))?.key == "databases.eu")
        #expect(parseError(base + "retries: { attempts: 11 }\n")?.key == "retries.attempts")
    }
}

@Suite struct ConsistencyConfigTests {
    let base = """
        databases: { main: "postgresql://postgres@127.0.0.1:5432/app" }
        pools:
          primary: { role: primary, region: us-east, database: main, servers: [http://127.0.0.1:9000] }

        """

    @Test func section() throws {
        let config = try ConfigLoader.parse(yaml: base + """
            consistency:
              mode: lsn
              secret: 0123456789abcdef0123
              sticky_for: 3s
              max_wait: 50ms
              token_ttl: 1m
              lsn_header: X-DB-LSN
              store: none
              cookie_secure: true
            identity: [cookie:sid, "header:X-Api-Key", ip]
            """)
        #expect(config.consistency.mode == .lsn)
        #expect(config.identity == [.cookie("sid"), .header("x-api-key"), .ip])
        #expect(config.consistency.store == .none)
        #expect(config.consistency.maxWait == .milliseconds(50))
        #expect(config.consistency.lsnHeader == "X-DB-LSN")
        #expect(try ConfigLoader.parse(yaml: base).consistency.mode == .none)
    }

    @Test func mistakes() throws {
        func error(_ yaml: String) -> ConfigError? {
            do { _ = try ConfigLoader.parse(yaml: yaml); return nil } catch { return error }
        }
        #expect(error(base + "consistency: { mode: lsn }\n")?.message.contains("secret of at least 16") == true)
        #expect(error(base + "consistency: { mode: eventual, secret: 0123456789abcdef }\n")?.key == "consistency.mode")
        #expect(error(base + "identity: [session]\n")?.key == "identity")
        #expect(error(base + "consistency: { mode: time, secret: 0123456789abcdef, identity: [ip] }\n")?.message.contains("unknown key") == true)
        #expect(error(base + "consistency: { mode: time, secret: 0123456789abcdef, token_ttl: 1s, sticky_for: 2s }\n")?.key == "consistency.token_ttl")
        #expect(error("pools:\n  p: { servers: [http://a:1] }\nconsistency: { mode: lsn, secret: 0123456789abcdef }\n")?.key == "consistency.mode")
        #expect(error(base + "consistency: { mode: time, secret: 0123456789abcdef, store: redis }\n")?.key == "consistency.store")
        #expect(error(base + "consistency: { mode: time, secret: 0123456789abcdef, store: memcached }\n")?.message.contains("none, local or redis") == true)
    }
}

/// Redis in its three topologies, and the leases of shared limits.
@Suite struct ScaleOutConfigTests {
    let base = "pools:\n  p: { role: primary, servers: [http://127.0.0.1:1] }\n"

    func error(_ yaml: String) -> ConfigError? {
        do { _ = try ConfigLoader.parse(yaml: base + yaml, file: "gateway.yaml"); return nil } catch { return error }
    }

    @Test func topologiesAndLeasesLoad() throws {
        let sentinel = try ConfigLoader.parse(yaml: base + """
            redis: { url: "redis-sentinel://:pw@10.0.0.1,10.0.0.2:26380/cache/1" }
            consistency: { mode: time, secret: 0123456789abcdef, store: redis }
            rate_limits:
              lease_share: 0.05
              lease_lifetime: 500ms
              policies: { api: { limit: 1000, period: 1m } }
            """)
        #expect(sentinel.redis?.url.topology == .sentinel(master: "cache"))
        #expect(sentinel.redis?.url.endpoints.map(\.port) == [26379, 26380])
        #expect(sentinel.consistency.store == .redis)
        #expect(sentinel.rateLimits.leaseShare == 0.05 && sentinel.rateLimits.leaseLifetime == .milliseconds(500))
        let cluster = try ConfigLoader.parse(yaml: base + "redis: redis-cluster://n1:7000,n2:7001\n")
        #expect(cluster.redis?.url.topology == .cluster && cluster.redis?.url.endpoints.count == 2)
        let defaults = try ConfigLoader.parse(yaml: base + "rate_limits: { policies: { api: { limit: 10, period: 1s } } }\n")
        #expect(defaults.rateLimits.leaseShare == 0.01 && defaults.rateLimits.leaseLifetime == .seconds(1))
    }

    @Test func mistakesNameTheirKeyAndLine() throws {
        let url = try #require(error("redis: { url: \"redis-sentinel://10.0.0.1\" }\n"))
        #expect(url.key == "redis.url" && url.message.contains("master set's name") && url.line == 3)
        #expect(error("redis: \"redis-cluster://n1/2\"\n")?.message.contains("database 0 only") == true)
        #expect(error("redis: \"redis://a:1,b:2\"\n")?.message.contains("redis-sentinel:// or redis-cluster://") == true)
        #expect(error("rate_limits: { lease_share: 0.9 }\n")?.key == "rate_limits.lease_share")
        #expect(error("rate_limits: { lease_lifetime: 1ms }\n")?.key == "rate_limits.lease_lifetime")
    }
}

/// `auth:` mistakes are refused at load, naming the key and line.
@Suite struct AuthConfigTests {
    static let base = "pools:\n  p: { role: primary, servers: [http://127.0.0.1:1] }\n"

    func error(_ yaml: String) -> ConfigError? {
        do { _ = try ConfigLoader.parse(yaml: Self.base + yaml, file: "gateway.yaml"); return nil } catch { return error }
    }

    @Test func aValidSectionLoads() throws {
        let config = try ConfigLoader.parse(yaml: Self.base + """
            identity: [jwt:user_id, ip]
            auth:
              default: optional
              token_from: [bearer, "cookie:access"]
              leeway: 30s
              claims_to_headers: { user_id: X-User-Id }
              issuers:
                django: { hs512_secret: "a-long-django-secret-key", audiences: web }
            routes:
              - { match: { path: /admin/** }, auth: required }
            rate_limits:
              policies:
                api: { limit: 10, period: 1m, key: identity, by_claim: plan, limits: { pro: 100 } }
            """)
        #expect(config.identity == [.claim("user_id"), .ip])
        #expect(config.auth.defaultMode == .optional && config.routes[0].auth == .required)
        #expect(config.auth.tokenSources == [.bearer, .cookie("access")])
        let issuer = try #require(config.auth.issuers.first)
        #expect(issuer.name == "django" && issuer.acceptedAlgorithms == [.hs512] && issuer.audiences == ["web"])
        #expect(issuer.staticKeys.count == 1)
        #expect(config.rateLimits.policies[0].policy.claimLimits == ["pro": 100])
    }

    @Test func mistakesNameTheirKey() {
        let secret = "auth:\n  issuers:\n    a: { hs256_secret: s3cret-of-the-test }\n"
        #expect(error("routes:\n  - { match: { path: /x }, auth: required }\n")?.key == "routes[0].auth")
        #expect(error("auth: { default: required }\n")?.key == "auth.default")
        #expect(error("identity: [jwt:sub]\n")?.key == "identity")
        #expect(error("auth:\n  issuers:\n    a: { issuer: x }\n")?.message.contains("needs its keys") == true)
        #expect(error("auth:\n  issuers:\n    a: { hs256_secret: s, jwks_url: \"http://127.0.0.1:1/k\" }\n")?.message.contains("not several") == true)
        #expect(error("auth:\n  issuers:\n    a: { hs256_secret: s, algorithms: [none] }\n")?.message.contains("never accepted") == true)
        // An HMAC algorithm with public keys is the algorithm-confusion hole: refused.
        let confusion = error("auth:\n  issuers:\n    a: { jwks_url: \"https://idp.test/jwks.json\", algorithms: [RS256, HS256] }\n")
        #expect(confusion?.key == "auth.issuers.a.algorithms" && confusion?.message.contains("public key as the secret") == true)
        #expect(confusion?.line == 5)
        #expect(error("auth:\n  issuers:\n    a: { jwks_url: \"ftp://idp.test/jwks.json\" }\n")?.key == "auth.issuers.a.jwks_url")
        #expect(error("auth:\n  issuers:\n    a: { public_key_file: /nonexistent/key.pem }\n")?.message.contains("cannot read") == true)
        // An https:// key set is fetched with the issuer's TLS settings, read at load like a pool's.
        #expect(error("auth:\n  issuers:\n    a: { jwks_url: \"https://idp.test/jwks.json\", tls: { ca_file: /nonexistent/ca.pem } }\n")?
            .key.hasPrefix("auth.issuers.a.tls") == true)
        #expect(error("auth:\n  issuers:\n    a: { jwks_url: \"http://idp.test/jwks.json\", tls: { verify: false } }\n")?.key == "auth.issuers.a.tls")
        #expect(error(secret + "  token_from: [query:token]\n")?.key == "auth.token_from")
        #expect(error(secret + "rate_limits:\n  policies:\n    api: { limit: 1, period: 1m, by_claim: plan }\n")?.key == "rate_limits.policies.api.by_claim")
        #expect(error("rate_limits:\n  policies:\n    api: { limit: 1, period: 1m, by_claim: plan, limits: { pro: 5 } }\n")?.message.contains("configure auth.issuers") == true)
    }
}
