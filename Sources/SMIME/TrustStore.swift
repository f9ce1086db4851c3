internal import COpenSSL
public import Foundation
import Synchronization
public import Logging

/// How certificate revocation is checked.
public enum RevocationCheck: String, Sendable, CaseIterable {
    /// Not at all.
    case none
    /// Against the CRLs in the CRL directory; an issuer without a CRL there is a temporary error.
    case crl
    /// Also fetched from each certificate's CRL distribution points, cached until nextUpdate.
    case crlFetch = "crl+fetch"
    /// The certificate's OCSP responder first (RFC 6960); CRLs, local and fetched, when no
    /// responder answers.
    case ocsp
}

/// The trust anchors, extra intermediates and revocation data verification uses. Built once per
/// configuration and shared by every connection (an `X509_STORE` is safe to read from many
/// threads); the CRL cache has its own lock.
public final class TrustStore: @unchecked Sendable {
    // @unchecked: immutable after init; the X509_STORE and the certificates are only read (with
    // no lookup methods added, OpenSSL allows that from many threads); the cache locks itself.
    public let anchors: [Certificate]
    public let revocation: RevocationCheck
    /// Seconds a message may wait, in total, for revocation data and missing CA certificates.
    public let fetchTimeout: Int
    /// Seconds a CRL stays usable past its nextUpdate.
    public let gracePeriod: TimeInterval

    private let storeHandle: StoreHandle
    var store: OpaquePointer { storeHandle.pointer }
    let intermediates: [X509Handle]
    private let localCRLs: [CRLHandle]
    /// Downloads: CRLs, OCSP answers, CA certificates.
    let cache: FetchCache
    /// Where downloads may go: the hosts the anchors and intermediates name, plus `FetchHosts`.
    public let fetchPolicy: FetchPolicy
    private let maximumDownload: Int
    private let logger: Logger

    /// - Parameters:
    ///   - anchors: PEM files or directories of them (`*.pem`, `*.crt`): the trusted roots.
    ///   - intermediates: PEM files of intermediate CAs to use when a message does not carry them.
    ///   - crlDirectory: CRLs, PEM or DER, one or more per file.
    ///   - fetchHosts: `FetchHosts`: hosts (or `host:port`) downloads may go to besides those the
    ///     anchors and intermediates name, loopback and private addresses included.
    ///   - cacheDirectory: where fetched CRLs are kept across restarts (nil: memory only).
    ///   - gracePeriod: how long a CRL past its nextUpdate is still used (the reason says so).
    ///   - maximumDownload: the largest answer read from a CA's server, in bytes.
    ///   - retryAfter: the first back-off after a failed download (it doubles, up to 15 minutes).
    public init(
        anchors anchorPaths: [String], intermediates intermediatePaths: [String], crlDirectory: String?,
        revocation: RevocationCheck, fetchTimeout: Int, fetchHosts: [String],
        cacheDirectory: String?,
        gracePeriod: TimeInterval, maximumDownload: Int = 64 << 20, retryAfter: TimeInterval = 30,
        logger: Logger = Logger(label: "smime-milter.trust")
    ) throws {
        guard let store = X509_STORE_new() else { throw SMIMEError.drain("X509_STORE_new") }
        // Owned before anything can throw: a refused reload frees it with the partly made object.
        storeHandle = StoreHandle(takingOwnershipOf: store)
        self.revocation = revocation
        self.fetchTimeout = fetchTimeout
        self.gracePeriod = gracePeriod
        self.maximumDownload = maximumDownload
        self.logger = logger
        cache = FetchCache.at(cacheDirectory, backoffBase: retryAfter, logger: logger)
        var anchors: [Certificate] = []
        var anchorHandles: [X509Handle] = []
        for path in try Self.expand(anchorPaths, kind: "trust anchor") {
            for handle in try X509Handle.load(pemFile: path) {
                guard X509_STORE_add_cert(store, handle.pointer) == 1 else {
                    ERR_clear_error()  // the same root twice is not an error
                    continue
                }
                anchors.append(try Certificate(handle.pointer))
                anchorHandles.append(handle)
            }
        }
        guard !anchors.isEmpty else {
            throw SMIMEError("no trust anchor in \(anchorPaths.joined(separator: ", "))", code: .trust, hint: "point TrustAnchors at PEM root certificates")
        }
        self.anchors = anchors
        intermediates = try Self.expand(intermediatePaths, kind: "intermediate").flatMap { try X509Handle.load(pemFile: $0) }
        let configured = anchorHandles + intermediates
        fetchPolicy = try FetchPolicy(fetchHosts: fetchHosts).naming(
            configured.flatMap {
                Revocation.distributionPoints($0.pointer) + Revocation.ocspURLs($0.pointer)
                    + Revocation.caIssuerURLs($0.pointer)
            })
        cache.install(fetchPolicy)
        localCRLs = try crlDirectory.map { try Self.loadCRLs(directory: $0) } ?? []
    }


