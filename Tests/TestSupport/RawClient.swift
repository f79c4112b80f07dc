import NIOConcurrencyHelpers
import NIOCore
import NIOPosix

/// A response as a test sees it.
public struct TestResponse: Sendable {
    public var status: Int
    public var headers: [(String, String)]
    public var body: [UInt8]

    public func header(_ name: String) -> String? {
        headers.first { $0.0.lowercased() == name.lowercased() }?.1
    }

    public func headers(_ name: String) -> [String] {
        headers.filter { $0.0.lowercased() == name.lowercased() }.map(\.1)
    }

    public var text: String { String(decoding: body, as: UTF8.self) }
}

public struct TestClientError: Error, CustomStringConvertible {
    public var description: String
    public init(_ description: String) { self.description = description }
}

/// A TCP client that sends exactly the bytes a test gives it and parses responses itself, so
/// tests can send malformed, pipelined or half-closed requests and read slowly.
public final class RawClient: @unchecked Sendable {
    private let channel: Channel
    private let state: NIOLockedValueBox<State>

    struct State {
        var received: [UInt8] = []
        var closed = false
        var connectedAt: ContinuousClock.Instant?
        var firstByteAt: ContinuousClock.Instant?
    }

    private init(channel: Channel, state: NIOLockedValueBox<State>) {
        self.channel = channel
        self.state = state
    }

    /// - Parameter autoRead: false makes a client that reads nothing until `readMore`.
    /// - Parameter localAddress: the source address (any 127.x.y.z works on loopback).
    /// - Parameter sending: bytes written the moment the connection is up, by the channel
    ///   itself: a test whose task is slow to be scheduled cannot look like an idle client.
    public static func connect(port: Int, host: String = "127.0.0.1", autoRead: Bool = true,
                               receiveBuffer: Int? = nil, localAddress: String? = nil, sending: String? = nil) async throws -> RawClient {
        let state = NIOLockedValueBox(State())
        var bootstrap = ClientBootstrap(group: MultiThreadedEventLoopGroup.singleton)
            .channelOption(.autoRead, value: autoRead)
            .channelOption(.allowRemoteHalfClosure, value: true)
        if let receiveBuffer {
            bootstrap = bootstrap.channelOption(.socketOption(.so_rcvbuf), value: SocketOptionValue(receiveBuffer))
        }
        if let localAddress {
            bootstrap = bootstrap.bind(to: try SocketAddress(ipAddress: localAddress, port: 0))
        }
        let channel = try await bootstrap
            .channelInitializer { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(Collector(state: state, initial: sending.map { Array($0.utf8) }))
                }
            }
            .connect(host: host, port: port)
            .get()
        return RawClient(channel: channel, state: state)
    }

    final class Collector: ChannelInboundHandler {
        typealias InboundIn = ByteBuffer
        let state: NIOLockedValueBox<State>
        let initial: [UInt8]?
        init(state: NIOLockedValueBox<State>, initial: [UInt8]?) {
            self.state = state
            self.initial = initial
        }

        func channelActive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.connectedAt = .now }
            if let initial { context.writeAndFlush(NIOAny(ByteBuffer(bytes: initial)), promise: nil) }
            context.fireChannelActive()
        }

        func channelRead(context: ChannelHandlerContext, data: NIOAny) {
            let buffer = unwrapInboundIn(data)
            state.withLockedValue { state in
                if state.firstByteAt == nil { state.firstByteAt = .now }
                state.received += buffer.readableBytesView
            }
        }

        func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
            if let event = event as? ChannelEvent, event == .inputClosed {
                state.withLockedValue { $0.closed = true }
            }
        }

        func channelInactive(context: ChannelHandlerContext) {
            state.withLockedValue { $0.closed = true }
        }

        func errorCaught(context: ChannelHandlerContext, error: Error) {
            state.withLockedValue { $0.closed = true }
            context.close(promise: nil)
        }
    }

    public func send(_ text: String) async throws {
        try await send(Array(text.utf8))
    }

    public func send(_ bytes: [UInt8]) async throws {
        try await channel.writeAndFlush(ByteBuffer(bytes: bytes))
    }

    /// Half-closes: the server sees end of input, this side can still read.
    public func shutdownWrite() async {
        try? await channel.close(mode: .output)
    }

    public func close() async {
        try? await channel.close()
    }

    /// One read from the socket (for clients made with `autoRead: false`).
    public func readMore() {
        channel.read()
    }

    public var receivedCount: Int { state.withLockedValue { $0.received.count } }
    /// From the connection being up to the first byte received (nil before any), measured on
    /// the channel's event loop: test-task scheduling delays are not in it.
    public var timeToFirstByte: Duration? {
        state.withLockedValue { state in
            guard let connected = state.connectedAt, let first = state.firstByteAt else { return nil }
            return first - connected
        }
    }
    public var isClosed: Bool { state.withLockedValue { $0.closed } }

    /// Waits until the server closed the connection (or the timeout).
    @discardableResult
    public func waitForClose(timeout: Duration = .seconds(5)) async -> Bool {
        let deadline = ContinuousClock.now + timeout
        while ContinuousClock.now < deadline {
            if isClosed { return true }
            try? await Task.sleep(for: .milliseconds(5))
        }
        return isClosed
    }

    /// Everything received, after the server closed.
    public func readUntilClosed(timeout: Duration = .seconds(5)) async -> [UInt8] {
        await waitForClose(timeout: timeout)
        return state.withLockedValue { $0.received }
    }

    /// Parses and removes one response from what was received, waiting for it.
    /// - Parameter head: the request was HEAD (no body whatever the length says).
    public func readResponse(head: Bool = false, timeout: Duration = .seconds(10)) async throws -> TestResponse {
        let deadline = ContinuousClock.now + timeout
        while true {
            let (parsed, closed) = state.withLockedValue { state -> (TestResponse?, Bool) in
                guard let (response, used) = ResponseParser.parse(state.received, head: head, closed: state.closed) else {
                    return (nil, state.closed)
                }
                state.received.removeFirst(used)
                return (response, state.closed)
            }
            if let parsed { return parsed }
            if closed { throw TestClientError("connection closed before a complete response; got \(state.withLockedValue { "\($0.received.count) bytes: " + String(decoding: $0.received, as: UTF8.self).prefix(300) })") }
            if ContinuousClock.now > deadline { throw TestClientError("timed out waiting for a response") }
            try await Task.sleep(for: .milliseconds(2))
        }
    }
}

