internal import CP11Kit
import Foundation

/// One PKCS#11 module loaded and initialised through p11-kit.
///
/// A module is initialised once per process whatever the number of keys that use it, so
/// modules are shared: `PKCS11Module.load(path:)` and `registered()` return the same object for
/// the same module for as long as someone holds it.
public final class PKCS11Module: @unchecked Sendable {
    // @unchecked: `lastReinitialization` and `restarts` change only inside `callLock.write`, and
    // are read inside `callLock`; the rest is immutable; the function list is the module's own,
    // which PKCS#11 modules initialised with OS locking allow from any thread.
    /// The module's file name, or its p11-kit registration name.
    public let name: String
    public let path: String?
    let functions: UnsafeMutablePointer<CK_FUNCTION_LIST>
    private let release: () -> Void
    /// Every call holds this for reading; `reinitialize` holds it for writing, so that no call is
    /// inside the module while it is finalised.
    private let callLock = ReadWriteLock()
    private var lastReinitialization = Date.distantPast
    /// Counts restarts. Session and object handles belong to one incarnation of the module: after
    /// a restart the same numbers may name another token's sessions and keys (SoftHSM counts from
    /// 1 again), so a handle from an earlier incarnation must never be used or closed.
    private var restarts = 0

    private init(
        name: String, path: String?, functions: UnsafeMutablePointer<CK_FUNCTION_LIST>,
        release: @escaping () -> Void
    ) {
        self.name = name
        self.path = path
        self.functions = functions
        self.release = release
    }

    deinit { release() }

    // MARK: loading

    /// Modules stay loaded for the life of the process: PKCS#11 allows one C_Initialize per
    /// process, and a reload of the configuration must find the same module initialised.
    private static let lock = NSLock()
    nonisolated(unsafe) private static var byPath: [String: PKCS11Module] = [:]
    nonisolated(unsafe) private static var registeredModules: [PKCS11Module]?

    /// Loads the module at `path` (an absolute path, or a file name p11-kit finds in its module
    /// directory) and initialises it.
    public static func load(path: String) throws -> PKCS11Module {
        lock.lock()
        defer { lock.unlock() }
        if let module = byPath[path] {
            return module
        }
        guard let functions = p11_kit_module_load(path, 0) else {
            throw TokenError(
                .module, operation: "loading PKCS#11 module \(path)",
                detail: "\(lastP11KitMessage()); check PKCS11Module, or install the token vendor's module")
        }
        let rv = p11_kit_module_initialize(functions)
        guard rv == CKR_OK else {
            p11_kit_module_release(functions)
            throw TokenError(
                .module, operation: "C_Initialize of \(path)", returnValue: UInt(rv),
                detail: "the module refused to start; check its own configuration (for SoftHSM: SOFTHSM2_CONF)")
        }
        let module = PKCS11Module(
            name: (path as NSString).lastPathComponent, path: path, functions: functions,
            release: {
                p11_kit_module_finalize(functions)
                p11_kit_module_release(functions)
            })
        byPath[path] = module
        return module
    }

    /// Every module registered with p11-kit (`/usr/share/p11-kit/modules/*.module`), initialised.
    public static func registered() throws -> [PKCS11Module] {
        lock.lock()
        defer { lock.unlock() }
        if let modules = registeredModules {
            return modules
        }
        guard let list = p11_kit_modules_load_and_initialize(0) else {
            throw TokenError(
                .module, operation: "loading the p11-kit registered modules",
                detail: "\(lastP11KitMessage()); see p11-kit list-modules")
        }
        var modules: [PKCS11Module] = []
        var index = 0
        while let functions = list[index] {
            let name = takeString(p11_kit_module_get_name(functions))
            let path = takeString(p11_kit_module_get_filename(functions))
            modules.append(
                PKCS11Module(
                    name: name ?? path ?? "module \(index)", path: path, functions: functions,
                    release: {
                        p11_kit_module_finalize(functions)
                        p11_kit_module_release(functions)
                    }))
            index += 1
        }
        // The modules own their entries now; only the array p11-kit allocated is freed here.
        free(list)
        registeredModules = modules
        return modules
    }

