internal import COpenSSL
import Foundation
public import Logging

/// How certificate revocation is checked.
public enum RevocationCheck: String, Sendable, CaseIterable {
    /// Not at all.
    case none
    /// Against the CRLs in the CRL directory; an issuer without a CRL there is a temporary error.
    case crl
    /// Also fetched from each certificate's CRL distribution point, cached until nextUpdate.
    case crlFetch = "crl+fetch"
}

/// The trust anchors, extra intermediates and revocation data verification uses. Built once per
/// configuration and shared by every connection (an `X509_STORE` is safe to read from many
/// threads); the CRL cache has its own lock.
public final class TrustStore: @unchecked Sendable {
    public let anchors: [Certificate]
    public let revocation: RevocationCheck
    /// Seconds a CRL download may take before the verdict becomes `temperror`.
    public let fetchTimeout: Int

    let store: OpaquePointer
    let intermediates: [X509Handle]
    private let localCRLs: [CRLHandle]
    private let cacheLock = NSLock()
    private var fetched: [String: CRLHandle] = [:]
    private let logger: Logger

    /// - Parameters:
    ///   - anchors: PEM files or directories of them (`*.pem`, `*.crt`): the trusted roots.
    ///   - intermediates: PEM files of intermediate CAs to use when a message does not carry them.
    ///   - crlDirectory: CRLs, PEM or DER, one or more per file.
    public init(
        anchors anchorPaths: [String], intermediates intermediatePaths: [String] = [], crlDirectory: String? = nil,
        revocation: RevocationCheck = .none, fetchTimeout: Int = 5,
        logger: Logger = Logger(label: "smime-milter.trust")
    ) throws {
        guard let store = X509_STORE_new() else { throw SMIMEError.drain("X509_STORE_new") }
        self.store = store
        self.revocation = revocation
        self.fetchTimeout = fetchTimeout
        self.logger = logger
        var anchors: [Certificate] = []
        for path in try Self.expand(anchorPaths, kind: "trust anchor") {
            for handle in try X509Handle.load(pemFile: path) {
                guard X509_STORE_add_cert(store, handle.pointer) == 1 else {
                    ERR_clear_error()  // the same root twice is not an error
                    continue
                }
                anchors.append(try Certificate(handle.pointer))
            }
        }
        guard !anchors.isEmpty else {
            X509_STORE_free(store)
            throw SMIMEError("no trust anchor in \(anchorPaths.joined(separator: ", "))", hint: "point TrustAnchors at PEM root certificates")
        }
        self.anchors = anchors
        intermediates = try Self.expand(intermediatePaths, kind: "intermediate").flatMap { try X509Handle.load(pemFile: $0) }
        localCRLs = try crlDirectory.map { try Self.loadCRLs(directory: $0) } ?? []
    }

    deinit { X509_STORE_free(store) }

