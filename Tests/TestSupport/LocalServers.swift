import Foundation

/// A TCP listener on 127.0.0.1 that accepts connections and never answers: a hanging server.
public final class SilentServer: @unchecked Sendable {
    let socketDescriptor: Int32

    public init(port: UInt16) throws {
        socketDescriptor = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
        var yes: Int32 = 1
        setsockopt(socketDescriptor, SOL_SOCKET, SO_REUSEADDR, &yes, socklen_t(MemoryLayout<Int32>.size))
        var address = sockaddr_in()
        address.sin_family = sa_family_t(AF_INET)
        address.sin_port = port.bigEndian
        address.sin_addr.s_addr = inet_addr("127.0.0.1")
        let bound = withUnsafePointer(to: &address) {
            $0.withMemoryRebound(to: sockaddr.self, capacity: 1) {
                bind(socketDescriptor, $0, socklen_t(MemoryLayout<sockaddr_in>.size))
            }
        }
        guard bound == 0, listen(socketDescriptor, 16) == 0 else {
            let reason = String(cString: strerror(errno))
            Glibc.close(socketDescriptor)
            throw NSError(domain: "SilentServer", code: 1, userInfo: [NSLocalizedDescriptionKey: "127.0.0.1:\(port): \(reason)"])
        }
    }

    public func close() { Glibc.close(socketDescriptor) }
}

