import HTTPWire
import NIOCore

/// After a 101 the exchange is a byte tunnel between its client and its upstream connection
/// (WebSocket, or any protocol named by `Upgrade`): bytes go through untouched, each direction
/// paused while the other side cannot take more (the GlueHandler pattern), with one idle
/// deadline (`timeouts.tunnel`) kept by the downstream. Either side closing ends both; the
/// exchange then logs once, as status 101 with the bytes each way and the tunnel's lifetime.
extension Exchange {
    /// The upstream agreed to switch protocols: the 101 goes to the client, and what either
    /// side sent after its head already belongs to the tunnel.
    func startTunnel(_ response: HTTPHead, on connection: UpstreamConnection) {
        status = 101
        downstream.sendHead(.upstream(response), for: self)
        loop.tunnelsOpen += 1
        runtime.metrics.countEvent("gateway_tunnels_total", [])
        let fromClient = downstream.beginTunnel()
        if fromClient.readableBytes > 0 {
            tunnelToUpstream(fromClient)
            connection.flush()
        }
        armWait()
        pumpTunnelDown()
        downstream.flush()
    }

    /// Client bytes on their way up; the caller flushes at the end of its read.
    func tunnelToUpstream(_ bytes: ByteBuffer) {
        guard let upstream else { return }
        requestBodyBytes += bytes.readableBytes
        upstream.write(bytes)
    }

    /// Moves what the upstream sent to the client while the client can take it; ends the
    /// tunnel once the upstream closed and everything it sent went out.
    func pumpTunnelDown() {
        guard !ended, let connection = upstream else { return }
        guard downstream.isWritable else {
            connection.pauseReading()
            downstream.responseBlocked()
            return
        }
        let bytes = connection.parser.takeBufferedBytes()
        if bytes.readableBytes > 0 {
            responseBodyBytes += bytes.readableBytes
            downstream.sendBody(bytes)
            armWait()
        }
        if upstreamEOF { endTunnel(.completed) }
    }

    /// The tunnel is over (a side closed, it sat idle, or the gateway shuts down): the upstream
    /// connection closes (it speaks another protocol now), and the exchange ends.
    func endTunnel(_ end: ExchangeEnd) {
        guard !ended else { return }
        releaseUpstream()
        loop.tunnelsOpen -= 1
        runtime.metrics.countEvent("gateway_tunnel_bytes_total", [("direction", "up")], by: requestBodyBytes)
        runtime.metrics.countEvent("gateway_tunnel_bytes_total", [("direction", "down")], by: responseBodyBytes)
        finish(end)
    }
}