    private static func lastP11KitMessage() -> String {
        p11_kit_message().map { String(cString: $0) } ?? "unknown error"
    }

    /// Copies a string p11-kit allocated and frees it.
    private static func takeString(_ pointer: UnsafeMutablePointer<CChar>?) -> String? {
        guard let pointer else { return nil }
        defer { free(pointer) }
        return String(cString: pointer)
    }

    /// The modules a URI may live in: its `module-path`, else `modulePath` when configured, else
    /// every registered module (filtered by `module-name` when the URI gives one).
    public static func candidates(for uri: PKCS11URI, modulePath: String?) throws -> [PKCS11Module] {
        if let path = uri.modulePath ?? modulePath {
            return [try load(path: path)]
        }
        let all = try registered()
        if let name = uri.moduleName {
            let matching = all.filter { $0.name == name }
            guard !matching.isEmpty else {
                throw TokenError(
                    .notFound, operation: "finding module-name=\(name)",
                    detail: "no p11-kit module of that name is registered (registered: "
                        + all.map(\.name).joined(separator: ", ") + ")")
            }
            return matching
        }
        return all
    }

    /// Finalises and initialises the module again, so that it scans for tokens anew: some
    /// modules (SoftHSM among them) see a token that was removed and re-created only then. Every
    /// session of the module dies with it; their holders recover as after a token removal. Done
    /// at most once per `interval`, so an absent token does not restart the module per message.
    /// Returns whether it ran.
    ///
    /// A restart waits for the calls in flight to end, but at most `restartWait` seconds: a call
    /// that hangs (a `C_Sign` on a stuck USB token) never returns, and the restart is then
    /// skipped (false) rather than queued behind it for ever.
    func reinitialize(notWithin interval: TimeInterval) -> Bool {
        let done = callLock.write(within: Self.restartWait) { () -> Bool in
            guard Date().timeIntervalSince(lastReinitialization) >= interval else { return false }
            lastReinitialization = Date()
            restarts += 1
            _ = p11_kit_module_finalize(functions)
            return p11_kit_module_initialize(functions) == CKR_OK
        }
        // nil: not restarted; the caller reports the token as not found, as without a restart.
        return done ?? false
    }

    /// Seconds a restart waits for calls in flight.
    static let restartWait: TimeInterval = 2

    // MARK: raw calls, each turning CK_RV into TokenError

    func check(_ rv: CK_RV, _ operation: @autoclosure () -> String, _ detail: @autoclosure () -> String = "")
        throws
    {
        guard rv != CKR_OK else { return }
        let text = detail()
        throw TokenError(
            Self.code(for: UInt(rv)), operation: operation(), returnValue: UInt(rv),
            detail: text.isEmpty ? Self.advice(for: UInt(rv)) : text)
    }

    static func code(for rv: UInt) -> TokenError.Code {
        switch rv {
        case UInt(CKR_PIN_INCORRECT), UInt(CKR_PIN_LOCKED), UInt(CKR_PIN_EXPIRED), UInt(CKR_PIN_INVALID),
            UInt(CKR_PIN_LEN_RANGE):
            .pin
        case UInt(CKR_MECHANISM_INVALID), UInt(CKR_KEY_TYPE_INCONSISTENT), UInt(CKR_KEY_FUNCTION_NOT_PERMITTED):
            .unsupported
        default:
            .pkcs11
        }
    }

    static func advice(for rv: UInt) -> String {
        switch rv {
        case UInt(CKR_PIN_INCORRECT): "the token refused the PIN; correct the PIN file (each wrong try counts toward locking the token)"
        case UInt(CKR_PIN_LOCKED): "the user PIN is locked; unlock it with the SO PIN (pkcs11-tool --init-pin)"
        case UInt(CKR_PIN_EXPIRED): "the user PIN has expired; set a new one on the token"
        case UInt(CKR_TOKEN_NOT_PRESENT), UInt(CKR_DEVICE_REMOVED): "the token is not present; plug it in or check the p11-kit server"
        case UInt(CKR_KEY_FUNCTION_NOT_PERMITTED): "the key may not sign (CKA_SIGN is false); use a signing key"
        case UInt(CKR_MECHANISM_INVALID): "the token does not offer this mechanism for this key"
        default: "the module reported an error"
        }
    }

