import Foundation
import Testing
import TestSupport

/// The real stack itself: replication, lag on demand, promotion, and a clean stop.
@Suite(.timeLimit(.minutes(3)))
struct StackTests {
    static let user = "00000000-0000-4000-8000-00000000002a"

    func plan(_ api: Stack.API) async throws -> (plan: String, response: TestResponse) {
        let response = try await RawClient.request("GET", api.url + "/api/subscriptions/\(Self.user)")
        let object = try JSONSerialization.jsonObject(with: Data(response.body)) as? [String: Any]
        return (object?["plan"] as? String ?? "?", response)
    }

    func setPlan(_ api: Stack.API, _ plan: String) async throws -> TestResponse {
        try await RawClient.request("PUT", api.url + "/api/subscriptions/\(Self.user)", body: "{\"plan\":\"\(plan)\"}")
    }

    @Test func writesReplicateLagOnDemandAndPromotionTakesWrites() async throws {
        try await withStack { stack in
            #expect(stack.startupSeconds > 0 && stack.startupSeconds < 30)
            let primaryAPI = stack.api("us-east"), eu = stack.api("eu-west"), ap = stack.api("ap-southeast")

            // Each API says which node served it and whether that node is in recovery.
            let (_, fromReplica) = try await plan(eu)
            #expect(fromReplica.header("x-db-node") == "pg-eu-west")
            #expect(fromReplica.header("x-db-recovery") == "true")
            #expect(fromReplica.header("x-api-region") == "eu-west")

            // A write through the primary's API reaches both replicas.
            let write = try await setPlan(primaryAPI, "pro")
            #expect(write.status == 200)
            #expect(write.header("x-db-node") == "pg-us-east")
            #expect(write.header("x-db-recovery") == "false")
            #expect(write.header("x-db-lsn")?.contains("/") == true)
            #expect(try await eventually { try await plan(eu).plan == "pro" })
            #expect(try await eventually { try await plan(ap).plan == "pro" })

            // A replica refuses writes.
            #expect(try await setPlan(eu, "team").status == 503)

            // Paused replay: eu-west falls behind while ap-southeast follows; resumed, it catches up.
            try await stack.pauseReplay("eu-west")
            #expect(try await setPlan(primaryAPI, "enterprise").status == 200)
            #expect(try await eventually { try await plan(ap).plan == "enterprise" })
            try await Task.sleep(for: .milliseconds(300))
            #expect(try await plan(eu).plan == "pro")
            let lagBytes = try await stack.psql("us-east",
                "SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), replay_lsn) FROM pg_stat_replication WHERE application_name = 'pg-eu-west'")
            #expect((Int(lagBytes) ?? 0) > 0)
            try await stack.resumeReplay("eu-west")
            #expect(try await eventually { try await plan(eu).plan == "enterprise" })

            // The primary dies; ap-southeast is promoted and takes writes through its own API.
            try await stack.kill("pg-us-east")
            let down = try await RawClient.request("GET", primaryAPI.url + "/api/health/")
            #expect(down.status == 503)
            try await stack.promote("ap-southeast")
            #expect(try await eventually(.seconds(10)) { try await setPlan(ap, "after-failover").status == 200 })
            let (after, response) = try await plan(ap)
            #expect(after == "after-failover")
            #expect(response.header("x-db-recovery") == "false")

            // Login and activities work on a primary.
            let login = try await RawClient.request("POST", ap.url + "/api/auth/login",
                                                    body: "{\"email\":\"user42@example.com\",\"password\":\"password\"}")
            #expect(login.status == 200)
            #expect(login.header("set-cookie")?.hasPrefix("session=") == true)
            let activity = try await RawClient.request("POST", ap.url + "/api/activities",
                                                       body: "{\"user_id\":\"\(Self.user)\",\"action\":\"viewed\"}")
            #expect(activity.status == 201)
        }
    }

    @Test func everyProcessIsGoneAfterStop() async throws {
        let stack = try await Stack.start(regions: ["us-east", "eu-west"])
        let pids = stack.processIDs()
        #expect(pids.count >= 5)  // supervisor, 2 APIs, redis, 2 postmasters
        #expect(pids.allSatisfy(Stack.isRunning))
        let api = try await RawClient.request("GET", stack.api("eu-west").url + "/api/health/")
        #expect(api.status == 200)
        await stack.stop()
        #expect(pids.filter(Stack.isRunning).isEmpty, "still running: \(pids.filter(Stack.isRunning))")
        #expect(!FileManager.default.fileExists(atPath: stack.directory))
    }
}