    private static func expand(_ paths: [String], kind: String) throws -> [String] {
        var files: [String] = []
        for path in paths {
            var isDirectory: ObjCBool = false
            guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
                throw SMIMEError("\(kind) path \(path) does not exist", code: .file, hint: "correct the path in the configuration")
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
            throw SMIMEError("CRL directory \(directory) does not exist", code: .file, hint: "create it or remove CRLDirectory")
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
        var because: VerdictReason?
        var chain: [String]
    }

    /// Builds the chain from `leaf` to an anchor with the message's certificates and the
    /// configured intermediates (fetching a missing CA certificate from the CA-issuers address,
    /// when fetching is on), and checks validity now and revocation as configured.
    func verifyChain(leaf: OpaquePointer, messageCertificates: [OpaquePointer]) -> ChainResult {
        let deadline = Date(timeIntervalSinceNow: TimeInterval(fetchTimeout))
        var untrusted = messageCertificates + intermediates.map(\.pointer)
        var fetchedIssuers: [X509Handle] = []
        // One message starts a few downloads at most, whatever its certificates name.
        let allowance = FetchCache.Allowance(FetchPolicy.downloadsPerMessage)
        var built = run(leaf: leaf, untrusted: untrusted)
        if revocation != .none && revocation != .crl && Self.missingIssuer(built.error), let last = built.chainPointers.last {
            fetchedIssuers = issuers(of: last, until: deadline, allowance: allowance)
            if !fetchedIssuers.isEmpty {
                untrusted += fetchedIssuers.map(\.pointer)
                built = run(leaf: leaf, untrusted: untrusted)
            }
        }
        var result = map(built)
        guard built.error == X509_V_OK, revocation != .none, built.chainPointers.count > 1 else {
            return withExtendedLifetime(fetchedIssuers) { result }
        }
        let links = zip(built.chainPointers, built.chainPointers.dropFirst()).map {
            Revocation.Link(certificate: X509Handle(retaining: $0), issuer: X509Handle(retaining: $1))
        }
        withExtendedLifetime(fetchedIssuers) {}
        let checker = Revocation(
            mode: revocation, budget: max(0, deadline.timeIntervalSinceNow), grace: gracePeriod,
            maximumBytes: maximumDownload, cache: cache, policy: fetchPolicy, allowance: allowance, localCRLs: localCRLs)
        let standings = checker.check(links) { [self] query, bytes in try verifyOCSP(query, bytes) }
        var notes: [String] = []
        var unknown: [String] = []
        for (link, standing) in zip(links, standings) {
            switch standing {
            case .revoked(let since, let byOCSP):
                result.result = .fail
                result.because = .revoked(subject: link.subject, since: since, byOCSP: byOCSP)
                return result
            case .unknown(let why): unknown.append("\(link.subject): \(why)")
            case .unchecked(let why): notes.append(why)
            case .good(let note): if let note { notes.append("\(note) (\(link.subject))") }
            }
        }
        if !unknown.isEmpty {
            result.result = .temperror
            result.because = .revocationUnknown(unknown.joined(separator: "; "))
        } else if !notes.isEmpty {
            result.because = .notes(notes.joined(separator: "; "))
        }
        return result
    }

    private static func missingIssuer(_ error: Int32) -> Bool {
        error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY || error == X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT
            || error == X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE
    }

    /// The CA certificates the certificate's CA-issuers addresses give (DER, or a certs-only
    /// CMS), fetched once and kept for a day, waiting at most until `deadline`. Only where the
    /// fetch rules allow: a chain whose CA-issuers address is on a host the province's own CA
    /// certificates (or `FetchHosts`) name is one that can end at a configured anchor.
    private func issuers(of certificate: OpaquePointer, until deadline: Date, allowance: FetchCache.Allowance)
        -> [X509Handle]
    {
        let urls = Revocation.caIssuerURLs(certificate)
        guard !urls.isEmpty else { return [] }
        let maximumBytes = maximumDownload
        let timeout = Revocation.downloadTimeout(TimeInterval(fetchTimeout))
        for url in urls where cache.item(url) == nil {
            cache.start(url, url: url, policy: fetchPolicy, allowance: allowance, refresh: false) { target in
                let bytes = try HTTPFetch.get(target, timeout: timeout, maximumBytes: maximumBytes)
                let certificates = Self.parseCertificates(bytes)
                guard !certificates.isEmpty else {
                    throw SMIMEError("\(url) did not answer with a certificate", code: .fetch, hint: "check the CA-issuers address")
                }
                return FetchCache.Item(
                    value: .certificates(certificates), bytes: bytes, fetchedAt: Date(),
                    validUntil: Date(timeIntervalSinceNow: 86400), persist: false)
            }
        }
        cache.wait(until: deadline) { urls.allSatisfy { cache.item($0) != nil || !cache.isInFlight($0) } }
        return urls.flatMap { url -> [X509Handle] in
            guard let item = cache.item(url), case .certificates(let certificates) = item.value else { return [] }
            return certificates
        }
    }

    /// A DER certificate, or the certificates of a DER PKCS#7 certs-only structure.
    static func parseCertificates(_ bytes: [UInt8]) -> [X509Handle] {
        defer { ERR_clear_error() }
        if let single = try? X509Handle(der: bytes) { return [single] }
        return bytes.withUnsafeBufferPointer { buffer -> [X509Handle] in
            var cursor = buffer.baseAddress
            guard let pkcs7 = d2i_PKCS7(nil, &cursor, buffer.count) else { return [] }
            defer { PKCS7_free(pkcs7) }
            guard OBJ_obj2nid(pkcs7.pointee.type) == NID_pkcs7_signed, let signed = pkcs7.pointee.d.sign,
                let certificates = signed.pointee.cert
            else { return [] }
            return (0..<OPENSSL_sk_num(certificates)).compactMap { index in
                OPENSSL_sk_value(certificates, index).map { X509Handle(retaining: OpaquePointer($0)) }
            }
        }
    }

    /// Checks an OCSP answer (RFC 6960): a successful response, signed by the CA or a responder
    /// it authorised, with the nonce we sent when it echoes one, for this certificate, current.
    func verifyOCSP(_ query: OCSPRequest, _ bytes: [UInt8]) throws -> OCSPAnswer {
        defer { ERR_clear_error() }
        let parsed = bytes.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_OCSP_RESPONSE(nil, &cursor, buffer.count)
        }
        guard let response = parsed else { throw SMIMEError("\(query.url) did not answer with an OCSP response", code: .ocsp) }
        defer { OCSP_RESPONSE_free(response) }
        let status = OCSP_response_status(response)
        guard status == OCSP_RESPONSE_STATUS_SUCCESSFUL else {
            throw SMIMEError("\(query.url) answered \(String(cString: OCSP_response_status_str(Int(status))))", code: .ocsp)
        }
        guard let basic = OCSP_response_get1_basic(response) else {
            throw SMIMEError("\(query.url) answered without a basic OCSP response", code: .ocsp)
        }
        defer { OCSP_BASICRESP_free(basic) }
        let certificates = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(certificates) }
        OPENSSL_sk_push(certificates, UnsafeRawPointer(query.link.issuer.pointer))
        for certificate in intermediates { OPENSSL_sk_push(certificates, UnsafeRawPointer(certificate.pointer)) }
        guard OCSP_basic_verify(basic, certificates, store, 0) == 1 else {
            throw SMIMEError.drain(
                "the OCSP answer from \(query.url) is not signed by the CA or a responder it authorised", code: .ocsp)
        }
        guard OCSP_check_nonce(query.request.pointer, basic) != 0 else {
            throw SMIMEError("the OCSP answer from \(query.url) carries another request's nonce", code: .ocsp)
        }
        guard let id = OCSP_cert_to_id(nil, query.link.certificate.pointer, query.link.issuer.pointer) else {
            throw SMIMEError.drain("making an OCSP certificate ID")
        }
        defer { OCSP_CERTID_free(id) }
        var certificateStatus: Int32 = 0
        var reason: Int32 = 0
        var revoked: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var thisUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        var nextUpdate: UnsafeMutablePointer<ASN1_GENERALIZEDTIME>?
        guard OCSP_resp_find_status(basic, id, &certificateStatus, &reason, &revoked, &thisUpdate, &nextUpdate) == 1
        else {
            throw SMIMEError("the OCSP answer from \(query.url) is about another certificate", code: .ocsp)
        }
        guard OCSP_check_validity(thisUpdate, nextUpdate, 300, -1) == 1 else {
            throw SMIMEError("the OCSP answer from \(query.url) is out of date", code: .ocsp)
        }
        let next = nextUpdate.map { Certificate.date(UnsafePointer($0)) }
        let this = thisUpdate.map { Certificate.date(UnsafePointer($0)) } ?? Date()
        switch certificateStatus {
        case V_OCSP_CERTSTATUS_GOOD:
            return OCSPAnswer(status: .good, thisUpdate: this, nextUpdate: next)
        case V_OCSP_CERTSTATUS_REVOKED:
            return OCSPAnswer(
                status: .revoked(revoked.map { Certificate.date(UnsafePointer($0)) } ?? this), thisUpdate: this,
                nextUpdate: next)
        default:
            throw SMIMEError("\(query.url) does not know the certificate (status unknown)", code: .ocsp)
        }
    }

    private struct Run {
        var error: Int32
        var depth: Int32
        var chain: [String]
        var chainPointers: [OpaquePointer]
        var chainOwner: OpaquePointer?
        var failing: String?
    }

    private func run(leaf: OpaquePointer, untrusted: [OpaquePointer]) -> Run {
        guard let context = X509_STORE_CTX_new() else { return Run(error: -1, depth: 0, chain: [], chainPointers: []) }
        defer { X509_STORE_CTX_free(context) }
        let stack = OPENSSL_sk_new_null()
        defer { OPENSSL_sk_free(stack) }
        for certificate in untrusted { OPENSSL_sk_push(stack, UnsafeRawPointer(certificate)) }
        guard X509_STORE_CTX_init(context, store, leaf, stack) == 1 else {
            return Run(error: -1, depth: 0, chain: [], chainPointers: [], failing: OpenSSL.drainErrors().joined(separator: "; "))
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
            return ChainResult(result: .pass, because: nil, chain: run.chain)
        case X509_V_ERR_CERT_HAS_EXPIRED, X509_V_ERR_CERT_NOT_YET_VALID:
            return ChainResult(
                result: .policy, because: .outsideValidity(expired: run.error == X509_V_ERR_CERT_HAS_EXPIRED, detail: "\(text)\(at)"),
                chain: run.chain)
        case X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY, X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT,
            X509_V_ERR_SELF_SIGNED_CERT_IN_CHAIN, X509_V_ERR_DEPTH_ZERO_SELF_SIGNED_CERT, X509_V_ERR_CERT_UNTRUSTED,
            X509_V_ERR_UNABLE_TO_VERIFY_LEAF_SIGNATURE:
            return ChainResult(result: .policy, because: .untrusted("\(text)\(at)"), chain: run.chain)
        default:
            return ChainResult(result: .policy, because: .certificateNotAcceptable("\(text)\(at)"), chain: run.chain)
        }
    }
}