    private static func expand(_ paths: [String], kind: String) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw SMIMEError("\(kind) path \(path) does not exist", hint: "correct the path in the configuration")
            }
            if isDirectory.boolValue {
                let names = try FileManager.default.contentsOfDirectory(atPath: path).sorted()
                files += names.filter { $0.hasSuffix(".pem") || $0.hasSuffix(".crt") }.map { path + "/" + $0 }
            } else {
                files.append(path)
            }
        }
        return files
    }

    private static func loadCRLs(directory: String) throws -> [CRLHandle] {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: directory, isDirectory: &isDirectory), isDirectory.boolValue else {
            throw SMIMEError("CRL directory \(directory) does not exist", hint: "create it or remove CRLDirectory")
        }
        var crls: [CRLHandle] = []
        for name in try FileManager.default.contentsOfDirectory(atPath: directory).sorted() {
            let bytes = Array((try? Data(contentsOf: URL(fileURLWithPath: directory + "/" + name))) ?? Data())
            crls += CRLHandle.parse(bytes)
        }
        return crls
    }

    // MARK: chain verification

    /// The outcome of building and checking a chain.
    struct ChainResult {
        var result: Verdict.Result
        var reason: String
        var chain: [String]
    }

    /// Builds the chain from `leaf` to an anchor with the message's certificates and the
    /// configured intermediates, and checks validity now and revocation as configured.
    func verifyChain(leaf: OpaquePointer, messageCertificates: [OpaquePointer]) -> ChainResult {
        let untrusted = messageCertificates + intermediates.map(\.pointer)
        // First without revocation: the chain tells which CRLs are needed.
        var first = run(leaf: leaf, untrusted: untrusted, crls: nil)
        guard first.error == X509_V_OK else { return map(first) }
        guard revocation != .none else { return map(first) }
        var crls = localCRLs
        var unreachable: [String] = []
        if revocation == .crlFetch {
            for certificate in first.chainPointers.dropLast() {
                for url in Self.distributionPoints(certificate) {
                    if let crl = fetch(url) { crls.append(crl) } else { unreachable.append(url) }
                }
            }
        }
        first = run(leaf: leaf, untrusted: untrusted, crls: crls)
        var result = map(first)
        if result.result == .temperror && !unreachable.isEmpty {
            result.reason += "; could not fetch " + unreachable.joined(separator: ", ")
        }
        return result
    }

    private struct Run {
        var error: Int32
        var depth: Int32
        var chain: [String]
        var chainPointers: [OpaquePointer]
        var chainOwner: OpaquePointer?
        var failing: String?
    }

    private func run(leaf: OpaquePointer, untrusted: [OpaquePointer], crls: [CRLHandle]?) -> Run {
        guard let context = X509_STORE_CTX_new() else { return Run(error: -1, depth: 0, chain: [], chainPointers: []) }
        defer { X509_STORE_CTX_free(context) }
        let stack = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(stack) }
        for certificate in untrusted { OPENSSL_sk_push(stack, UnsafeRawPointer(certificate)) }
        let crlStack = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(crlStack) }
        guard X509_STORE_CTX_init(context, store, leaf, stack) == 1 else {
            return Run(error: -1, depth: 0, chain: [], chainPointers: [], failing: OpenSSL.drainErrors().joined(separator: "; "))
        }
        if let crls {
            for crl in crls { OPENSSL_sk_push(crlStack, UnsafeRawPointer(crl.pointer)) }
            X509_STORE_CTX_set0_crls(context, crlStack)
            let parameters = X509_STORE_CTX_get0_param(context)
            X509_VERIFY_PARAM_set_flags(parameters, UInt(X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL))
        }
        _ = X509_verify_cert(context)
        ERR_clear_error()
        let error = X509_STORE_CTX_get_error(context)
        var subjects: [String] = []
        var pointers: [OpaquePointer] = []
        if let chain = X509_STORE_CTX_get0_chain(context) {
            for index in 0..<OPENSSL_sk_num(chain) {
                guard let raw = OPENSSL_sk_value(chain, index) else { continue }
                let certificate = OpaquePointer(raw)
                subjects.append(Certificate.text(X509_get_subject_name(certificate)))
                pointers.append(certificate)
            }
        }
        let failing = X509_STORE_CTX_get_current_cert(context).map { Certificate.text(X509_get_subject_name($0)) }
        // Pointers into the chain stay valid while the leaf, the store and `untrusted` live,
        // which is for the duration of verifyChain.
        return Run(
            error: error, depth: X509_STORE_CTX_get_error_depth(context), chain: subjects, chainPointers: pointers,
            failing: failing)
    }

    private func map(_ run: Run) -> ChainResult {
        let text = String(cString: X509_verify_cert_error_string(Int(run.error)))
        let at = run.failing.map { " (\($0))" } ?? ""
        switch run.error {
        case X509_V_OK:
            return ChainResult(result: .pass, reason: "", chain: run.chain)
        case X509_V_ERR_CERT_REVOKED:
            return ChainResult(result: .fail, reason: "certificate revoked\(at)", chain: run.chain)
        case X509_V_ERR_UNABLE_TO_GET_CRL, X509_V_ERR_CRL_HAS_EXPIRED, X509_V_ERR_CRL_NOT_YET_VALID,
            X509_V_ERR_UNABLE_TO_GET_CRL_ISSUER:
            return ChainResult(result: .temperror, reason: "revocation status unknown: \(text)\(at)", chain: run.chain)
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
            return ChainResult(result: .policy, reason: "\(text)\(at)", chain: run.chain)
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
            X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_CERT_UNTRUSTED,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return ChainResult(result: .policy, reason: "not issued by a trusted CA: \(text)\(at)", chain: run.chain)
        default:
            return ChainResult(result: .policy, reason: "certificate not acceptable: \(text)\(at)", chain: run.chain)
        }
    }

    // MARK: CRL distribution points

    static func distributionPoints(_ certificate: OpaquePointer) -> [String] {
        guard let raw = X509_get_ext_d2i(certificate, NID_crl_distribution_points, nil, nil) else { return [] }
        let points = OpaquePointer(raw)
        defer { CRL_DIST_POINTS_free(points) }
        var urls: [String] = []
        for index in 0..<OPENSSL_sk_num(points) {
            guard let pointRaw = OPENSSL_sk_value(points, index) else { continue }
            let point = pointRaw.assumingMemoryBound(to: DIST_POINT.self)
            guard let name = point.pointee.distpoint, name.pointee.type == 0,
                let fullName = name.pointee.name.fullname
            else { continue }
            for nameIndex in 0..<OPENSSL_sk_num(fullName) {
                guard let generalRaw = OPENSSL_sk_value(fullName, nameIndex) else { continue }
                let general = generalRaw.assumingMemoryBound(to: GENERAL_NAME.self)
                if general.pointee.type == GEN_URI, let uri = Certificate.utf8(general.pointee.d.uniformResourceIdentifier),
                    uri.hasPrefix("http://")
                {
                    urls.append(uri)
                }
            }
        }
        return urls
    }

    /// A CRL from `url`: cached until its nextUpdate, else downloaded within `fetchTimeout`.
    private func fetch(_ url: String) -> CRLHandle? {
        cacheLock.lock()
        if let cached = fetched[url], cached.isCurrent {
            cacheLock.unlock()
            return cached
        }
        cacheLock.unlock()
        guard let crl = X509_CRL_load_http(url, nil, nil, Int32(fetchTimeout)) else {
            logger.warning("CRL download failed", metadata: ["smime.crl_url": "\(url)", "smime.error": "\(OpenSSL.drainErrors())"])
            return nil
        }
        let handle = CRLHandle(takingOwnershipOf: crl)
        cacheLock.lock()
        fetched[url] = handle
        cacheLock.unlock()
        return handle
    }
}

/// The one owner of an OpenSSL `X509_CRL`.
final class CRLHandle: @unchecked Sendable {
    let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { X509_CRL_free(pointer) }

    /// True while nextUpdate is in the future (or absent).
    var isCurrent: Bool {
        guard let next = X509_CRL_get0_nextUpdate(pointer) else { return true }
        return X509_cmp_current_time(next) > 0
    }

    /// Every CRL in a PEM file, or the one CRL of a DER file.
    static func parse(_ bytes: [UInt8]) -> [CRLHandle] {
        var result: [CRLHandle] = []
        bytes.withUnsafeBufferPointer { buffer in
            guard let bio = BIO_new_mem_buf(buffer.baseAddress, Int32(buffer.count)) else { return }
            defer { BIO_free(bio) }
            while let crl = PEM_read_bio_X509_CRL(bio, nil, nil, nil) {
                result.append(CRLHandle(takingOwnershipOf: crl))
            }
            if result.isEmpty {
                var cursor = buffer.baseAddress
                if let crl = d2i_X509_CRL(nil, &cursor, buffer.count) {
                    result.append(CRLHandle(takingOwnershipOf: crl))
                }
            }
        }
        ERR_clear_error()
        return result
    }
}
