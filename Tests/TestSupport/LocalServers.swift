import Foundation
import Synchronization

/// A TCP listener on 127.0.0.1 that accepts connections and never answers: a hanging server.
///
/// Its socket, like every socket the tests make, is close-on-exec: the tests run in parallel and
/// start processes (initdb, postgres, openssl), and a child that inherited the listener kept the
/// port after `close()`, so that the next server on it could not bind.
public final class SilentServer: @unchecked Sendable {
    let socketDescriptor: Int32

    public init(port: UInt16) throws {
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        guard bindLoopback(socketDescriptor, port: port) == 0, listen(socketDescriptor, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socketDescriptor)
            throw NSError(domain: "SilentServer", code: 1, userInfo: [NSLocalizedDescriptionKey: "127.0.0.1:\(port): \(reason)"])
        }
    }

    public func close() { Glibc.close(socketDescriptor) }
}


/// The tests' certificate authority web server (`ca_server.py`) on 127.0.0.1: CRLs and CA
/// certificates from a directory, OCSP answered by `openssl ocsp`, or a canned answer.
public final class CAServer: @unchecked Sendable {
    private let process: Process

    /// - Parameter arguments: `ca_server.py` options after `--port`.
    public init(port: UInt16, _ arguments: [String]) throws {
        process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/bin/env")
        process.arguments = ["python3", TestPKI.repositoryRoot + "/Tests/TestSupport/ca_server.py", "--port", "\(port)"]
            + arguments
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        let ready = output.fileHandleForReading.readDataToEndOfFile()
        guard String(decoding: ready, as: UTF8.self).contains("ready") else {
            process.terminate()
            throw NSError(
                domain: "CAServer", code: 1, userInfo: [NSLocalizedDescriptionKey: "ca_server.py did not start on \(port)"])
        }
    }

    /// Serves the PKI's published files, `crl/` and `ca/`, on the port its certificates name.
    public static func publishing(_ pki: TestPKI, delay: Double = 0) throws -> CAServer {
        try CAServer(port: pki.crlPort, ["--root", pki.directory, "--delay", "\(delay)"])
    }

    /// `openssl ocsp` as the intermediate CA's responder, with the PKI's responder certificate
    /// unless another signer is given (one the CA did not authorise, for the negative case).
    public static func ocsp(_ pki: TestPKI, signer: String = "ocsp") throws -> CAServer {
        try CAServer(port: pki.ocspPort, [
            "--ocsp-index", pki.path("ca/intermediate.db/index.txt"), "--ocsp-ca", pki.path("ca/intermediate.pem"),
            "--ocsp-signer", pki.path("certs/\(signer).pem"), "--ocsp-key", pki.path("certs/\(signer).key"),
        ])
    }

    public func stop() {
        process.terminate()
        process.waitUntilExit()
    }
}

/// A count many threads add to.
public final class Tally: Sendable {
    private let count = Mutex(0)

    public init() {}

    public func add() { count.withLock { $0 += 1 } }
    public var value: Int { count.withLock { $0 } }
}

/// Binds `socketDescriptor` to 127.0.0.1:`port`; bind's result.
func bindLoopback(_ socketDescriptor: Int32, port: UInt16) -> Int32 {
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_port = port.bigEndian
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    return withUnsafePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
            bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
        }
    }
}
