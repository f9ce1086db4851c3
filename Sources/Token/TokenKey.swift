internal import CP11Kit
public import Foundation
public import Logging

/// A private key on a PKCS#11 token, found by its `pkcs11:` URI, with the certificate stored
/// beside it (same `CKA_ID`) and a pool of logged-in sessions for signing from many threads.
///
/// The key never leaves the token: `sign` sends the bytes to sign (or their hash) to the token
/// and returns the signature. When the session or the token goes away (the return values of
/// `TokenError.isRecoverable`), the token is found again by its URI, logged in again and the
/// operation retried once.
public final class TokenKey: @unchecked Sendable {
    // @unchecked: the pool's state (binding, idle, open, generation, poolLimit) is read and
    // written only with `condition` held; everything else is immutable after init. The
    // condition stays an NSCondition: the pool waits for a session with a deadline.
    public let uri: PKCS11URI
    public let keyType: KeyType
    /// `CKA_ID` of the key (and of its certificate).
    public let id: [UInt8]
    /// `CKA_LABEL` of the key.
    public let label: String?
    /// The label of the token the key lives on.
    public let tokenLabel: String
    /// What the token's flags said of the user PIN just before this key logged in (`countLow`
    /// means wrong tries were counted, and a good login may have reset them).
    public let pinStateAtLogin: TokenPINState
    /// The DER certificate with the key's `CKA_ID` on the same token, if there is one.
    public let certificate: [UInt8]?
    /// How many sessions at most sign at once: the configured size, lowered to what the token
    /// allows (`ulMaxSessionCount`, or the count at which it answered `CKR_SESSION_COUNT`).
    public var poolSize: Int { condition.lock(); defer { condition.unlock() }; return poolLimit }
    /// How long `sign` waits for a free session before giving up.
    public let waitTimeout: TimeInterval
    /// How often at most the module is restarted to look for a lost token.
    public let moduleRestartInterval: TimeInterval

    private let modulePath: String?
    private let pin: PINSource?
    private let pinGuard: PINGuard
    private let logger: Logger

    // MARK: state guarded by `condition`

    /// Where the key was last found: module, slot and object handle, and a generation that
    /// changes whenever the token is found again.
    struct Binding {
        let module: PKCS11Module
        let slot: CK_SLOT_ID
        let key: CK_OBJECT_HANDLE
        let mechanisms: Set<CK_MECHANISM_TYPE>
        let generation: Int
        /// The module's incarnation the handles belong to.
        let incarnation: Int
    }

    struct Lease {
        let session: CK_SESSION_HANDLE
        let binding: Binding
    }

    private let condition = NSCondition()
    private var binding: Binding?
    private var idle: [CK_SESSION_HANDLE] = []
    private var open = 0
    /// The most sessions ever open at once (for tests of the pool bound).
    private(set) var peakSessions = 1
    private var generation = 0
    private var poolLimit: Int
    /// A signer is finding the token again, outside the lock; the others wait for its answer.
    private var finding = false
    /// Counts attempts at finding the token again; the last failed one and its error.
    private var findAttempt = 0
    private var findFailure: (Int, any Error)?

