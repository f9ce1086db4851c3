internal import COpenSSL
public import Foundation

/// An X.509 certificate as plain values: what the headers, the logs and `smime-milter tokens`
/// show of a signer. Parsed once by OpenSSL; the DER is kept for building chains.
public struct Certificate: Sendable, Equatable {
    public let der: [UInt8]
    /// The subject in RFC 2253 order and syntax, UTF-8 (Vietnamese names unescaped).
    public let subject: String
    public let issuer: String
    public let commonName: String?
    public let organization: String?
    /// rfc822Name entries of subjectAltName first, then any emailAddress in the subject.
    public let emailAddresses: [String]
    /// The serial number in lower-case hexadecimal without leading zeros.
    public let serial: String
    public let notBefore: Date
    public let notAfter: Date

    public init(der: [UInt8]) throws {
        let certificate = try X509Handle(der: der)
        self = try withExtendedLifetime(certificate) { try Certificate(certificate.pointer) }
    }

    /// Every certificate in a PEM file, in order.
    public static func load(pemFile path: String) throws -> [Certificate] {
        try X509Handle.load(pemFile: path).map { try Certificate($0.pointer) }
    }

    init(_ x509: OpaquePointer) throws {
        var der: UnsafeMutablePointer<UInt8>?
        let length = i2d_X509(x509, &der)
        guard length > 0, let der else { throw SMIMEError.drain("encoding the certificate") }
        self.der = Array(UnsafeBufferPointer(start: der, count: Int(length)))
        CRYPTO_free(der, nil, 0)
        subject = Self.text(X509_get_subject_name(x509))
        issuer = Self.text(X509_get_issuer_name(x509))
        commonName = Self.entry(X509_get_subject_name(x509), NID_commonName)
        organization = Self.entry(X509_get_subject_name(x509), NID_organizationName)
        emailAddresses = Self.emails(x509)
        serial = Self.serial(X509_get_serialNumber(x509))
        notBefore = Self.date(X509_get0_notBefore(x509))
        notAfter = Self.date(X509_get0_notAfter(x509))
    }

    // MARK: reading fields

    /// RFC 2253 with UTF-8 left as it is (no \XX escapes for non-ASCII).
    static func text(_ name: OpaquePointer?) -> String {
        guard let name, let bio = BIO_new(BIO_s_mem()) else { return "" }
        defer { BIO_free(bio) }
        // XN_FLAG_RFC2253 without ASN1_STRFLGS_ESC_MSB (the macro itself is too complex to import).
        let strings = UInt(ASN1_STRFLGS_ESC_2253 | ASN1_STRFLGS_ESC_CTRL | ASN1_STRFLGS_UTF8_CONVERT)
            | UInt(ASN1_STRFLGS_DUMP_UNKNOWN | ASN1_STRFLGS_DUMP_DER)
        let flags = strings | UInt(XN_FLAG_SEP_COMMA_PLUS) | UInt(XN_FLAG_DN_REV) | UInt(XN_FLAG_DUMP_UNKNOWN_FIELDS)
        X509_NAME_print_ex(bio, name, 0, flags)
        return OpenSSLBIO.string(bio)
    }

    static func entry(_ name: OpaquePointer?, _ nid: Int32) -> String? {
        guard let name else { return nil }
        let index = X509_NAME_get_index_by_NID(name, nid, -1)
        guard index >= 0, let entry = X509_NAME_get_entry(name, index) else { return nil }
        return utf8(X509_NAME_ENTRY_get_data(entry))
    }

    static func utf8(_ string: UnsafePointer<ASN1_STRING>?) -> String? {
        guard let string else { return nil }
        var out: UnsafeMutablePointer<UInt8>?
        let length = ASN1_STRING_to_UTF8(&out, string)
        guard length >= 0, let out else { return nil }
        defer { CRYPTO_free(out, nil, 0) }
        return String(decoding: UnsafeBufferPointer(start: out, count: Int(length)), as: UTF8.self)
    }

