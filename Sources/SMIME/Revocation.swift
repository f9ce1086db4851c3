internal import COpenSSL
import Foundation

/// The revocation check of a built chain, within one time budget per message.
///
/// What is checked: every certificate of the chain but the anchor, when it names a source (CRL
/// distribution points, an OCSP responder in `ocsp` mode) or a local CRL covers it; a
/// certificate with neither is noted in the reason and is no cause for `temperror`.
///
/// How: a CRL must be issued by the certificate's issuer and verify with its key; it is current
/// until its nextUpdate and usable `grace` seconds longer (the reason then says it is stale). In
/// `ocsp` mode the responder is asked first and CRLs are the fallback. All downloads of one
/// message start at once and the message waits for them at most `budget` seconds in total;
/// whatever is still missing then is `temperror`, and the downloads go on for later messages.
struct Revocation {
    let mode: RevocationCheck
    let budget: TimeInterval
    let grace: TimeInterval
    let maximumBytes: Int
    let cache: FetchCache
    /// Where downloads may go.
    let policy: FetchPolicy
    /// The downloads this message may still start.
    let allowance: FetchCache.Allowance
    let localCRLs: [CRLHandle]

    /// One certificate's standing.
    enum Standing {
        case good(note: String?)
        case revoked(since: Date?, byOCSP: Bool)
        case unknown(String)
        case unchecked(String)
    }

    /// A chain certificate and its issuer, both retained for as long as a download needs them.
    struct Link: @unchecked Sendable {
        // @unchecked: X509 objects are reference counted with atomic counts and not changed here.
        let certificate: X509Handle
        let issuer: X509Handle
        var subject: String { Certificate.text(X509_get_subject_name(certificate.pointer)) }
    }

    /// The standing of each link, leaf first, deciding within the budget.
    func check(_ links: [Link], verifyOCSP: @escaping @Sendable (OCSPRequest, [UInt8]) throws -> OCSPAnswer) -> [Standing] {
        let deadline = Date(timeIntervalSinceNow: budget)
        let plans = links.map { plan(for: $0) }
        if mode == .ocsp {
            for plan in plans { for query in plan.ocsp { startOCSP(query, verify: verifyOCSP) } }
            let keys = plans.flatMap { $0.ocsp.map(\.key) }
            cache.wait(until: waitingEnd(keys, deadline)) {
                plans.allSatisfy { $0.ocsp.isEmpty || ocspAnswer($0) != nil || ocspSettled($0) }
            }
        }
        // CRLs for every link still undecided, all at once.
        for (index, plan) in plans.enumerated() where mode != .ocsp || ocspAnswer(plan) == nil {
            if usableCRL(for: links[index], plan: plan) == nil || needsRefresh(plan) {
                for url in plan.distributionPoints { startCRL(url, link: links[index]) }
            }
        }
        cache.wait(until: waitingEnd(plans.flatMap(\.distributionPoints), deadline)) {
            plans.enumerated().allSatisfy { index, plan in
                (mode == .ocsp && ocspAnswer(plan) != nil) || usableCRL(for: links[index], plan: plan) != nil
                    || crlSettled(plan)
            }
        }
        return plans.enumerated().map { index, plan in standing(links[index], plan) }
    }

    /// How long to wait for the downloads of `keys`: no later than the message's deadline, and
    /// no later than the budget after the oldest of them started. A download that was already
    /// under way for a whole budget (a silent server) is not waited for again.
    private func waitingEnd(_ keys: [String], _ deadline: Date) -> Date {
        let ends = keys.compactMap { cache.startOfFlight($0)?.addingTimeInterval(budget) }
        guard let latest = ends.max() else { return deadline }
        return min(deadline, latest)
    }

    // MARK: what each link needs

    struct Plan {
        var distributionPoints: [String]
        var ocsp: [OCSPRequest]
        var coveredLocally: Bool
    }

    private func plan(for link: Link) -> Plan {
        let local = localCRLs.contains { $0.isIssued(by: link.issuer.pointer) }
        let points = mode == .crl ? [] : Self.distributionPoints(link.certificate.pointer)
        let ocsp =
            mode == .ocsp
            ? Self.ocspURLs(link.certificate.pointer).compactMap { try? OCSPRequest(link: link, url: $0) } : []
        return Plan(distributionPoints: points, ocsp: ocsp, coveredLocally: local)
    }