    func slots(tokenPresent: Bool = true) throws -> [CK_SLOT_ID] {
        try callLock.read {
            var count: CK_ULONG = 0
            let present = CK_BBOOL(tokenPresent ? CK_TRUE : CK_FALSE)
            try check(functions.pointee.C_GetSlotList(present, nil, &count), "C_GetSlotList of \(name)")
            var slots = [CK_SLOT_ID](repeating: 0, count: Int(count))
            try check(functions.pointee.C_GetSlotList(present, &slots, &count), "C_GetSlotList of \(name)")
            return Array(slots.prefix(Int(count)))
        }
    }

    func tokenInfo(slot: CK_SLOT_ID) throws -> CK_TOKEN_INFO {
        try callLock.read {
            var info = CK_TOKEN_INFO()
            try check(functions.pointee.C_GetTokenInfo(slot, &info), "C_GetTokenInfo of slot \(slot)")
            return info
        }
    }

    func mechanisms(slot: CK_SLOT_ID) throws -> Set<CK_MECHANISM_TYPE> {
        try callLock.read {
            var count: CK_ULONG = 0
            try check(functions.pointee.C_GetMechanismList(slot, nil, &count), "C_GetMechanismList")
            var list = [CK_MECHANISM_TYPE](repeating: 0, count: Int(count))
            try check(functions.pointee.C_GetMechanismList(slot, &list, &count), "C_GetMechanismList")
            return Set(list.prefix(Int(count)))
        }
    }

    func openSession(slot: CK_SLOT_ID) throws -> CK_SESSION_HANDLE {
        try callLock.read {
            var session: CK_SESSION_HANDLE = 0
            try check(
                functions.pointee.C_OpenSession(slot, CK_FLAGS(CKF_SERIAL_SESSION), nil, nil, &session),
                "C_OpenSession on slot \(slot)")
            return session
        }
    }

    /// The current incarnation (see `restarts`); read it before opening a session.
    var incarnation: Int { callLock.read { restarts } }

    /// Closes a session, unless the module restarted since it was opened.
    func closeSession(_ session: CK_SESSION_HANDLE, incarnation: Int? = nil) {
        callLock.read {
            guard incarnation == nil || incarnation == restarts else { return }
            _ = functions.pointee.C_CloseSession(session)
        }
    }

    /// Throws a recoverable error when the module restarted since `incarnation`: the handles
    /// the caller holds are stale. Call inside the read lock, before using them.
    private func requireIncarnation(_ incarnation: Int?) throws {
        guard let incarnation, incarnation != restarts else { return }
        throw TokenError(
            .pkcs11, operation: "using a session of \(name)", returnValue: UInt(CKR_SESSION_HANDLE_INVALID),
            detail: "the module was restarted; the token is found again")
    }

    /// Whether the user is logged in to the session's token (login is per token: another key's
    /// session may have done it).
    func isLoggedIn(session: CK_SESSION_HANDLE) -> Bool {
        callLock.read {
            var info = CK_SESSION_INFO()
            guard functions.pointee.C_GetSessionInfo(session, &info) == CKR_OK else { return false }
            return info.state == CK_STATE(CKS_RO_USER_FUNCTIONS) || info.state == CK_STATE(CKS_RW_USER_FUNCTIONS)
        }
    }

    /// Logs the user in; an already logged-in token is fine (login is per token, not per session).
    func login(session: CK_SESSION_HANDLE, pin: [UInt8], token: String) throws {
        try callLock.read {
            var pin = pin
            defer { for index in pin.indices { pin[index] = 0 } }
            let rv = pin.withUnsafeMutableBufferPointer { buffer in
                functions.pointee.C_Login(session, CK_USER_TYPE(CKU_USER), buffer.baseAddress, CK_ULONG(buffer.count))
            }
            if rv == CKR_USER_ALREADY_LOGGED_IN { return }
            try check(rv, "C_Login to token \(token)")
        }
    }