    /// Finds the key named by `uri`, logs in and reads its certificate.
    ///
    /// - Parameters:
    ///   - modulePath: the module to use when the URI has no `module-path`; nil means every
    ///     module registered with p11-kit.
    ///   - poolSize: sessions signing at once (USB tokens serialise; 2 keeps one ready).
    ///   - waitTimeout: how long a signer waits for a free session.
    ///   - moduleRestartInterval: the least time between two restarts of the module while the
    ///     token is missing (see `PKCS11Module.reinitialize`).
    ///   - lookingAgain: the token was missing at an earlier attempt: if it is still not found,
    ///     restart the module once (within `moduleRestartInterval`) and look again, as recovery does.
    ///   - pinGuard: keeps refused PINs from being presented again (the daemon and the tools give
    ///     the one of the state directory).
    public init(
        uri: PKCS11URI, modulePath: String?, poolSize: Int, waitTimeout: TimeInterval,
        moduleRestartInterval: TimeInterval = 5, lookingAgain: Bool = false, pinGuard: PINGuard,
        logger: Logger = Logger(label: "smime-milter.token")
    ) throws {
        self.moduleRestartInterval = moduleRestartInterval
        self.uri = uri
        self.modulePath = modulePath
        self.poolLimit = max(1, poolSize)
        self.waitTimeout = waitTimeout
        self.pin = try PINSource(uri: uri)
        self.pinGuard = pinGuard
        self.logger = logger
        if uri.type != nil && uri.type != .privateKey {
            throw TokenError(
                .uri, operation: "reading the key URI \(uri)",
                detail: "type=\(uri.type!.rawValue) names no private key; use type=private or leave type out")
        }
        if uri.object == nil && uri.id == nil {
            throw TokenError(
                .uri, operation: "reading the key URI \(uri)",
                detail: "name the key with object=LABEL or id=%XX (smime-milter tokens lists both)")
        }

        let found = try Self.find(
            uri: uri, modulePath: modulePath, pin: pin, pinGuard: pinGuard, generation: lookingAgain ? 1 : 0,
            restartInterval: moduleRestartInterval)
        let module = found.binding.module
        let session = found.session
        let key = found.binding.key
        // Read before anything is stored: a throwing initialiser runs no deinit, so the session
        // must be closed here when a read fails (it would stay open, and the token logged in).
        do {
            id = try module.attribute(session: session, object: key, CKA_ID) ?? []
            label = try module.attribute(session: session, object: key, CKA_LABEL).map {
                String(decoding: $0, as: UTF8.self)
            }
            keyType = try TokenInventory.keyTypeOf(module: module, session: session, key: key)
            certificate = try Self.certificate(module: module, session: session, id: id)
        } catch {
            module.closeSession(session, incarnation: found.binding.incarnation)
            throw error
        }
        tokenLabel = found.tokenLabel
        pinStateAtLogin = found.pinState
        // CK_EFFECTIVELY_INFINITE (0) and CK_UNAVAILABLE_INFORMATION (all ones) set no limit.
        let allowed = (try? module.tokenInfo(slot: found.binding.slot).ulMaxSessionCount) ?? 0
        if allowed != 0 && allowed != CK_ULONG.max && Int(allowed) < poolLimit {
            logger.info(
                "session pool lowered to what the token allows",
                metadata: ["token.label": "\(found.tokenLabel)", "token.max_sessions": "\(allowed)"])
            poolLimit = Int(allowed)
        }
        // This session joins the pool: closing a token's last session would log it out.
        idle = [session]
        open = 1
        binding = found.binding
    }

    /// The schemes this key can sign with on this token, the default first.
    public var schemes: [SignatureScheme] {
        switch keyType {
        case .rsa: [.rsaPKCS1, .rsaPSS]
        case .ec: [.ecdsa]
        case .other: []
        }
    }

    // MARK: signing

    /// Signs `data` (for CMS: the DER of the signed attributes) with `scheme` over `digest`.
    ///
    /// Uses the token's combined mechanism (`CKM_SHA256_RSA_PKCS`, ...) when it has one, else
    /// hashes on the token (`C_Digest`) and signs the hash with the raw mechanism
    /// (`CKM_RSA_PKCS` over a DigestInfo, `CKM_RSA_PKCS_PSS`, `CKM_ECDSA`).
    public func sign(_ data: [UInt8], scheme: SignatureScheme? = nil, digest: DigestAlgorithm = .sha256)
        throws -> [UInt8]
    {
        guard let scheme = scheme ?? keyType.defaultScheme, schemes.contains(scheme) else {
            throw TokenError(
                .unsupported, operation: "signing with \(keyType) key \(label ?? "")",
                detail: "a \(keyType) key cannot sign with \(scheme?.rawValue ?? "any scheme")")
        }
        do {
            return try withSession { lease in try sign(data, scheme: scheme, digest: digest, lease: lease) }
        } catch let error as TokenError where error.isRecoverable {
            logger.warning(
                "token lost, finding it again",
                metadata: ["token.label": "\(tokenLabel)", "token.error": "\(error)"])
            do {
                return try withSession { lease in try sign(data, scheme: scheme, digest: digest, lease: lease) }
            } catch let second as TokenError where second.isRecoverable || second.code == .notFound {
                throw TokenError(
                    .unavailable, operation: "signing with token \(tokenLabel)", returnValue: second.returnValue,
                    detail: "token unavailable after one recovery attempt (\(second.detail))")
            }
        }
    }