    private func standing(_ link: Link, _ plan: Plan) -> Standing {
        if mode == .ocsp, let answer = ocspAnswer(plan) {
            switch answer.status {
            case .good: return .good(note: nil)
            case .revoked(let date): return .revoked(since: date, byOCSP: true)
            }
        }
        if plan.distributionPoints.isEmpty && !plan.coveredLocally && plan.ocsp.isEmpty {
            return .unchecked("\(link.subject) names no revocation source")
        }
        if let (crl, stale) = usableCRL(for: link, plan: plan) {
            var entry: OpaquePointer?
            if X509_CRL_get0_by_cert(crl.pointer, &entry, link.certificate.pointer) == 1 {
                let date = entry.flatMap { X509_REVOKED_get0_revocationDate($0) }.map { Certificate.date($0) }
                return .revoked(since: date, byOCSP: false)
            }
            return .good(note: stale.map { "revocation list stale since \(VerdictReason.day($0))" })
        }
        return .unknown(whyUnknown(link, plan))
    }

    private func whyUnknown(_ link: Link, _ plan: Plan) -> String {
        var reasons: [String] = []
        for query in plan.ocsp {
            if case .failure(let refusal) = policy.target(query.url) {
                reasons.append("OCSP \(query.url): not fetched: \(refusal)")
            } else if let failure = cache.failure(query.key) {
                reasons.append("OCSP \(query.url): \(failure.error)")
            }
        }
        for url in plan.distributionPoints {
            if case .failure(let refusal) = policy.target(url) {
                reasons.append("\(url): not fetched: \(refusal)")
            } else if let failure = cache.failure(url) {
                reasons.append("\(url): \(failure.error)")
            } else if let item = cache.item(url), case .crl(let crl) = item.value, crl.isIssued(by: link.issuer.pointer),
                let next = crl.nextUpdate
            {
                reasons.append("\(url): the list expired on \(VerdictReason.day(next)), past the grace period")
            } else if cache.isInFlight(url) {
                reasons.append("\(url): no answer within the time allowed")
            } else {
                reasons.append("\(url): no usable list")
            }
        }
        if reasons.isEmpty { reasons.append("no current revocation list for \(link.subject)") }
        return reasons.joined(separator: "; ")
    }

    // MARK: CRLs

    /// A CRL from the issuer that covers the link, current or within grace (with when it went
    /// stale), local ones first.
    private func usableCRL(for link: Link, plan: Plan) -> (CRLHandle, Date?)? {
        var candidates = localCRLs.filter { $0.isIssued(by: link.issuer.pointer) }
        for url in plan.distributionPoints {
            if let item = cache.item(url), case .crl(let crl) = item.value, crl.isIssued(by: link.issuer.pointer) {
                candidates.append(crl)
            }
        }
        let now = Date()
        var stale: (CRLHandle, Date?)?
        for crl in candidates {
            if let this = crl.thisUpdate, this > now.addingTimeInterval(300) { continue }
            guard let next = crl.nextUpdate, next < now else { return (crl, nil) }
            if next.addingTimeInterval(grace) >= now, stale == nil { stale = (crl, next) }
        }
        return stale
    }

    /// A fetched CRL past its nextUpdate is fetched again (the stale one serves meanwhile).
    private func needsRefresh(_ plan: Plan) -> Bool {
        plan.distributionPoints.contains { url in
            guard let item = cache.item(url), let until = item.validUntil else { return false }
            return until < Date()
        }
    }

    private func crlSettled(_ plan: Plan) -> Bool {
        plan.distributionPoints.allSatisfy { !cache.isInFlight($0) }
    }

    private func startCRL(_ url: String, link: Link) {
        cache.start(
            url, url: url, policy: policy, allowance: allowance,
            FetchCache.crlDownload(
                url, issuer: link.issuer, timeout: Self.downloadTimeout(budget), maximumBytes: maximumBytes))
    }

    /// Downloads go on after a message stops waiting, so that the next message finds them;
    /// they still end, so that a silent server holds one thread per URL at most for this long.
    static func downloadTimeout(_ budget: TimeInterval) -> Int {
        max(Int(budget) * 3, 15)
    }

    // MARK: OCSP

    private func ocspAnswer(_ plan: Plan) -> OCSPAnswer? {
        for query in plan.ocsp {
            if let item = cache.item(query.key), case .ocsp(let answer) = item.value, answer.isCurrent {
                return answer
            }
        }
        return nil
    }

    private func ocspSettled(_ plan: Plan) -> Bool {
        plan.ocsp.allSatisfy { !cache.isInFlight($0.key) }
    }

    private func startOCSP(_ query: OCSPRequest, verify: @escaping @Sendable (OCSPRequest, [UInt8]) throws -> OCSPAnswer) {
        if let item = cache.item(query.key), case .ocsp(let answer) = item.value, answer.isCurrent { return }
        let maximumBytes = maximumBytes
        let timeout = Self.downloadTimeout(budget)
        cache.start(query.key, url: query.url, policy: policy, allowance: allowance, refresh: false) { target in
            let bytes = try HTTPFetch.post(
                target, body: query.der, contentType: "application/ocsp-request", timeout: timeout,
                maximumBytes: maximumBytes)
            let answer = try verify(query, bytes)
            return FetchCache.Item(
                value: .ocsp(answer), bytes: bytes, fetchedAt: Date(), validUntil: answer.nextUpdate, persist: false)
        }
    }

