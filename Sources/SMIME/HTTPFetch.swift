internal import COpenSSL
import Foundation

/// HTTP for revocation data and CA certificates, through OpenSSL's own client (no other HTTP
/// stack is linked). Every answer must be DER (RFC 5280 §4.2.1.13 and §4.2.2.1, RFC 6960
/// appendix A) and at most `maximumBytes` long: an HTML error page or a 1 GB answer is refused
/// without being read whole.
///
/// The connection is made here, not by OpenSSL: the host is resolved once, every address is
/// checked against the fetch rules before any is connected to, and OpenSSL speaks HTTP over the
/// socket to the checked address. Redirects are not followed.
enum HTTPFetch {
    /// GET the target, the answer's bytes.
    static func get(_ target: FetchPolicy.Target, timeout: Int, maximumBytes: Int) throws -> [UInt8] {
        try transfer(target, body: nil, contentType: nil, timeout: timeout, maximumBytes: maximumBytes)
    }

    /// POST `body` as `contentType` to the target, the answer's bytes (OCSP, RFC 6960 appendix A.1).
    static func post(
        _ target: FetchPolicy.Target, body: [UInt8], contentType: String, timeout: Int, maximumBytes: Int
    ) throws -> [UInt8] {
        try transfer(target, body: body, contentType: contentType, timeout: timeout, maximumBytes: maximumBytes)
    }

    private static func transfer(
        _ target: FetchPolicy.Target, body: [UInt8]?, contentType: String?, timeout: Int, maximumBytes: Int
    ) throws -> [UInt8] {
        let url = "http://\(target.host):\(target.port)\(target.path)"
        let deadline = Date(timeIntervalSinceNow: TimeInterval(max(1, timeout)))
        let socket = try connect(target, deadline: deadline)
        // BIO_CLOSE: the BIO owns the socket from here on.
        guard let connection = BIO_new_socket(socket, BIO_CLOSE) else {
            close(socket)
            throw SMIMEError.drain("BIO_new_socket")
        }
        defer { BIO_free_all(connection) }
        var request: OpaquePointer?
        if let body {
            request = body.withUnsafeBufferPointer { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
            guard request != nil else { throw SMIMEError.drain("BIO_new_mem_buf") }
        }
        defer { if let request { BIO_free(request) } }
        let remaining = Int32(max(1, deadline.timeIntervalSinceNow.rounded(.up)))
        let host = target.host.contains(":") ? "[\(target.host)]" : target.host
        // With our own BIO, OpenSSL uses the server name for the Host header only.
        guard
            let answer = OSSL_HTTP_transfer(
                nil, host, String(target.port), target.path, 0, nil, nil, connection, connection, nil, nil, 0, nil,
                contentType, request, nil, 1, maximumBytes, remaining, 0)
        else {
            throw SMIMEError.drain("fetching \(url)", code: .fetch, hint: "check that the server answers with DER")
        }
        defer { BIO_free_all(answer) }
        return try read(answer, url: url, maximumBytes: maximumBytes)
    }

    /// A non-blocking socket connected to one of the target's addresses, every one of which
    /// the rules allow.
    static func connect(_ target: FetchPolicy.Target, deadline: Date) throws -> Int32 {
        let addresses = try resolve(target)
        var lastError = "no address"
        for address in addresses {
            let socket = Glibc.socket(
                Int32(address.family), Int32(SOCK_STREAM.rawValue) | Int32(SOCK_NONBLOCK.rawValue)
                    | Int32(SOCK_CLOEXEC.rawValue), 0)
            guard socket >= 0 else { continue }
            var storage = address.storage
            let started = withUnsafePointer(to: &storage) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { Glibc.connect(socket, $0, address.length) }
            }
            if started == 0 || errno == EINPROGRESS {
                var poller = pollfd(fd: socket, events: Int16(POLLOUT), revents: 0)
                let milliseconds = Int32(max(0, min(60_000, deadline.timeIntervalSinceNow * 1000)))
                if started == 0 || poll(&poller, 1, milliseconds) == 1 {
                    var failure: Int32 = 0
                    var size = socklen_t(MemoryLayout<Int32>.size)
                    getsockopt(socket, SOL_SOCKET, SO_ERROR, &failure, &size)
                    if failure == 0 { return socket }
                    lastError = String(cString: strerror(failure))
                } else {
                    lastError = "no connection within the time allowed"
                }
            } else {
                lastError = String(cString: strerror(errno))
            }
            close(socket)
        }
        throw SMIMEError("connecting to \(target.host):\(target.port): \(lastError)", code: .fetch)
    }

