import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// A real WebSocket server (python3-websockets, Debian's, under `/usr/bin/python3`) on a free
/// loopback port: it echoes every message, text or binary; on `/close` it closes with code 4000
/// after the first message; on `/headers` it sends the upgrade request's headers as JSON. A
/// shell watchdog ends it if this test process dies.
public final class WebSocketEchoServer: @unchecked Sendable {
    public let port: Int
    public let directory: String
    public var url: String { "http://127.0.0.1:\(port)" }

    static let server = """
        import asyncio, json, os, sys
        import websockets

        with open(sys.argv[2], "w") as pid:
            pid.write(str(os.getpid()))

        async def handler(socket, path):
            if path == "/headers":
                await socket.send(json.dumps({k.lower(): v for k, v in socket.request_headers.raw_items()}))
                await socket.close()
                return
            async for message in socket:
                await socket.send(message)
                if path == "/close":
                    await socket.close(code=4000, reason="server says bye")
                    return

        async def main():
            async with websockets.serve(handler, "127.0.0.1", int(sys.argv[1]), max_size=4 * 1024 * 1024, ping_interval=None):
                await asyncio.Future()

        asyncio.run(main())
        """

    private init(port: Int, directory: String) {
        self.port = port
        self.directory = directory
    }

    public static func start() async throws -> WebSocketEchoServer {
        let directory = NSTemporaryDirectory() + "gateway-ws-\(UUID().uuidString.prefix(8))"
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try server.write(toFile: directory + "/server.py", atomically: true, encoding: .utf8)
        try WebSocketClient.script.write(toFile: directory + "/client.py", atomically: true, encoding: .utf8)
        let echo = WebSocketEchoServer(port: try freePort(), directory: directory)
        try startWatched("exec /usr/bin/python3 \(directory)/server.py \(echo.port) \(directory)/server.pid", log: "\(directory)/server.log")
        let deadline = ContinuousClock.now + .seconds(15)
        while ContinuousClock.now < deadline {
            if let client = try? await RawClient.connect(port: echo.port) {
                await client.close()
                return echo
            }
            try await Task.sleep(for: .milliseconds(50))
        }
        throw TestClientError("the WebSocket server did not start; log: \((try? String(contentsOfFile: directory + "/server.log", encoding: .utf8)) ?? "")")
    }

    public func stop() async {
        if let text = try? String(contentsOfFile: directory + "/server.pid", encoding: .utf8),
           let pid = Int32(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
            Glibc.kill(pid, SIGKILL)
        }
        try? await Task.sleep(for: .milliseconds(100))
        try? FileManager.default.removeItem(atPath: directory)
    }

    /// Runs the WebSocket client (python3-websockets) against `url` with a scenario; returns
    /// what it printed (one line per step) and its exit status.
    public func client(_ scenario: String, _ url: String, timeout: Duration = .seconds(30)) async throws -> (status: Int32, output: String) {
        let result = try await runProcessCapturing("/usr/bin/timeout", [String(Int(timeout.components.seconds)), "/usr/bin/python3",
                                                                          directory + "/client.py", scenario, url])
        return (result.status, result.output + result.errors)
    }
}

/// The client side's scenarios, each printing what it saw.
enum WebSocketClient {
    static let script = """
        import asyncio, os, sys, time
        import websockets

        scenario, url = sys.argv[1], sys.argv[2]

        async def main():
            try:
                socket = await websockets.connect(url, max_size=4 * 1024 * 1024, ping_interval=None, open_timeout=10)
            except websockets.exceptions.InvalidStatusCode as error:
                print("refused", error.status_code)
                return
            if scenario == "echo":
                await socket.send("hello")
                print("text", await socket.recv())
                await socket.send(b"\\x00\\x01\\x02\\xff")
                print("binary", (await socket.recv()).hex())
                big = os.urandom(1024 * 1024)
                await socket.send(big)
                print("big", await socket.recv() == big)
                await socket.close()
                print("closed", socket.close_code)
            elif scenario == "server-closes":
                await socket.send("last")
                print("text", await socket.recv())
                try:
                    await socket.recv()
                except websockets.exceptions.ConnectionClosed as closed:
                    print("closed", closed.rcvd.code if closed.rcvd else None, closed.rcvd.reason if closed.rcvd else None)
            elif scenario == "headers":
                print(await socket.recv())
            elif scenario == "wait":
                print("open", flush=True)
                start = time.monotonic()
                try:
                    await socket.recv()
                    print("unexpected message")
                except websockets.exceptions.ConnectionClosed:
                    print("cut after %.1f" % (time.monotonic() - start))

        asyncio.run(main())
        """
}
