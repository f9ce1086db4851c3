internal import CP11Kit
import Foundation

/// An RFC 7512 `pkcs11:` URI, parsed by p11-kit and held as plain Swift values.
///
/// `pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:/etc/smime-milter/pins/stttt`
public struct PKCS11URI: Sendable, Equatable, CustomStringConvertible {
    /// The object classes a URI can name with `type=`.
    public enum ObjectType: String, Sendable {
        case privateKey = "private"
        case publicKey = "public"
        case certificate = "cert"
        case secretKey = "secret-key"
        case data
    }

    public var token: String?
    public var manufacturer: String?
    public var model: String?
    public var serial: String?
    public var object: String?
    public var id: [UInt8]?
    public var type: ObjectType?
    public var pinSource: String?
    public var pinValue: String?
    public var moduleName: String?
    public var modulePath: String?

    public init(
        token: String? = nil, manufacturer: String? = nil, model: String? = nil, serial: String? = nil,
        object: String? = nil, id: [UInt8]? = nil, type: ObjectType? = nil, pinSource: String? = nil,
        pinValue: String? = nil, moduleName: String? = nil, modulePath: String? = nil
    ) {
        self.token = token
        self.manufacturer = manufacturer
        self.model = model
        self.serial = serial
        self.object = object
        self.id = id
        self.type = type
        self.pinSource = pinSource
        self.pinValue = pinValue
        self.moduleName = moduleName
        self.modulePath = modulePath
    }

    /// Parses `text` with p11-kit's own parser.
    public init(parsing text: String) throws {
        guard text.lowercased().hasPrefix("pkcs11:") else {
            throw TokenError(
                .uri, operation: "parsing the key URI",
                detail: "'\(Self.redacted(text))' is not a pkcs11: URI; write it as pkcs11:token=LABEL;object=LABEL")
        }
        guard let uri = p11_kit_uri_new() else {
            throw TokenError(.uri, operation: "parsing the key URI", detail: "out of memory")
        }
        defer { p11_kit_uri_free(uri) }
        let rc = p11_kit_uri_parse(text, P11_KIT_URI_FOR_ANY, uri)
        guard rc == Int32(P11_KIT_URI_OK.rawValue) else {
            let reason =
                switch rc {
                case Int32(P11_KIT_URI_BAD_ENCODING.rawValue): "a %-escape is malformed"
                case Int32(P11_KIT_URI_BAD_SYNTAX.rawValue): "an attribute is malformed or unknown"
                case Int32(P11_KIT_URI_BAD_VERSION.rawValue): "the library-version is malformed"
                default: "it does not follow RFC 7512"
                }
            throw TokenError(
                .uri, operation: "parsing the key URI",
                detail: "'\(Self.redacted(text))' is not a valid pkcs11: URI: \(reason)")
        }
        if let info = p11_kit_uri_get_token_info(uri) {
            token = Self.paddedString(&info.pointee.label)
            manufacturer = Self.paddedString(&info.pointee.manufacturerID)
            model = Self.paddedString(&info.pointee.model)
            serial = Self.paddedString(&info.pointee.serialNumber)
        }
        if let attribute = p11_kit_uri_get_attribute(uri, CK_ATTRIBUTE_TYPE(CKA_LABEL)) {
            object = String(decoding: Self.bytes(attribute.pointee), as: UTF8.self)
        }
        if let attribute = p11_kit_uri_get_attribute(uri, CK_ATTRIBUTE_TYPE(CKA_ID)) {
            id = Self.bytes(attribute.pointee)
        }
        if let attribute = p11_kit_uri_get_attribute(uri, CK_ATTRIBUTE_TYPE(CKA_CLASS)),
            attribute.pointee.ulValueLen == CK_ULONG(MemoryLayout<CK_OBJECT_CLASS>.size),
            let value = attribute.pointee.pValue
        {
            let objectClass = value.load(as: CK_OBJECT_CLASS.self)
            type =
                switch objectClass {
                case CK_OBJECT_CLASS(CKO_PRIVATE_KEY): .privateKey
                case CK_OBJECT_CLASS(CKO_PUBLIC_KEY): .publicKey
                case CK_OBJECT_CLASS(CKO_CERTIFICATE): .certificate
                case CK_OBJECT_CLASS(CKO_SECRET_KEY): .secretKey
                case CK_OBJECT_CLASS(CKO_DATA): .data
                default: nil
                }
        }
        if type == nil, let value = Self.pathAttribute("type", in: text) {
            // p11-kit ignores a type it does not know; a key URI that names one is a mistake.
            throw TokenError(
                .uri, operation: "parsing the key URI",
                detail: "'\(Self.redacted(text))' has type=\(value); use private, public, cert, secret-key or data")
        }
        pinSource = p11_kit_uri_get_pin_source(uri).map { String(cString: $0) }
        pinValue = p11_kit_uri_get_pin_value(uri).map { String(cString: $0) }
        moduleName = p11_kit_uri_get_module_name(uri).map { String(cString: $0) }
        modulePath = p11_kit_uri_get_module_path(uri).map { String(cString: $0) }
    }

