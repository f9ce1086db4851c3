import Foundation
import Gateway
import Synchronization
import XCTest

@testable import Monitoring

#if canImport(Glibc)
import Glibc
#endif

final class MetricsServerTests: XCTestCase {
    /// One request over a raw socket, so the test sees exactly what the server sends.
    func request(_ port: Int, _ text: String) throws -> String {
        let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = UInt16(port).bigEndian
        address.sin_addr.s_addr = UInt32(0x7F00_0001).bigEndian
        var timeout = timeval(tv_sec: 5, tv_usec: 0)
        setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &timeout, socklen_t(MemoryLayout<timeval>.size))
        let connected = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { connect(fd, $0, socklen_t(MemoryLayout<sockaddr_in>.size)) }
        }
        XCTAssertEqual(connected, 0)
        let bytes = Array(text.utf8)
        XCTAssertEqual(send(fd, bytes, bytes.count, 0), bytes.count)
        var response: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 4096)
        while true {
            let count = recv(fd, &chunk, chunk.count, 0)
            if count <= 0 { break }
            response += chunk[0..<count]
        }
        return String(decoding: response, as: UTF8.self)
    }

    func testServesMetricsHealthAndNothingElse() throws {
        let health = Mutex(Health(ok: false, reason: "the milter loop did not answer"))
        let server = try MetricsServer(
            spec: .inet(port: 0, host: "127.0.0.1"), exposition: { Array("smime_milter_build_info 1\n".utf8) },
            health: { health.withLock { $0 } })
        defer { server.stop() }
        let port = try XCTUnwrap(server.port)

        let metrics = try request(port, "GET /metrics HTTP/1.0\r\n\r\n")
        XCTAssertTrue(metrics.hasPrefix("HTTP/1.0 200 OK"), metrics)
        XCTAssertTrue(metrics.contains("text/plain; version=0.0.4"))
        XCTAssertTrue(metrics.hasSuffix("smime_milter_build_info 1\n"))

        let unhealthy = try request(port, "GET /healthz HTTP/1.0\r\n\r\n")
        XCTAssertTrue(unhealthy.hasPrefix("HTTP/1.0 503"), unhealthy)
        XCTAssertTrue(unhealthy.hasSuffix("the milter loop did not answer\n"))
        health.withLock { $0 = Health(ok: true, reason: "") }
        XCTAssertTrue(try request(port, "GET /healthz HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 200 OK"))

        for path in ["/", "/metrics/x", "/../etc/passwd", "/healthz/"] {
            XCTAssertTrue(try request(port, "GET \(path) HTTP/1.0\r\n\r\n").hasPrefix("HTTP/1.0 404"), path)
        }
        XCTAssertTrue(try request(port, "POST /metrics HTTP/1.0\r\nContent-Length: 2\r\n\r\nhi").hasPrefix("HTTP/1.0 405"))
        // Answered 400 and closed at once, not at the idle timeout (the request's own times out at 5 s).
        let clock = ContinuousClock()
        let started = clock.now
        XCTAssertTrue(try request(port, "garbage\r\n\r\n").contains("400 Bad Request"))
        XCTAssertLessThan(clock.now - started, .milliseconds(4500))  // below the request's own 5 s
    }

    func testATakenPortIsAClearError() throws {
        let first = try MetricsServer(spec: .inet(port: 0, host: "127.0.0.1"), exposition: { [] }, health: { Health(ok: true, reason: "") })
        defer { first.stop() }
        let port = try XCTUnwrap(first.port)
        XCTAssertThrowsError(
            try MetricsServer(spec: .inet(port: port, host: "127.0.0.1"), exposition: { [] }, health: { Health(ok: true, reason: "") })
        ) { error in
            XCTAssertEqual(
                "\(error)", "MetricsListen inet:\(port)@127.0.0.1: the address is already in use by another process; stop it or choose another port")
        }
    }

    func testNotifierSendsDatagramsToNotifySocket() throws {
        let path = NSTemporaryDirectory() + "notify-\(getpid()).sock"
        unlink(path)
        defer { unlink(path) }
        let fd = socket(AF_UNIX, Int32(SOCK_DGRAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        defer { close(fd) }
        var address = sockaddr_un()
        address.sun_family = sa_family_t(AF_UNIX)
        withUnsafeMutableBytes(of: &address.sun_path) { raw in for (i, b) in path.utf8.enumerated() { raw[i] = b } }
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { bind(fd, $0, socklen_t(MemoryLayout<sockaddr_un>.size)) }
        }
        XCTAssertEqual(bound, 0)

        let notifier = SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"])
        XCTAssertEqual(notifier.watchdogInterval, 2)
        XCTAssertTrue(notifier.notify("READY=1\nSTATUS=signing"))
        var buffer = [UInt8](repeating: 0, count: 256)
        let count = recv(fd, &buffer, buffer.count, 0)
        XCTAssertEqual(String(decoding: buffer[0..<max(0, count)], as: UTF8.self), "READY=1\nSTATUS=signing")

        XCTAssertFalse(SystemdNotifier(environment: [:]).notify("READY=1"))
        XCTAssertNil(SystemdNotifier(environment: ["NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000", "WATCHDOG_PID": "1"]).watchdogInterval)
    }
}
