public import Foundation

/// Why a verdict is what it is, as a value: written in English for the log and
/// `Authentication-Results`, and in the recipients' language in the readable header. Technical
/// details (addresses, OpenSSL's words, URLs) are carried as they are.
public enum VerdictReason: Sendable, Equatable, Codable {
    case notSigned
    case verificationOff
    case malformedMessage(signed: Bool, detail: String)
    case notCMS
    case notSignedData
    case noSigner
    case noContent
    case altered
    case badSignature
    case signerCertificateMissing
    case unprocessable(String)
    case unreadableCertificate
    case revoked(subject: String, since: Date?, byOCSP: Bool)
    case revocationUnknown(String)
    case untrusted(String)
    case outsideValidity(expired: Bool, detail: String)
    case certificateNotAcceptable(String)
    case keyUsage
    case extendedKeyUsage
    case signedOutsideValidity(Date)
    case signingTimeSkew(minutes: Int, allowed: Int)
    /// The message signature was made with SHA-1 (its digest or its signature algorithm) and
    /// `AllowSHA1Signatures` is no.
    case sha1Signature
    case addressMismatch(certificate: [String], from: String)
    case noAuthor
    /// What a pass did not check, or checked against stale data.
    case notes(String)

    /// The languages of the readable header.
    public enum Language: String, Sendable, CaseIterable {
        case en, vi
    }

    public func text(_ language: Language) -> String {
        language == .vi ? vietnamese : english
    }

    public var english: String {
        switch self {
        case .notSigned: "the message is not signed"
        case .verificationOff: "verification is off"
        case .malformedMessage(let signed, let detail): "malformed \(signed ? "signed " : "")message: \(detail)"
        case .notCMS: "the signature is not a valid CMS structure"
        case .notSignedData: "the CMS structure is not SignedData"
        case .noSigner: "the SignedData has no signer"
        case .noContent: "the signature carries no content and none is detached"
        case .altered: "the content does not match the signed digest (altered in transit)"
        case .badSignature: "the signature does not verify"
        case .signerCertificateMissing: "the signer's certificate is not in the message"
        case .unprocessable(let detail): "the signature could not be processed: \(detail)"
        case .unreadableCertificate: "the signer's certificate cannot be read"
        case .revoked(let subject, let since, let byOCSP):
            byOCSP
                ? "certificate revoked (OCSP, since \(Self.day(since))) (\(subject))"
                : "certificate revoked" + (since.map { " since \(Self.day($0))" } ?? "") + " (\(subject))"
        case .revocationUnknown(let detail): "revocation status unknown: \(detail)"
        case .untrusted(let detail): "not issued by a trusted CA: \(detail)"
        case .outsideValidity(_, let detail): detail
        case .certificateNotAcceptable(let detail): "certificate not acceptable: \(detail)"
        case .keyUsage: "the certificate's key usage allows neither digitalSignature nor nonRepudiation"
        case .extendedKeyUsage: "the certificate's extended key usage does not include emailProtection"
        case .signedOutsideValidity(let time): "signed at \(time) outside the certificate's validity"
        case .signingTimeSkew(let minutes, let allowed):
            "the signing time is \(minutes) minutes from the message's Date header (more than \(allowed) allowed)"
        case .sha1Signature: "SHA-1 is no longer accepted for signatures"
        case .addressMismatch(let certificate, let from):
            "the signer's address (\(certificate.isEmpty ? "none" : certificate.joined(separator: ", "))) is not the From address \(from)"
        case .noAuthor: "the message has no From address (or several and no Sender) to compare with the signer's"
        case .notes(let text): text
        }
    }

    /// For the province's civil servants: plain Vietnamese, the technical detail after it.
    public var vietnamese: String {
        switch self {
        case .notSigned: "thư không có chữ ký số"
        case .verificationOff: "chức năng kiểm tra chữ ký số đang tắt"
        case .malformedMessage(_, let detail): "thư sai định dạng, không kiểm tra được chữ ký (\(detail))"
        case .notCMS, .notSignedData: "chữ ký số sai cấu trúc, không đọc được"
        case .noSigner: "chữ ký số không có thông tin người ký"
        case .noContent: "chữ ký số không kèm nội dung được ký"
        case .altered: "nội dung thư đã bị thay đổi sau khi ký"
        case .badSignature: "chữ ký số không khớp với chứng thư của người ký"
        case .signerCertificateMissing: "thư không kèm chứng thư số của người ký"
        case .unprocessable(let detail): "không xử lý được chữ ký số (\(detail))"
        case .unreadableCertificate: "không đọc được chứng thư số của người ký"
        case .revoked(let subject, let since, let byOCSP):
            "chứng thư số đã bị thu hồi" + (since.map { " từ ngày \(Self.vietnameseDay($0))" } ?? "")
                + (byOCSP ? " (theo dịch vụ OCSP)" : "") + " (\(subject))"
        case .revocationUnknown(let detail):
            "tạm thời chưa kiểm tra được chứng thư số có bị thu hồi hay không; thư vẫn được chuyển (\(detail))"
        case .untrusted: "chữ ký số đúng nhưng chứng thư không do tổ chức chứng thực được tin cậy cấp"
        case .outsideValidity(let expired, let detail):
            (expired ? "chứng thư số đã hết hạn" : "chứng thư số chưa đến ngày có hiệu lực") + " (\(detail))"
        case .certificateNotAcceptable(let detail): "chứng thư số không được chấp nhận (\(detail))"
        case .keyUsage: "chứng thư số không được phép dùng để ký"
        case .extendedKeyUsage: "chứng thư số không được phép dùng cho thư điện tử"
        case .signedOutsideValidity(let time):
            "thời điểm ký (\(Self.vietnameseDay(time))) nằm ngoài thời hạn của chứng thư số"
        case .signingTimeSkew(let minutes, let allowed):
            "thời điểm ký lệch \(minutes) phút so với ngày gửi ghi trên thư (chỉ cho phép \(allowed) phút)"
        case .sha1Signature: "chữ ký số dùng thuật toán SHA-1, không còn được chấp nhận"
        case .addressMismatch(let certificate, let from):
            "địa chỉ thư trong chứng thư số (\(certificate.isEmpty ? "không có" : certificate.joined(separator: ", "))) "
                + "không phải địa chỉ người gửi \(from)"
        case .noAuthor: "thư không ghi rõ một địa chỉ người gửi để đối chiếu với người ký"
        case .notes(let text): "lưu ý: \(text)"
        }
    }

    static func day(_ date: Date?) -> String {
        date.map(DateText.day) ?? "?"
    }

    /// dd/MM/yyyy, as dates are written in Vietnam.
    static func vietnameseDay(_ date: Date) -> String {
        DateText.vietnameseDay(date)
    }
}