    private func sign(_ data: [UInt8], scheme: SignatureScheme, digest: DigestAlgorithm, lease: Lease) throws
        -> [UInt8]
    {
        let module = lease.binding.module
        let mechanisms = lease.binding.mechanisms
        func run(_ mechanism: UInt, _ parameter: [UInt8]?, _ input: [UInt8]) throws -> [UInt8] {
            try module.sign(
                session: lease.session, key: lease.binding.key, mechanism: CK_MECHANISM_TYPE(mechanism),
                parameter: parameter, input, incarnation: lease.binding.incarnation)
        }
        func hashed() throws -> [UInt8] {
            try module.digest(
                session: lease.session, mechanism: digest.digestMechanism, data, incarnation: lease.binding.incarnation)
        }
        switch scheme {
        case .rsaPKCS1:
            let combined: UInt =
                switch digest {
                case .sha256: CKM_SHA256_RSA_PKCS
                case .sha384: CKM_SHA384_RSA_PKCS
                case .sha512: CKM_SHA512_RSA_PKCS
                }
            if mechanisms.contains(CK_MECHANISM_TYPE(combined)) {
                return try run(combined, nil, data)
            }
            return try run(CKM_RSA_PKCS, nil, digest.digestInfoPrefix + hashed())
        case .rsaPSS:
            var parameters = CK_RSA_PKCS_PSS_PARAMS(
                hashAlg: digest.digestMechanism, mgf: digest.mgf, sLen: CK_ULONG(digest.length))
            let parameterBytes = withUnsafeBytes(of: &parameters) { Array($0) }
            let combined: UInt =
                switch digest {
                case .sha256: CKM_SHA256_RSA_PKCS_PSS
                case .sha384: CKM_SHA384_RSA_PKCS_PSS
                case .sha512: CKM_SHA512_RSA_PKCS_PSS
                }
            if mechanisms.contains(CK_MECHANISM_TYPE(combined)) {
                return try run(combined, parameterBytes, data)
            }
            return try run(CKM_RSA_PKCS_PSS, parameterBytes, hashed())
        case .ecdsa:
            let combined: UInt =
                switch digest {
                case .sha256: CKM_ECDSA_SHA256
                case .sha384: CKM_ECDSA_SHA384
                case .sha512: CKM_ECDSA_SHA512
                }
            let raw =
                mechanisms.contains(CK_MECHANISM_TYPE(combined))
                ? try run(combined, nil, data) : try run(CKM_ECDSA, nil, hashed())
            return DER.ecdsaSignature(raw: raw)
        }
    }

    // MARK: the session pool

    /// Runs `body` with a logged-in session, waiting up to `waitTimeout` for one. A session that
    /// failed with a recoverable error is not reused: the token is found again first.
    private func withSession<R>(_ body: (Lease) throws -> R) throws -> R {
        let lease = try acquire()
        do {
            let result = try body(lease)
            release(lease, broken: false)
            return result
        } catch let error as TokenError where error.isRecoverable {
            release(lease, broken: true)
            throw error
        } catch {
            release(lease, broken: false)
            throw error
        }
    }

    /// A logged-in session, waiting up to `waitTimeout` for one. The lock guards the pool's
    /// state only: finding the token again (login, a module restart), opening and closing
    /// sessions all happen with it released, so that a slow or hung token call holds up no
    /// other signer's bookkeeping. One signer finds the token again; the others wait for its
    /// answer (every waiting signer needs the same one).
    func acquire() throws -> Lease {
        let deadline = Date(timeIntervalSinceNow: waitTimeout)
        condition.lock()
        defer { condition.unlock() }
        while true {
            if binding == nil {
                if finding {
                    let attempt = findAttempt
                    while finding && findAttempt == attempt {
                        if !condition.wait(until: deadline) { throw sessionTimeout() }
                    }
                    if binding == nil, let failure = findFailure, failure.0 == attempt { throw failure.1 }
                    continue
                }
                finding = true
                findAttempt += 1
                let attempt = findAttempt
                let generation = generation
                condition.unlock()
                let result = Result { try findAgain(generation: generation) }
                condition.lock()
                finding = false
                condition.broadcast()
                switch result {
                case .success(let found):
                    binding = found.binding
                    idle.append(found.session)
                    open += 1
                    logger.info("token found again", metadata: ["token.label": "\(tokenLabel)"])
                case .failure(let error):
                    findFailure = (attempt, error)
                    throw error
                }
            }
            let current = binding!
            if current.incarnation != current.module.incarnation {
                // Another key on the same module restarted it: every handle here is stale.
                open -= idle.count
                idle.removeAll()
                binding = nil
                generation += 1
                continue
            }
            if let session = idle.popLast() {
                return Lease(session: session, binding: current)
            }
            if open < poolLimit {
                open += 1  // reserved while the session opens outside the lock
                condition.unlock()
                let opened = Result { try current.module.openSession(slot: current.slot) }
                condition.lock()
                switch opened {
                case .success(let session):
                    peakSessions = max(peakSessions, open)
                    return Lease(session: session, binding: current)
                case .failure(let error as TokenError) where error.returnValueName == "CKR_SESSION_COUNT" && open > 1:
                    // Other programs (or other keys) hold the token's other sessions: use the ones
                    // this key has, and wait for them instead of failing a message.
                    open -= 1
                    logger.warning(
                        "the token allows no more sessions; the pool keeps the \(open) it has",
                        metadata: ["token.label": "\(tokenLabel)"])
                    poolLimit = open
                    continue
                case .failure(let error):
                    open -= 1
                    condition.broadcast()
                    throw error
                }
            }
            if !condition.wait(until: deadline) { throw sessionTimeout() }
        }
    }