    static func emails(_ x509: OpaquePointer) -> [String] {
        var result: [String] = []
        if let names = X509_get_ext_d2i(x509, NID_subject_alt_name, nil, nil) {
            let stack = OpaquePointer(names)
            defer { GENERAL_NAMES_free(stack) }
            for index in 0..<OPENSSL_sk_num(stack) {
                guard let raw = OPENSSL_sk_value(stack, index) else { continue }
                let name = raw.assumingMemoryBound(to: GENERAL_NAME.self)
                if name.pointee.type == GEN_EMAIL, let email = utf8(name.pointee.d.rfc822Name) {
                    result.append(email)
                }
            }
        }
        if let subjectEmail = entry(X509_get_subject_name(x509), NID_pkcs9_emailAddress),
            !result.contains(where: { $0.caseInsensitiveCompare(subjectEmail) == .orderedSame })
        {
            result.append(subjectEmail)
        }
        return result
    }

    static func serial(_ integer: UnsafePointer<ASN1_INTEGER>?) -> String {
        guard let integer, let bignum = ASN1_INTEGER_to_BN(integer, nil) else { return "" }
        defer { BN_free(bignum) }
        guard let hex = BN_bn2hex(bignum) else { return "" }
        defer { CRYPTO_free(hex, nil, 0) }
        let text = String(cString: hex).lowercased()
        let trimmed = text.drop(while: { $0 == "0" })
        return trimmed.isEmpty ? "0" : String(trimmed)
    }

    static func date(_ time: UnsafePointer<ASN1_TIME>?) -> Date {
        var parts = tm()
        guard let time, ASN1_TIME_to_tm(time, &parts) == 1 else { return .distantPast }
        return Date(timeIntervalSince1970: TimeInterval(timegm(&parts)))
    }
}

/// The one owner of an OpenSSL `X509`.
/// The one owner of a reference to an OpenSSL `X509`. Sendable: a parsed certificate is not
/// changed after parsing, and OpenSSL counts its references atomically.
final class X509Handle: @unchecked Sendable {
    let pointer: OpaquePointer

    init(takingOwnershipOf pointer: OpaquePointer) {
        self.pointer = pointer
    }

    /// Takes a reference of its own to a certificate someone else owns.
    init(retaining pointer: OpaquePointer) {
        X509_up_ref(pointer)
        self.pointer = pointer
    }

    convenience init(der: [UInt8]) throws {
        let parsed = der.withUnsafeBufferPointer { buffer -> OpaquePointer? in
            var cursor = buffer.baseAddress
            return d2i_X509(nil, &cursor, buffer.count)
        }
        guard let parsed else {
            throw SMIMEError.drain("parsing a DER certificate", code: .certificate, hint: "the token or file holds no valid X.509 certificate")
        }
        self.init(takingOwnershipOf: parsed)
    }

    static func load(pemFile path: String) throws -> [X509Handle] {
        guard let bio = BIO_new_file(path, "r") else {
            throw SMIMEError.drain("opening certificate file \(path)", code: .file, hint: "check the path and permissions")
        }
        defer { BIO_free(bio) }
        var result: [X509Handle] = []
        while let x509 = PEM_read_bio_X509(bio, nil, nil, nil) {
            result.append(X509Handle(takingOwnershipOf: x509))
        }
        ERR_clear_error()  // the loop ends on an expected "no start line"
        if result.isEmpty {
            throw SMIMEError("reading certificate file \(path)", code: .certificate, hint: "it contains no PEM CERTIFICATE block")
        }
        return result
    }

    deinit { X509_free(pointer) }
}

enum OpenSSLBIO {
    /// Everything written to a memory BIO, as UTF-8 text.
    static func string(_ bio: OpaquePointer) -> String {
        String(decoding: bytes(bio), as: UTF8.self)
    }

    static func bytes(_ bio: OpaquePointer) -> [UInt8] {
        var pointer: UnsafeMutablePointer<CChar>?
        let length = BIO_ctrl(bio, BIO_CTRL_INFO, 0, &pointer)
        guard length > 0, let pointer else { return [] }
        return Array(UnsafeRawBufferPointer(start: pointer, count: Int(length)))
    }
}
