public import Gateway
import NIOCore
import NIOHTTP1
import NIOPosix
import Synchronization

/// Why the metrics endpoint could not start: one line for the log, naming the key and the fix.
public struct MonitoringError: Error, CustomStringConvertible, Sendable {
    public let description: String
}

/// Whether the daemon can do its work: `/healthz` answers 200 with `ok`, else 503 with `reason`.
public struct Health: Sendable, Equatable {
    public let ok: Bool
    public let reason: String

    public init(ok: Bool, reason: String) {
        self.ok = ok
        self.reason = reason
    }
}

/// `MetricsListen`: serves `GET /metrics` (Prometheus text exposition 0.0.4) and `GET /healthz`
/// over SwiftNIO's HTTP/1.1 on one event-loop thread of its own, never on the milter's threads.
/// Every other path is 404 and every other method 405. A slow or idle client holds only its own
/// connection (closed after `idleTimeout`), so scrapers cannot slow the milter down.
public final class MetricsServer: Sendable {
    public typealias Exposition = @Sendable () -> [UInt8]
    public typealias HealthCheck = @Sendable () -> Health

    private let group: MultiThreadedEventLoopGroup
    private let channel: any Channel
    public let spec: SocketSpec
    /// Connections served at once; each is closed after 10 s without traffic.
    static let maximumConnections = 32

    /// Binds `spec` now (before privileges are dropped, so a port below 1024 works) and serves.
    public init(spec: SocketSpec, exposition: @escaping Exposition, health: @escaping HealthCheck) throws {
        self.spec = spec
        let (host, port): (String, Int)
        switch spec {
        case .inet(let p, let h), .inet6(let p, let h): (host, port) = (h, p)
        case .unix: throw MonitoringError(description: "MetricsListen \(spec) is a local socket; write for example inet:9894@127.0.0.1")
        }
        let group = MultiThreadedEventLoopGroup(numberOfThreads: 1)
        let open = ConnectionCount()
        let bootstrap = ServerBootstrap(group: group)
            .serverChannelOption(.backlog, value: 64)
            .serverChannelOption(.socketOption(.so_reuseaddr), value: 1)
            .childChannelInitializer { channel in
                // Scrapers are few: beyond `maximumConnections` a connection is closed at once, so
                // that idle or slow clients cannot take the file descriptors the milter needs.
                guard open.enter(limit: Self.maximumConnections) else { return channel.close() }
                channel.closeFuture.whenComplete { _ in open.leave() }
                return channel.pipeline.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHandler(IdleStateHandler(allTimeout: .seconds(10)))
                    try channel.pipeline.syncOperations.configureHTTPServerPipeline(withErrorHandling: true)
                    try channel.pipeline.syncOperations.addHandler(
                        MetricsHandler(exposition: exposition, health: health))
                }
            }
            .childChannelOption(.maxMessagesPerRead, value: 1)
        do {
            channel = try bootstrap.bind(host: host, port: port).wait()
        } catch {
            try? group.syncShutdownGracefully()
            throw MonitoringError(description: Self.bindProblem(spec, error))
        }
        self.group = group
    }

    /// The port bound (the one asked for, or the kernel's choice for port 0 in tests).
    public var port: Int? { channel.localAddress?.port }

    static func bindProblem(_ spec: SocketSpec, _ error: any Error) -> String {
        ListenCheck.bindProblem(spec, errno: (error as? IOError)?.errnoCode ?? 0, "\(error)")
    }

    public func stop() {
        try? channel.close().wait()
        try? group.syncShutdownGracefully()
    }
}

/// The metrics connections open now.
final class ConnectionCount: Sendable {
    private let count = Mutex(0)

    /// Counts one more connection unless `limit` are open already.
    func enter(limit: Int) -> Bool {
        count.withLock { count in
            guard count < limit else { return false }
            count += 1
            return true
        }
    }

    func leave() { count.withLock { $0 -= 1 } }
}

/// One HTTP/1.1 request at a time per connection; the body of a request is ignored.
final class MetricsHandler: ChannelInboundHandler, RemovableChannelHandler {
    typealias InboundIn = HTTPServerRequestPart
    typealias OutboundOut = HTTPServerResponsePart

    let exposition: MetricsServer.Exposition
    let health: MetricsServer.HealthCheck
    private var head: HTTPRequestHead?

    init(exposition: @escaping MetricsServer.Exposition, health: @escaping MetricsServer.HealthCheck) {
        self.exposition = exposition
        self.health = health
    }

    func channelRead(context: ChannelHandlerContext, data: NIOAny) {
        switch unwrapInboundIn(data) {
        case .head(let head): self.head = head
        case .body: break
        case .end:
            guard let head else { return }
            self.head = nil
            respond(to: head, context: context)
        }
    }

    /// A request NIO could not parse was answered 400 by the error handler before this one; the
    /// connection ends here rather than at the idle timeout.
    func errorCaught(context: ChannelHandlerContext, error: any Error) {
        context.close(promise: nil)
    }

    func userInboundEventTriggered(context: ChannelHandlerContext, event: Any) {
        if event is IdleStateHandler.IdleStateEvent {
            context.close(promise: nil)
        } else {
            context.fireUserInboundEventTriggered(event)
        }
    }

    private func respond(to head: HTTPRequestHead, context: ChannelHandlerContext) {
        let path = head.uri.split(separator: "?", maxSplits: 1, omittingEmptySubsequences: false).first.map(String.init) ?? ""
        let status: HTTPResponseStatus
        let contentType: String
        let body: [UInt8]
        var headers = HTTPHeaders()
        if path != "/metrics" && path != "/healthz" {
            (status, contentType, body) = (.notFound, "text/plain; charset=utf-8", Array("not found; this endpoint serves /metrics and /healthz\n".utf8))
        } else if head.method != .GET && head.method != .HEAD {
            headers.add(name: "Allow", value: "GET, HEAD")
            (status, contentType, body) = (.methodNotAllowed, "text/plain; charset=utf-8", Array("only GET and HEAD\n".utf8))
        } else if path == "/metrics" {
            (status, contentType, body) = (.ok, "text/plain; version=0.0.4; charset=utf-8", exposition())
        } else {
            let health = self.health()
            (status, contentType, body) = (
                health.ok ? .ok : .serviceUnavailable, "text/plain; charset=utf-8", Array((health.ok ? "ok\n" : health.reason + "\n").utf8)
            )
        }
        headers.add(name: "Content-Type", value: contentType)
        headers.add(name: "Content-Length", value: String(body.count))
        headers.add(name: "Cache-Control", value: "no-store")
        let keepAlive = head.isKeepAlive
        if !keepAlive { headers.add(name: "Connection", value: "close") }
        let response = HTTPResponseHead(version: head.version, status: status, headers: headers)
        context.write(wrapOutboundOut(.head(response)), promise: nil)
        if head.method != .HEAD {
            context.write(wrapOutboundOut(.body(.byteBuffer(context.channel.allocator.buffer(bytes: body)))), promise: nil)
        }
        let done = context.writeAndFlush(wrapOutboundOut(.end(nil)))
        if !keepAlive {
            let channel = context.channel
            done.whenComplete { _ in channel.close(promise: nil) }
        }
    }
}