/// The one owner of an OpenSSL `X509_STORE` (safe to read from many threads once filled).
final class StoreHandle: @unchecked Sendable {
    // @unchecked: filled before it is shared, only read afterwards.
    let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { X509_STORE_free(pointer) }
}

/// The one owner of an OpenSSL `X509_CRL`.
final class CRLHandle: @unchecked Sendable {
    // @unchecked: the CRL is only read; OpenSSL sorts its entries on the first lookup under the
    // CRL's own lock; the verified keys are behind a Mutex.
    let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) {
        self.pointer = pointer
    }

    deinit { X509_CRL_free(pointer) }

    var thisUpdate: Date? { X509_CRL_get0_lastUpdate(pointer).map { Certificate.date($0) } }
    var nextUpdate: Date? { X509_CRL_get0_nextUpdate(pointer).map { Certificate.date($0) } }

    /// Keys (SHA-256 of the issuer's public key) this CRL's signature was checked against.
    private let verified = Mutex<Set<[UInt8]>>([])

    /// Whether `issuer` issued this CRL: its name is the CRL's issuer and its key verifies the
    /// CRL's signature. The signature of a large CRL is checked once per issuer key.
    func isIssued(by issuer: OpaquePointer) -> Bool {
        guard X509_NAME_cmp(X509_CRL_get_issuer(pointer), X509_get_subject_name(issuer)) == 0 else { return false }
        var digest = [UInt8](repeating: 0, count: 32)
        var length: UInt32 = 0
        guard X509_pubkey_digest(issuer, EVP_sha256(), &digest, &length) == 1 else {
            ERR_clear_error()
            return false
        }
        if verified.withLock({ $0.contains(digest) }) { return true }
        guard let key = X509_get0_pubkey(issuer), X509_CRL_verify(pointer, key) == 1 else {
            ERR_clear_error()
            return false
        }
        _ = verified.withLock { $0.insert(digest) }
        return true
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