    /// The URI in RFC 7512 form. A `pin-value` is never written out.
    public var description: String {
        var path: [String] = []
        func add(_ name: String, _ value: String?) {
            if let value { path.append("\(name)=\(Self.escape(value))") }
        }
        add("token", token)
        add("manufacturer", manufacturer)
        add("model", model)
        add("serial", serial)
        add("object", object)
        if let id { path.append("id=" + id.map { String(format: "%%%02x", $0) }.joined()) }
        add("type", type?.rawValue)
        var query: [String] = []
        if let pinSource { query.append("pin-source=\(Self.escape(pinSource))") }
        if let moduleName { query.append("module-name=\(Self.escape(moduleName))") }
        if let modulePath { query.append("module-path=\(Self.escape(modulePath))") }
        return "pkcs11:" + path.joined(separator: ";") + (query.isEmpty ? "" : "?" + query.joined(separator: "&"))
    }

    // MARK: helpers

    /// The raw value of a path attribute (before the query), if present.
    static func pathAttribute(_ name: String, in text: String) -> String? {
        let path = text.dropFirst("pkcs11:".count).prefix(while: { $0 != "?" })
        for part in path.split(separator: ";") where part.hasPrefix(name + "=") {
            return String(part.dropFirst(name.count + 1))
        }
        return nil
    }

    /// A URI as it may appear in a log or error: any pin-value is replaced.
    static func redacted(_ text: String) -> String {
        guard let range = text.range(of: "pin-value=", options: .caseInsensitive) else { return text }
        let tail = text[range.upperBound...]
        let end = tail.firstIndex(where: { $0 == "&" || $0 == ";" }) ?? text.endIndex
        return text[..<range.upperBound] + "REDACTED" + text[end...]
    }

    private static let unescaped = CharacterSet(
        charactersIn: "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~:[]@!$'()*+,/")

    static func escape(_ value: String) -> String {
        value.addingPercentEncoding(withAllowedCharacters: unescaped) ?? value
    }

    /// PKCS#11 string fields are fixed length, padded with spaces; p11-kit leaves unset ones zeroed.
    static func paddedString<T>(_ field: inout T) -> String? {
        let bytes = withUnsafeBytes(of: &field) { Array($0) }
        if bytes.allSatisfy({ $0 == 0 }) { return nil }
        var end = bytes.count
        while end > 0 && (bytes[end - 1] == 0x20 || bytes[end - 1] == 0) { end -= 1 }
        return String(decoding: bytes[..<end], as: UTF8.self)
    }

    static func bytes(_ attribute: CK_ATTRIBUTE) -> [UInt8] {
        guard let value = attribute.pValue, attribute.ulValueLen > 0, attribute.ulValueLen != CK_ULONG.max else {
            return []
        }
        return Array(UnsafeRawBufferPointer(start: value, count: Int(attribute.ulValueLen)))
    }
}