    // MARK: where a certificate says to look

    /// Addresses of one kind looked at per certificate; a certificate that names more is
    /// someone else's experiment, not a CA's.
    static let maximumURLs = 4

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
            urls += httpURIs(fullName)
        }
        return Array(urls.prefix(maximumURLs))
    }

    static func ocspURLs(_ certificate: OpaquePointer) -> [String] {
        accessURLs(certificate, method: NID_ad_OCSP)
    }

    static func caIssuerURLs(_ certificate: OpaquePointer) -> [String] {
        accessURLs(certificate, method: NID_ad_ca_issuers)
    }

    /// The http:// addresses of one access method in the authority information access extension.
    private static func accessURLs(_ certificate: OpaquePointer, method: Int32) -> [String] {
        guard let raw = X509_get_ext_d2i(certificate, NID_info_access, nil, nil) else { return [] }
        let access = OpaquePointer(raw)
        defer { AUTHORITY_INFO_ACCESS_free(access) }
        var urls: [String] = []
        for index in 0..<OPENSSL_sk_num(access) {
            guard let descriptionRaw = OPENSSL_sk_value(access, index) else { continue }
            let description = descriptionRaw.assumingMemoryBound(to: ACCESS_DESCRIPTION.self)
            guard OBJ_obj2nid(description.pointee.method) == method, let location = description.pointee.location,
                let uri = httpURI(location)
            else { continue }
            urls.append(uri)
        }
        return Array(urls.prefix(maximumURLs))
    }

    private static func httpURIs(_ names: OpaquePointer) -> [String] {
        (0..<OPENSSL_sk_num(names)).compactMap { index in
            OPENSSL_sk_value(names, index).flatMap { httpURI($0.assumingMemoryBound(to: GENERAL_NAME.self)) }
        }
    }

    /// A general name's URI when it is an http:// address (the only scheme fetched).
    private static func httpURI(_ name: UnsafeMutablePointer<GENERAL_NAME>) -> String? {
        guard name.pointee.type == GEN_URI, let uri = Certificate.utf8(name.pointee.d.uniformResourceIdentifier),
            uri.hasPrefix("http://")
        else { return nil }
        return uri
    }
}

// MARK: - OCSP

/// One OCSP request (RFC 6960) for a link: its DER with a nonce, and what identifies the answer.
struct OCSPRequest: @unchecked Sendable {
    // @unchecked: the request and ID are built here and only read afterwards.
    let url: String
    let der: [UInt8]
    let link: Revocation.Link
    /// The cache key: responder and certificate ID.
    let key: String
    let request: OCSPRequestHandle

    init(link: Revocation.Link, url: String) throws {
        self.url = url
        self.link = link
        guard let request = OCSP_REQUEST_new() else { throw SMIMEError.drain("OCSP_REQUEST_new") }
        self.request = OCSPRequestHandle(request)
        guard let id = OCSP_cert_to_id(nil, link.certificate.pointer, link.issuer.pointer) else {
            throw SMIMEError.drain("making an OCSP certificate ID")
        }
        // add0 takes the ID only on success.
        guard OCSP_request_add0_id(request, id) != nil else {
            OCSP_CERTID_free(id)
            throw SMIMEError.drain("adding the certificate to the OCSP request")
        }
        _ = OCSP_request_add1_nonce(request, nil, -1)
        var out: UnsafeMutablePointer<UInt8>?
        let length = i2d_OCSP_REQUEST(request, &out)
        guard length > 0, let out else { throw SMIMEError.drain("encoding the OCSP request") }
        der = Array(UnsafeBufferPointer(start: out, count: Int(length)))
        CRYPTO_free(out, #fileID, #line)
        let serial = (try? Certificate(link.certificate.pointer).serial) ?? ""
        key = "ocsp \(url) " + Certificate.text(X509_get_issuer_name(link.certificate.pointer)) + " " + serial
    }
}

/// Owns an `OCSP_REQUEST` (kept for the nonce check of the answer).
final class OCSPRequestHandle: @unchecked Sendable {
    // @unchecked: built, then only read (for the nonce check).
    let pointer: OpaquePointer
    init(_ pointer: OpaquePointer) { self.pointer = pointer }
    deinit { OCSP_REQUEST_free(pointer) }
}

/// A verified OCSP answer for one certificate.
struct OCSPAnswer {
    enum Status {
        case good
        case revoked(Date)
    }

    let status: Status
    let thisUpdate: Date
    let nextUpdate: Date?

    /// Current until nextUpdate; an answer without one is kept five minutes.
    var isCurrent: Bool {
        (nextUpdate ?? thisUpdate.addingTimeInterval(300)) > Date()
    }
}