extension RawClient {
    /// One request on a new connection to `url` (`http://127.0.0.1:PORT/path`).
    public static func request(
        _ method: String, _ url: String, headers: [String] = [], body: String? = nil, timeout: Duration = .seconds(10),
        from localAddress: String? = nil
    ) async throws -> TestResponse {
        guard url.hasPrefix("http://"), let rest = Optional(url.dropFirst(7)),
              let slash = rest.firstIndex(of: "/") ?? Optional(rest.endIndex),
              let colon = rest[..<slash].lastIndex(of: ":"), let port = Int(rest[rest.index(after: colon)..<slash])
        else { throw TestClientError("cannot parse \(url)") }
        let host = String(rest[..<colon])
        let target = slash == rest.endIndex ? "/" : String(rest[slash...])
        let client = try await RawClient.connect(port: port, host: host, localAddress: localAddress)
        defer { Task { await client.close() } }
        var text = "\(method) \(target) HTTP/1.1\r\nHost: \(host):\(port)\r\nConnection: close\r\n"
        for header in headers { text += header + "\r\n" }
        if let body { text += "Content-Type: application/json\r\nContent-Length: \(body.utf8.count)\r\n" }
        try await client.send(text + "\r\n" + (body ?? ""))
        return try await client.readResponse(head: method == "HEAD", timeout: timeout)
    }
}

/// A deliberately simple response parser for tests (no shared code with the gateway's).
public enum ResponseParser {
    public static func parse(_ bytes: [UInt8], head isHead: Bool, closed: Bool) -> (TestResponse, Int)? {
        guard let headEnd = find([13, 10, 13, 10], in: bytes, from: 0) else { return nil }
        let headText = String(decoding: bytes[0..<headEnd], as: UTF8.self)
        var lines = headText.components(separatedBy: "\r\n")
        let statusLine = lines.removeFirst()
        let statusParts = statusLine.split(separator: " ")
        guard statusParts.count >= 2, let status = Int(statusParts[1]) else { return nil }
        var headers: [(String, String)] = []
        for line in lines {
            guard let colon = line.firstIndex(of: ":") else { continue }
            headers.append((String(line[..<colon]), line[line.index(after: colon)...].trimmingCharacters(in: .whitespaces)))
        }
        var position = headEnd + 4
        func header(_ name: String) -> String? { headers.first { $0.0.lowercased() == name }?.1 }
        if status < 200 || status == 204 || status == 304 || isHead {
            return (TestResponse(status: status, headers: headers, body: []), position)
        }
        if header("transfer-encoding")?.lowercased().contains("chunked") == true {
            var body: [UInt8] = []
            while true {
                guard let lineEnd = find([13, 10], in: bytes, from: position) else { return nil }
                let sizeText = String(decoding: bytes[position..<lineEnd], as: UTF8.self).split(separator: ";").first ?? ""
                guard let size = Int(sizeText.trimmingCharacters(in: .whitespaces), radix: 16) else { return nil }
                position = lineEnd + 2
                if size == 0 {
                    guard let end = find([13, 10, 13, 10], in: bytes, from: position - 2) else { return nil }
                    return (TestResponse(status: status, headers: headers, body: body), end + 4)
                }
                guard bytes.count >= position + size + 2 else { return nil }
                body += bytes[position..<(position + size)]
                position += size + 2
            }
        }
        if let length = header("content-length").flatMap({ Int($0) }) {
            guard bytes.count >= position + length else { return nil }
            return (TestResponse(status: status, headers: headers, body: Array(bytes[position..<(position + length)])), position + length)
        }
        guard closed else { return nil }
        return (TestResponse(status: status, headers: headers, body: Array(bytes[position...])), bytes.count)
    }

    static func find(_ needle: [UInt8], in haystack: [UInt8], from: Int) -> Int? {
        guard haystack.count >= needle.count, from <= haystack.count - needle.count else { return nil }
        var i = from
        while i <= haystack.count - needle.count {
            if haystack[i] == needle[0], Array(haystack[i..<(i + needle.count)]) == needle { return i }
            i += 1
        }
        return nil
    }
}

import Foundation
