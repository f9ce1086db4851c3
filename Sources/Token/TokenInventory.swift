internal import CP11Kit
import Foundation

/// What the PKCS#11 modules offer: modules, slots, tokens and the keys and certificates on each,
/// for `smime-milter tokens`.
public enum TokenInventory {
    public struct Module: Sendable {
        public let name: String
        public let path: String?
        public let slots: [Slot]
        /// Set when the module loaded but listing failed.
        public let error: String?
    }

    public struct Slot: Sendable {
        public let id: UInt
        public let tokenLabel: String
        public let manufacturer: String?
        public let model: String?
        public let serial: String?
        public let loginRequired: Bool
        /// The user PIN's state: the token's flags, or a refusal smime-milter keeps.
        public let pinState: TokenPINState
        public let objects: [Object]
        /// Set when the slot could be seen but not listed (for instance a PIN was refused).
        public let error: String?

        /// The URI of the token itself.
        public var uri: PKCS11URI {
            PKCS11URI(token: tokenLabel, manufacturer: manufacturer, model: model, serial: serial)
        }
    }

    public struct Object: Sendable {
        public enum Kind: String, Sendable {
            case privateKey = "private key"
            case publicKey = "public key"
            case certificate
        }

        public let kind: Kind
        public let label: String?
        public let id: [UInt8]
        /// Key type and size, for keys.
        public let keyType: KeyType?
        /// The DER certificate, for certificates.
        public let certificate: [UInt8]?
    }

    /// Lists every module (the registered ones, or the one at `modulePath`) and what is on its
    /// tokens. With a PIN for a token (by label), logs in so that private keys show too; that
    /// login goes through `pinGuard` like the daemon's.
    public static func list(modulePath: String?, pins: [String: PINSource] = [:], pinGuard: PINGuard)
        throws -> [Module]
    {
        let modules = try modulePath.map { [try PKCS11Module.load(path: $0)] } ?? PKCS11Module.registered()
        return modules.map { module in
            do {
                let slots = try module.slots().compactMap {
                    try slot(module: module, id: $0, pins: pins, pinGuard: pinGuard)
                }
                return Module(name: module.name, path: module.path, slots: slots, error: nil)
            } catch {
                return Module(name: module.name, path: module.path, slots: [], error: "\(error)")
            }
        }
    }

    /// One slot and its objects; nil for a slot whose token is not initialised (SoftHSM always
    /// offers one such spare slot).
    private static func slot(module: PKCS11Module, id: CK_SLOT_ID, pins: [String: PINSource], pinGuard: PINGuard)
        throws -> Slot?
    {
        var info = try module.tokenInfo(slot: id)
        guard info.flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0 else { return nil }
        let label = PKCS11URI.paddedString(&info.label) ?? ""
        let identity = TokenIdentity(label: label, serial: PKCS11URI.paddedString(&info.serialNumber) ?? "")
        let session = try module.openSession(slot: id)
        defer { module.closeSession(session) }
        var failure: String?
        if let pin = pins[label], !module.isLoggedIn(session: session) {
            do {
                try pinGuard.logIn(token: identity, flags: UInt(info.flags), pin: pin) { bytes in
                    try module.login(session: session, pin: bytes, token: label)
                }
            } catch {
                failure = "\(error)"
            }
        }
        var objects: [Object] = []
        for (kind, objectClass) in [
            (Object.Kind.privateKey, CKO_PRIVATE_KEY), (.publicKey, CKO_PUBLIC_KEY), (.certificate, CKO_CERTIFICATE),
        ] {
            var template = AttributeTemplate()
            template.add(CKA_CLASS, ulong: UInt(objectClass))
            for handle in try module.findObjects(session: session, template, limit: 256) {
                let label = try module.attribute(session: session, object: handle, CKA_LABEL).map {
                    String(decoding: $0, as: UTF8.self)
                }
                let id = try module.attribute(session: session, object: handle, CKA_ID) ?? []
                var keyType: KeyType?
                var certificate: [UInt8]?
                if kind == .certificate {
                    certificate = try module.attribute(session: session, object: handle, CKA_VALUE)
                } else {
                    keyType = try keyTypeOf(module: module, session: session, key: handle)
                }
                objects.append(Object(kind: kind, label: label, id: id, keyType: keyType, certificate: certificate))
            }
        }
        return Slot(
            id: UInt(id), tokenLabel: label, manufacturer: PKCS11URI.paddedString(&info.manufacturerID),
            model: PKCS11URI.paddedString(&info.model), serial: PKCS11URI.paddedString(&info.serialNumber),
            loginRequired: info.flags & CK_FLAGS(CKF_LOGIN_REQUIRED) != 0,
            pinState: pinGuard.state(of: identity, flags: UInt((try? module.tokenInfo(slot: id).flags) ?? info.flags)),
            objects: objects, error: failure)
    }

    static func keyTypeOf(module: PKCS11Module, session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE) throws -> KeyType {
        let type = try module.ulongAttribute(session: session, object: key, CKA_KEY_TYPE) ?? UInt.max
        switch type {
        case UInt(CKK_RSA):
            let modulus = try module.attribute(session: session, object: key, CKA_MODULUS) ?? []
            return .rsa(bits: modulus.drop(while: { $0 == 0 }).count * 8)
        case UInt(CKK_EC):
            let params = try module.attribute(session: session, object: key, CKA_EC_PARAMS) ?? []
            let (curve, bits) = KeyType.curve(ecParams: params)
            return .ec(curve: curve, bits: bits)
        default:
            return .other(type)
        }
    }
}