    private func sessionTimeout() -> TokenError {
        TokenError(
            .timeout, operation: "waiting for a session on token \(tokenLabel)",
            detail: "all \(poolLimit) sessions stayed busy for \(waitTimeout) s; "
                + "raise the pool size or spread the load over more tokens")
    }

    /// Finds the token and key again (login included) and checks that the certificate is the
    /// one this key was made with. Runs without the lock.
    private func findAgain(generation: Int) throws -> Found {
        let found = try Self.find(
            uri: uri, modulePath: modulePath, pin: pin, pinGuard: pinGuard, generation: generation,
            restartInterval: moduleRestartInterval)
        if let certificate {
            let current = try? Self.certificate(module: found.binding.module, session: found.session, id: id)
            guard current == certificate else {
                found.binding.module.closeSession(found.session, incarnation: found.binding.incarnation)
                throw TokenError(
                    .unavailable, operation: "finding token \(tokenLabel) again",
                    detail: "the token came back with a different certificate for this key; "
                        + "reload smime-milter (systemctl reload smime-milter) to use the new one")
            }
        }
        return found
    }

    func release(_ lease: Lease, broken: Bool) {
        var closing: [CK_SESSION_HANDLE] = []
        condition.lock()
        let current = binding?.generation
        if broken && current == lease.binding.generation {
            // The first signer to see the failure drops the binding; sessions of that
            // generation are closed as they come back.
            closing += idle
            open -= idle.count
            idle.removeAll()
            binding = nil
            generation += 1
        }
        if broken || current != lease.binding.generation {
            closing.append(lease.session)
            open -= 1
        } else {
            idle.append(lease.session)
        }
        condition.broadcast()
        condition.unlock()
        // Closed outside the lock: a close is a token call too.
        for session in closing { lease.binding.module.closeSession(session, incarnation: lease.binding.incarnation) }
    }

    // MARK: finding the token and the key

    private struct Found {
        let binding: Binding
        let session: CK_SESSION_HANDLE
        let tokenLabel: String
        var pinState = TokenPINState.ok
    }

    /// Finds the token and key a URI names, in the candidate modules, and returns a logged-in
    /// session on it.
    private static func find(
        uri: PKCS11URI, modulePath: String?, pin: PINSource?, pinGuard: PINGuard, generation: Int,
        restartInterval: TimeInterval = 0
    ) throws -> Found {
        let modules = try PKCS11Module.candidates(for: uri, modulePath: modulePath)
        do {
            return try scan(modules, uri: uri, pin: pin, pinGuard: pinGuard, generation: generation)
        } catch let error as TokenError where error.code == .notFound && generation > 0 {
            // Only when finding a token again: some modules notice a re-inserted (or re-created)
            // token only after a restart of the module.
            let restarted = modules.filter { $0.reinitialize(notWithin: restartInterval) }
            guard !restarted.isEmpty else { throw error }
            return try scan(restarted, uri: uri, pin: pin, pinGuard: pinGuard, generation: generation)
        }
    }