    /// Object handles matching a template.
    func findObjects(session: CK_SESSION_HANDLE, _ template: AttributeTemplate, limit: Int = 64) throws
        -> [CK_OBJECT_HANDLE]
    {
        try callLock.read {
            try template.withAttributes { attributes, count in
                try check(functions.pointee.C_FindObjectsInit(session, attributes, count), "C_FindObjectsInit")
            }
            defer { _ = functions.pointee.C_FindObjectsFinal(session) }
            var handles = [CK_OBJECT_HANDLE](repeating: 0, count: limit)
            var found: CK_ULONG = 0
            try check(
                functions.pointee.C_FindObjects(session, &handles, CK_ULONG(limit), &found), "C_FindObjects")
            return Array(handles.prefix(Int(found)))
        }
    }

    /// The value of one attribute, or nil when the object has none (or it is sensitive).
    func attribute(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, _ type: UInt) throws -> [UInt8]? {
        try callLock.read {
            var attribute = CK_ATTRIBUTE(type: CK_ATTRIBUTE_TYPE(type), pValue: nil, ulValueLen: 0)
            var rv = functions.pointee.C_GetAttributeValue(session, object, &attribute, 1)
            if rv == CKR_ATTRIBUTE_TYPE_INVALID || rv == CKR_ATTRIBUTE_SENSITIVE { return nil }
            try check(rv, "C_GetAttributeValue")
            if attribute.ulValueLen == CK_ULONG.max { return nil }
            var value = [UInt8](repeating: 0, count: Int(attribute.ulValueLen))
            rv = value.withUnsafeMutableBytes { buffer in
                attribute.pValue = buffer.baseAddress
                return functions.pointee.C_GetAttributeValue(session, object, &attribute, 1)
            }
            try check(rv, "C_GetAttributeValue")
            return Array(value.prefix(Int(attribute.ulValueLen)))
        }
    }

    func ulongAttribute(session: CK_SESSION_HANDLE, object: CK_OBJECT_HANDLE, _ type: UInt) throws -> UInt? {
        guard let bytes = try attribute(session: session, object: object, type),
            bytes.count == MemoryLayout<CK_ULONG>.size
        else { return nil }
        return bytes.withUnsafeBytes { $0.loadUnaligned(as: CK_ULONG.self) }
    }

    /// Digests `data` on the token (for mechanisms that sign a precomputed hash).
    func digest(session: CK_SESSION_HANDLE, mechanism: CK_MECHANISM_TYPE, _ data: [UInt8], incarnation: Int? = nil)
        throws -> [UInt8]
    {
        try callLock.read {
            try requireIncarnation(incarnation)
            var mech = CK_MECHANISM(mechanism: mechanism, pParameter: nil, ulParameterLen: 0)
            try check(functions.pointee.C_DigestInit(session, &mech), "C_DigestInit")
            var output = [UInt8](repeating: 0, count: 64)
            var length = CK_ULONG(output.count)
            var input = data
            let rv = input.withUnsafeMutableBufferPointer { inputBuffer in
                output.withUnsafeMutableBufferPointer { outputBuffer in
                    functions.pointee.C_Digest(
                        session, inputBuffer.baseAddress, CK_ULONG(inputBuffer.count), outputBuffer.baseAddress, &length)
                }
            }
            try check(rv, "C_Digest")
            return Array(output.prefix(Int(length)))
        }
    }

    /// One C_SignInit + C_Sign. The buffer is large enough for RSA-8192 and every curve, so a
    /// single call suffices; a module that still says CKR_BUFFER_TOO_SMALL keeps the operation
    /// active and is asked again with the size it gave.
    func sign(
        session: CK_SESSION_HANDLE, key: CK_OBJECT_HANDLE, mechanism: CK_MECHANISM_TYPE,
        parameter: [UInt8]?, _ data: [UInt8], incarnation: Int? = nil
    ) throws -> [UInt8] {
        try callLock.read {
            try requireIncarnation(incarnation)
            var parameter = parameter ?? []
            let initRV = parameter.withUnsafeMutableBytes { buffer in
                var mech = CK_MECHANISM(
                    mechanism: mechanism, pParameter: buffer.isEmpty ? nil : buffer.baseAddress,
                    ulParameterLen: CK_ULONG(buffer.count))
                return functions.pointee.C_SignInit(session, &mech, key)
            }
            try check(initRV, "C_SignInit")
            var input = data
            var output = [UInt8](repeating: 0, count: 1024)
            var length = CK_ULONG(output.count)
            func call() -> CK_RV {
                input.withUnsafeMutableBufferPointer { inputBuffer in
                    output.withUnsafeMutableBufferPointer { outputBuffer in
                        functions.pointee.C_Sign(
                            session, inputBuffer.baseAddress, CK_ULONG(inputBuffer.count), outputBuffer.baseAddress,
                            &length)
                    }
                }
            }
            var rv = call()
            if rv == CKR_BUFFER_TOO_SMALL {
                output = [UInt8](repeating: 0, count: Int(length))
                rv = call()
            }
            try check(rv, "C_Sign")
            return Array(output.prefix(Int(length)))
        }
    }
}