    struct Address {
        let family: sa_family_t
        let storage: sockaddr_storage
        let length: socklen_t
        /// 4 or 16 bytes, network order.
        let bytes: [UInt8]
    }

    /// Every address of the target's host; all must pass, or none is used.
    static func resolve(_ target: FetchPolicy.Target) throws -> [Address] {
        var hints = addrinfo()
        hints.ai_socktype = Int32(SOCK_STREAM.rawValue)
        hints.ai_family = AF_UNSPEC
        var list: UnsafeMutablePointer<addrinfo>?
        let status = getaddrinfo(target.host, String(target.port), &hints, &list)
        guard status == 0, let list else {
            throw SMIMEError("resolving \(target.host): \(String(cString: gai_strerror(status)))", code: .fetch)
        }
        defer { freeaddrinfo(list) }
        var addresses: [Address] = []
        var cursor: UnsafeMutablePointer<addrinfo>? = list
        while let entry = cursor {
            cursor = entry.pointee.ai_next
            guard let raw = entry.pointee.ai_addr else { continue }
            var storage = sockaddr_storage()
            let length = min(Int(entry.pointee.ai_addrlen), MemoryLayout<sockaddr_storage>.size)
            withUnsafeMutableBytes(of: &storage) { $0.copyMemory(from: UnsafeRawBufferPointer(start: raw, count: length)) }
            let bytes: [UInt8]
            switch Int32(raw.pointee.sa_family) {
            case AF_INET:
                bytes = raw.withMemoryRebound(to: sockaddr_in.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin_addr) { Array($0) }
                }
            case AF_INET6:
                bytes = raw.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) {
                    withUnsafeBytes(of: $0.pointee.sin6_addr) { Array($0) }
                }
            default: continue
            }
            if !target.listed, let kind = FetchPolicy.nonPublic(bytes) {
                throw FetchPolicy.Refusal.address(target.host, "\(Self.text(bytes)) (\(kind))")
            }
            addresses.append(
                Address(family: raw.pointee.sa_family, storage: storage, length: socklen_t(length), bytes: bytes))
        }
        guard !addresses.isEmpty else { throw SMIMEError("\(target.host) has no address", code: .fetch) }
        return addresses
    }

    static func text(_ bytes: [UInt8]) -> String {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN))
        let family = bytes.count == 4 ? AF_INET : AF_INET6
        _ = bytes.withUnsafeBytes { inet_ntop(family, $0.baseAddress, &buffer, socklen_t(buffer.count)) }
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    private static func read(_ bio: OpaquePointer, url: String, maximumBytes: Int) throws -> [UInt8] {
        var bytes: [UInt8] = []
        var chunk = [UInt8](repeating: 0, count: 64 * 1024)
        while true {
            let count = chunk.withUnsafeMutableBytes { BIO_read(bio, $0.baseAddress, Int32($0.count)) }
            if count <= 0 { break }
            bytes += chunk.prefix(Int(count))
            if bytes.count > maximumBytes {
                throw SMIMEError("\(url) answered more than \(maximumBytes) bytes", code: .fetch, hint: "the answer is refused")
            }
        }
        guard !bytes.isEmpty else { throw SMIMEError("\(url) answered nothing", code: .fetch) }
        return bytes
    }
}