    private static func scan(
        _ modules: [PKCS11Module], uri: PKCS11URI, pin: PINSource?, pinGuard: PINGuard, generation: Int
    ) throws -> Found {
        var seen: [String] = []
        for module in modules {
            for slot in try module.slots() {
                // A slot whose token just went away may fail here; the token may be in another.
                guard var info = try? module.tokenInfo(slot: slot) else { continue }
                guard info.flags & CK_FLAGS(CKF_TOKEN_INITIALIZED) != 0 else { continue }
                let label = PKCS11URI.paddedString(&info.label) ?? ""
                seen.append(label)
                guard matches(uri.token, label), matches(uri.serial, PKCS11URI.paddedString(&info.serialNumber)),
                    matches(uri.manufacturer, PKCS11URI.paddedString(&info.manufacturerID)),
                    matches(uri.model, PKCS11URI.paddedString(&info.model))
                else { continue }

                let incarnation = module.incarnation
                let session = try module.openSession(slot: slot)
                var pinState = TokenPINState(flags: UInt(info.flags))
                do {
                    if (info.flags & CK_FLAGS(CKF_LOGIN_REQUIRED) != 0 || pin != nil)
                        && !module.isLoggedIn(session: session)
                    {
                        guard let pin else {
                            throw TokenError(
                                .pin, operation: "logging in to token \(label)",
                                detail: "the token needs a PIN; add ?pin-source=file:/etc/smime-milter/pins/NAME to the key URI")
                        }
                        let identity = TokenIdentity(
                            label: label, serial: PKCS11URI.paddedString(&info.serialNumber) ?? "")
                        pinState = pinGuard.state(of: identity, flags: UInt(info.flags))
                        try pinGuard.logIn(token: identity, flags: UInt(info.flags), pin: pin) { bytes in
                            try module.login(session: session, pin: bytes, token: label)
                        }
                    }
                    var template = AttributeTemplate()
                    template.add(CKA_CLASS, ulong: UInt(CKO_PRIVATE_KEY))
                    if let object = uri.object { template.add(CKA_LABEL, string: object) }
                    if let id = uri.id { template.add(CKA_ID, bytes: id) }
                    let keys = try module.findObjects(session: session, template)
                    guard let key = keys.first else {
                        throw TokenError(
                            .notFound, operation: "finding the key on token \(label)",
                            detail: "no private key matches \(uri); list the keys with smime-milter tokens")
                    }
                    guard keys.count == 1 else {
                        throw TokenError(
                            .notFound, operation: "finding the key on token \(label)",
                            detail: "\(keys.count) private keys match \(uri); add object= or id= to name one")
                    }
                    let binding = Binding(
                        module: module, slot: slot, key: key, mechanisms: try module.mechanisms(slot: slot),
                        generation: generation, incarnation: incarnation)
                    return Found(binding: binding, session: session, tokenLabel: label, pinState: pinState)
                } catch {
                    module.closeSession(session, incarnation: incarnation)
                    throw error
                }
            }
        }
        let list = seen.isEmpty ? "no token is present" : "present: " + seen.joined(separator: ", ")
        throw TokenError(
            .notFound, operation: "finding token \(uri.token ?? uri.serial ?? "")",
            detail: "no token matches \(uri) (\(list)); plug the token in or correct the URI")
    }

    private static func matches(_ wanted: String?, _ actual: String?) -> Bool {
        guard let wanted else { return true }
        return wanted == actual
    }

    private static func certificate(module: PKCS11Module, session: CK_SESSION_HANDLE, id: [UInt8]) throws
        -> [UInt8]?
    {
        guard !id.isEmpty else { return nil }
        var template = AttributeTemplate()
        template.add(CKA_CLASS, ulong: UInt(CKO_CERTIFICATE))
        template.add(CKA_ID, bytes: id)
        guard let handle = try module.findObjects(session: session, template, limit: 1).first else { return nil }
        return try module.attribute(session: session, object: handle, CKA_VALUE)
    }

    deinit {
        condition.lock()
        if let binding {
            for session in idle { binding.module.closeSession(session, incarnation: binding.incarnation) }
        }
        condition.unlock()
    }
}

// MARK: - measurement

extension TokenKey {
    /// Signs `data` over and over on one dedicated session, bypassing the pool, and returns
    /// signatures per second: the token's own limit, which `smime-milter bench` prints beside
    /// the pool's rate. `scheme` nil: the key's own.
    public func measureRawSigning(seconds: Double, data: [UInt8], scheme: SignatureScheme?) throws -> Double {
        try onRawSession(scheme: scheme) { sign in
            let start = Date()
            var count = 0
            while Date().timeIntervalSince(start) < seconds {
                try sign(data)
                count += 1
            }
            return Double(count) / Date().timeIntervalSince(start)
        }
    }

    /// Signs `data` `count` times on one dedicated session, bypassing the pool, as
    /// `measureRawSigning` does, for a caller that times it on its own clock.
    public func signRaw(count: Int, data: [UInt8], scheme: SignatureScheme?) throws {
        try onRawSession(scheme: scheme) { sign in
            for _ in 0..<count { try sign(data) }
        }
    }

    /// Runs `body` with a function that signs on one session of its own, taken from the pool
    /// for the whole of `body` and given back after.
    private func onRawSession<T>(scheme: SignatureScheme?, _ body: (_ sign: ([UInt8]) throws -> Void) throws -> T) throws -> T {
        let scheme = scheme ?? keyType.defaultScheme ?? .rsaPKCS1
        let lease = try acquire()
        defer { release(lease, broken: false) }
        return try body { data in _ = try sign(data, scheme: scheme, digest: .sha256, lease: lease) }
    }
}
