internal import COpenSSL
import Foundation

/// HTTP for revocation data and CA certificates, through OpenSSL's own client (no other HTTP
/// stack is linked). Every answer must be DER (RFC 5280 §4.2.1.13 and §4.2.2.1, RFC 6960
/// appendix A) and at most `maximumBytes` long: an HTML error page or a 1 GB answer is refused
/// without being read whole.
enum HTTPFetch {
    /// GET `url`, the answer's bytes.
    static func get(_ url: String, timeout: Int, maximumBytes: Int) throws -> [UInt8] {
        guard url.hasPrefix("http://") else {
            throw SMIMEError("\(url) is not an http:// address", code: .fetch, hint: "revocation data is fetched over plain HTTP only")
        }
        guard
            let bio = OSSL_HTTP_get(
                url, nil, nil, nil, nil, nil, nil, 0, nil, nil, 1, maximumBytes, Int32(max(1, timeout)))
        else {
            throw SMIMEError.drain("fetching \(url)", code: .fetch, hint: "check that the server answers with DER")
        }
        defer { BIO_free_all(bio) }
        return try read(bio, url: url, maximumBytes: maximumBytes)
    }

    /// POST `body` as `contentType` to `url`, the answer's bytes (OCSP, RFC 6960 appendix A.1).
    static func post(_ url: String, body: [UInt8], contentType: String, timeout: Int, maximumBytes: Int) throws
        -> [UInt8]
    {
        var useTLS: Int32 = 0
        var host: UnsafeMutablePointer<CChar>?
        var port: UnsafeMutablePointer<CChar>?
        var path: UnsafeMutablePointer<CChar>?
        guard OSSL_HTTP_parse_url(url, &useTLS, nil, &host, &port, nil, &path, nil, nil) == 1, useTLS == 0 else {
            throw SMIMEError.drain("reading the address \(url)", code: .fetch, hint: "OCSP is queried over plain http://")
        }
        defer {
            CRYPTO_free(host, #fileID, #line)
            CRYPTO_free(port, #fileID, #line)
            CRYPTO_free(path, #fileID, #line)
        }
        let request = body.withUnsafeBufferPointer { BIO_new_mem_buf($0.baseAddress, Int32($0.count)) }
        guard let request else { throw SMIMEError.drain("BIO_new_mem_buf") }
        defer { BIO_free(request) }
        guard
            let bio = OSSL_HTTP_transfer(
                nil, host, port, path, 0, nil, nil, nil, nil, nil, nil, 0, nil, contentType, request, nil, 1,
                maximumBytes, Int32(max(1, timeout)), 0)
        else {
            throw SMIMEError.drain("querying \(url)", code: .fetch, hint: "check that the responder answers")
        }
        defer { BIO_free_all(bio) }
        return try read(bio, url: url, maximumBytes: maximumBytes)
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