/// A PKCS#11 attribute template whose values stay alive while the C call reads them.
struct AttributeTemplate {
    private var entries: [(CK_ATTRIBUTE_TYPE, [UInt8])] = []

    init() {}

    mutating func add(_ type: UInt, bytes: [UInt8]) {
        entries.append((CK_ATTRIBUTE_TYPE(type), bytes))
    }

    mutating func add(_ type: UInt, ulong value: UInt) {
        withUnsafeBytes(of: CK_ULONG(value)) { entries.append((CK_ATTRIBUTE_TYPE(type), Array($0))) }
    }

    mutating func add(_ type: UInt, string: String) {
        add(type, bytes: Array(string.utf8))
    }

    func withAttributes<R>(_ body: (UnsafeMutablePointer<CK_ATTRIBUTE>?, CK_ULONG) throws -> R) rethrows -> R {
        let total = entries.reduce(0) { $0 + $1.1.count }
        let storage = UnsafeMutableRawBufferPointer.allocate(byteCount: max(total, 1), alignment: 8)
        defer { storage.deallocate() }
        var attributes: [CK_ATTRIBUTE] = []
        var offset = 0
        for (type, bytes) in entries {
            let start = storage.baseAddress! + offset
            if !bytes.isEmpty {
                bytes.withUnsafeBytes { start.copyMemory(from: $0.baseAddress!, byteCount: $0.count) }
            }
            attributes.append(CK_ATTRIBUTE(type: type, pValue: start, ulValueLen: CK_ULONG(bytes.count)))
            offset += bytes.count
        }
        return try attributes.withUnsafeMutableBufferPointer { buffer in
            try body(buffer.baseAddress, CK_ULONG(buffer.count))
        }
    }
}

/// A pthread read/write lock: many readers, or one writer. Every call into a module reads;
/// only a restart of the module writes (measured reason: calls into one module from several
/// tokens' threads must not queue behind each other).
final class ReadWriteLock: @unchecked Sendable {
    // @unchecked: the lock itself is the synchronisation; it lives at a fixed heap address
    // (a pthread lock must not move, which a stored property's address does not promise).
    private let lock: UnsafeMutablePointer<pthread_rwlock_t>

    init() {
        lock = .allocate(capacity: 1)
        lock.initialize(to: pthread_rwlock_t())
        pthread_rwlock_init(lock, nil)
    }

    deinit {
        pthread_rwlock_destroy(lock)
        lock.deallocate()
    }

    func read<R>(_ body: () throws -> R) rethrows -> R {
        pthread_rwlock_rdlock(lock)
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }

    /// `body` with the lock held for writing, or nil when readers still hold it after `seconds`.
    func write<R>(within seconds: TimeInterval, _ body: () throws -> R) rethrows -> R? {
        var deadline = timespec()
        clock_gettime(CLOCK_REALTIME, &deadline)
        let nanoseconds = Int(deadline.tv_nsec) + Int(seconds.truncatingRemainder(dividingBy: 1) * 1e9)
        deadline.tv_sec += Int(seconds) + nanoseconds / 1_000_000_000
        deadline.tv_nsec = nanoseconds % 1_000_000_000
        guard pthread_rwlock_timedwrlock(lock, &deadline) == 0 else { return nil }
        defer { pthread_rwlock_unlock(lock) }
        return try body()
    }
}
