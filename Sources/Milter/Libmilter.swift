internal import CMilter
import Foundation
import Gateway
import MIME
import Synchronization

/// The libmilter binding: registration, the socket, the main loop, and the C callbacks, each of
/// which turns its arguments into Swift values and hands them to the `MilterService` and the
/// `Connection` attached to the MTA connection.
enum Libmilter {
    /// What the milter asks of the MTA: add, change and delete headers, replace the body, quarantine.
    static let actions = UInt(SMFIF_ADDHDRS | SMFIF_CHGHDRS | SMFIF_CHGBODY | SMFIF_QUARANTINE)

    /// What the milter asks of the MTA's protocol on `socket`. Header values keep their leading
    /// space, so that they are signed byte for byte; unknown commands are not sent; headers, the
    /// end of headers and body chunks go unanswered, which saves a round trip each.
    ///
    /// On a unix socket HELO and DATA are skipped too, and connect and RCPT go unanswered. On TCP
    /// every step after which the MTA waits for its SMTP client (connect, HELO, RCPT, DATA) is
    /// answered: Postfix writes each command as it comes, with Nagle's algorithm on its side,
    /// so the first command after that wait stays in Postfix's buffer until the milter's host
    /// acknowledges the previous one, which an unanswered command gets only when the delayed-ACK
    /// timer fires, 40 ms later. (A skipped step's macros are still sent, unanswered.)
    static func wantedProtocol(_ socket: SocketSpec) -> UInt {
        let always = UInt(SMFIP_NOUNKNOWN | SMFIP_HDR_LEADSPC | SMFIP_NR_HDR | SMFIP_NR_EOH | SMFIP_NR_BODY)
        switch socket {
        case .unix: return always | UInt(SMFIP_NOHELO | SMFIP_NODATA | SMFIP_NR_CONN | SMFIP_NR_RCPT)
        case .inet, .inet6: return always
        }
    }

    /// The service libmilter calls into. libmilter is one per process and its callbacks are plain
    /// C functions with no context until a connection has one (`smfi_setpriv`): this is read
    /// only to attach a new connection, and set once, by `register`.
    private static let service = Mutex<MilterService?>(nil)

    /// Strings libmilter keeps pointers to for the life of the process: held here, so that they
    /// stay reachable (and a leak checker sees them as such).
    private static let kept = Mutex<[KeptString]>([])

    /// Safe to share: written once by `strdup`, only read after that, never freed.
    private struct KeptString: @unchecked Sendable {
        let pointer: UnsafeMutablePointer<CChar>
    }

    private static func keptString(_ text: String) -> UnsafeMutablePointer<CChar> {
        let copy = strdup(text)!
        kept.withLock { $0.append(KeptString(pointer: copy)) }
        return copy
    }

    // MARK: lifecycle

    static func register(_ milter: MilterService) throws {
        try service.withLock { registered in
            guard registered == nil else { throw StartError(description: "a milter is already registered in this process") }
            registered = milter
        }
        var description = smfiDesc()
        description.xxfi_name = keptString("smime-milter")
        description.xxfi_version = SMFI_VERSION
        description.xxfi_flags = actions
        description.xxfi_negotiate = { ctx, actions, steps, _, _, actionsOut, stepsOut, unused2, unused3 in
            Libmilter.negotiate(ctx!, actions, steps, actionsOut!, stepsOut!, unused2!, unused3!)
        }
        description.xxfi_connect = { ctx, name, address in Libmilter.connect(ctx!, name, address) }
        description.xxfi_envfrom = { ctx, argv in Libmilter.envelopeFrom(ctx!, argv!) }
        description.xxfi_envrcpt = { ctx, argv in Libmilter.envelopeRecipient(ctx!, argv!) }
        description.xxfi_header = { ctx, name, value in Libmilter.header(ctx!, name!, value!) }
        description.xxfi_eoh = { ctx in Libmilter.reply(ctx!, step: UInt(SMFIP_NR_EOH)) }
        description.xxfi_body = { ctx, bytes, length in Libmilter.body(ctx!, bytes!, length) }
        description.xxfi_eom = { ctx in Libmilter.endOfMessage(ctx!) }
        description.xxfi_abort = { ctx in Libmilter.abort(ctx!) }
        description.xxfi_close = { ctx in Libmilter.close(ctx!) }
        guard smfi_register(description) == MI_SUCCESS else {
            throw StartError(description: "smfi_register failed: this libmilter does not accept the milter's flags")
        }
    }

    static func openSocket(_ socket: SocketSpec, umask mask: String) throws {
        if case .unix(let path) = socket {
            let directory = (path as NSString).deletingLastPathComponent
            guard FileManager.default.fileExists(atPath: directory) else {
                throw StartError(description: "the socket directory \(directory) does not exist; create it (mkdir -p \(directory)) or change Socket")
            }
        }
        guard smfi_setconn(keptString(socket.libmilterForm)) == MI_SUCCESS else {
            throw StartError(description: "libmilter refused the socket \(socket)")
        }
        let previous = umask(mode_t(UInt16(mask, radix: 8) ?? 0o007))
        defer { umask(previous) }
        guard smfi_opensocket(1) == MI_SUCCESS else {
            throw StartError(
                description: "cannot listen on \(socket): \(String(cString: strerror(errno))); is another milter running there, and may this user create it?")
        }
    }

    /// Sets TCP_NODELAY on libmilter's listening TCP socket, which Linux passes on to every
    /// connection it accepts. The milter protocol sends a message's replies as several small
    /// writes in a row (each header change, the new body, then the verdict); with Nagle's
    /// algorithm each write after the first waited for the MTA's delayed ACK, 40 ms, and a TCP
    /// socket carried a third of a unix socket's messages a second. libmilter keeps the listening
    /// descriptor to itself, so it is found among the process's descriptors by its bound port.
    /// False when no listening TCP socket has that port; true for a unix socket.
    static func setNoDelay(_ socket: SocketSpec) -> Bool {
        switch socket {
        case .unix: return true
        case .inet(let port, _), .inet6(let port, _): return setNoDelay(onListenerAt: port)
        }
    }

    private static func setNoDelay(onListenerAt port: Int) -> Bool {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: "/proc/self/fd") else { return false }
        for descriptor in names.compactMap({ Int32($0) }) {
            var listening: Int32 = 0
            var length = socklen_t(MemoryLayout<Int32>.size)
            guard getsockopt(descriptor, SOL_SOCKET, SO_ACCEPTCONN, &listening, &length) == 0, listening == 1 else { continue }
            var address = sockaddr_storage()
            var addressLength = socklen_t(MemoryLayout<sockaddr_storage>.size)
            let named = withUnsafeMutablePointer(to: &address) {
                $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { getsockname(descriptor, $0, &addressLength) }
            }
            guard named == 0 else { continue }
            let boundPort: UInt16
            switch Int32(address.ss_family) {
            case AF_INET: boundPort = withUnsafeBytes(of: address) { $0.load(as: sockaddr_in.self).sin_port }
            case AF_INET6: boundPort = withUnsafeBytes(of: address) { $0.load(as: sockaddr_in6.self).sin6_port }
            default: continue
            }
            guard Int(UInt16(bigEndian: boundPort)) == port else { continue }
            var on: Int32 = 1
            return setsockopt(descriptor, Int32(IPPROTO_TCP), TCP_NODELAY, &on, socklen_t(MemoryLayout<Int32>.size)) == 0
        }
        return false
    }

    /// libmilter's loop, until `stop`; false when it failed.
    static func main() -> Bool { smfi_main() == MI_SUCCESS }

    static func stop() { _ = smfi_stop() }

    // MARK: callbacks

    static func connection(_ ctx: OpaquePointer) -> Connection? {
        smfi_getpriv(ctx).map { Unmanaged<Connection>.fromOpaque($0).takeUnretainedValue() }
    }

    /// The reply for a step: none when the MTA agreed to skip replies for it.
    static func reply(_ ctx: OpaquePointer, step: UInt) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_CONTINUE }
        return connection.protocolFlags & step != 0 ? SMFIS_NOREPLY : SMFIS_CONTINUE
    }

    static func attach(_ ctx: OpaquePointer) -> Connection? {
        if let existing = connection(ctx) { return existing }
        guard let connection = service.withLock({ $0 })?.connection() else { return nil }
        // Balanced by the one release in `close`.
        smfi_setpriv(ctx, Unmanaged.passRetained(connection).toOpaque())
        return connection
    }

    static func negotiate(
        _ ctx: OpaquePointer, _ offeredActions: UInt, _ offeredSteps: UInt,
        _ actionsOut: UnsafeMutablePointer<UInt>, _ stepsOut: UnsafeMutablePointer<UInt>,
        _ unused2: UnsafeMutablePointer<UInt>, _ unused3: UnsafeMutablePointer<UInt>
    ) -> sfsistat {
        guard let connection = attach(ctx) else { return SMFIS_TEMPFAIL }
        guard offeredActions & actions == actions else {
            connection.service.logger.error(
                "the MTA does not allow header and body changes (offered actions \(String(offeredActions, radix: 16))); use Postfix 2.6 or later with milter_protocol = 6")
            return SMFIS_REJECT
        }
        connection.protocolFlags = offeredSteps & wantedProtocol(connection.service.socket)
        actionsOut.pointee = actions
        stepsOut.pointee = connection.protocolFlags
        unused2.pointee = 0
        unused3.pointee = 0
        return SMFIS_CONTINUE
    }

    static func connect(_ ctx: OpaquePointer, _ name: UnsafeMutablePointer<CChar>?, _ address: UnsafeMutablePointer<sockaddr>?)
        -> sfsistat
    {
        guard let connection = attach(ctx) else { return SMFIS_TEMPFAIL }
        connection.clientName = name.map { String(cString: $0) }
        connection.clientAddress = address.flatMap(text(of:))
        connection.daemonName = symbol(ctx, "{daemon_name}")
        return reply(ctx, step: UInt(SMFIP_NR_CONN))
    }

    static func envelopeFrom(_ ctx: OpaquePointer, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        connection.service.startMessage(connection, sender: address(argv[0]))
        connection.envelope.authType = symbol(ctx, "{auth_type}")
        connection.envelope.authLogin = symbol(ctx, "{auth_authen}")
        connection.envelope.queueID = symbol(ctx, "i")
        if connection.daemonName == nil { connection.daemonName = symbol(ctx, "{daemon_name}") }
        connection.envelope.daemonName = connection.daemonName
        return SMFIS_CONTINUE
    }

    static func envelopeRecipient(_ ctx: OpaquePointer, _ argv: UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        if argv[0] != nil { connection.envelope.recipients.append(address(argv[0])) }
        return reply(ctx, step: UInt(SMFIP_NR_RCPT))
    }

    /// An envelope address without its angle brackets (and without ESMTP parameters).
    /// Over the argument's octets, as SMTP defines the path (RFC 5321 section 4.1.2): walking its
    /// `Character`s cost more than the rest of the envelope callbacks.
    static func address(_ argument: UnsafeMutablePointer<CChar>?) -> String {
        guard let argument else { return "" }
        let octets = octets(of: argument)
        let start = octets.first == UInt8(ascii: "<") ? 1 : 0
        let end = octets[start...].firstIndex(of: UInt8(ascii: ">")) ?? octets.count
        return String(decoding: UnsafeBufferPointer(rebasing: octets[start..<end]), as: UTF8.self)
    }

    /// The octets of a C string libmilter passes, without copying them.
    private static func octets(of text: UnsafeMutablePointer<CChar>) -> UnsafeBufferPointer<UInt8> {
        UnsafeBufferPointer(start: UnsafeRawPointer(text).assumingMemoryBound(to: UInt8.self), count: strlen(text))
    }

    static func header(_ ctx: OpaquePointer, _ name: UnsafeMutablePointer<CChar>, _ value: UnsafeMutablePointer<CChar>) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        let nameBytes = Array(octets(of: name))
        var valueBytes = Array(octets(of: value))
        if connection.protocolFlags & UInt(SMFIP_HDR_LEADSPC) == 0 { valueBytes.insert(0x20, at: 0) }
        let field = HeaderField(
            name: String(decoding: nameBytes, as: UTF8.self), rawValue: valueBytes, raw: nameBytes + [0x3A] + valueBytes + [0x0A])
        connection.headers.append(field)
        return reply(ctx, step: UInt(SMFIP_NR_HDR))
    }

    static func body(_ ctx: OpaquePointer, _ bytes: UnsafeMutablePointer<UInt8>, _ length: Int) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        connection.appendBody(UnsafeRawBufferPointer(start: bytes, count: length))
        return reply(ctx, step: UInt(SMFIP_NR_BODY))
    }

    static func endOfMessage(_ ctx: OpaquePointer) -> sfsistat {
        guard let connection = connection(ctx) else { return SMFIS_TEMPFAIL }
        if let queueID = symbol(ctx, "i") { connection.envelope.queueID = queueID }
        let ending = connection.service.endMessage(
            connection, editor: LibmilterEditor(ctx: ctx), leadingSpace: connection.protocolFlags & UInt(SMFIP_HDR_LEADSPC) != 0)
        switch ending {
        case .accept: return SMFIS_CONTINUE
        case .tempfail: return SMFIS_TEMPFAIL
        case .reject: return SMFIS_REJECT
        }
    }

    static func abort(_ ctx: OpaquePointer) -> sfsistat {
        if let connection = connection(ctx) { connection.service.finishMessage(connection) }
        return SMFIS_CONTINUE
    }

    static func close(_ ctx: OpaquePointer) -> sfsistat {
        guard let pointer = smfi_getpriv(ctx) else { return SMFIS_CONTINUE }
        smfi_setpriv(ctx, nil)
        let connection = Unmanaged<Connection>.fromOpaque(pointer).takeRetainedValue()
        connection.service.finishMessage(connection)
        connection.close()
        return SMFIS_CONTINUE
    }

    // MARK: C values

    /// C strings for libmilter, whose prototypes say `char *` but which only read them.
    static func withC<R>(_ a: String, _ body: (UnsafeMutablePointer<CChar>) -> R) -> R {
        a.withCString { body(UnsafeMutablePointer(mutating: $0)) }
    }

    static func withC<R>(_ a: String, _ b: String, _ body: (UnsafeMutablePointer<CChar>, UnsafeMutablePointer<CChar>) -> R) -> R {
        a.withCString { a in b.withCString { b in body(UnsafeMutablePointer(mutating: a), UnsafeMutablePointer(mutating: b)) } }
    }

    static func symbol(_ ctx: OpaquePointer, _ name: String) -> String? {
        guard let value = withC(name, { smfi_getsymval(ctx, $0) }) else { return nil }
        let text = String(cString: value)
        return text.isEmpty ? nil : text
    }

    /// The client address in text form.
    static func text(of address: UnsafeMutablePointer<sockaddr>) -> String? {
        var buffer = [CChar](repeating: 0, count: Int(INET6_ADDRSTRLEN) + 1)
        switch Int32(address.pointee.sa_family) {
        case AF_INET:
            return address.withMemoryRebound(to: sockaddr_in.self, capacity: 1) { v4 in
                var inAddr = v4.pointee.sin_addr
                return inet_ntop(AF_INET, &inAddr, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        case AF_INET6:
            return address.withMemoryRebound(to: sockaddr_in6.self, capacity: 1) { v6 in
                var inAddr = v6.pointee.sin6_addr
                return inet_ntop(AF_INET6, &inAddr, &buffer, socklen_t(buffer.count)).map { String(cString: $0) }
            }
        default:
            return nil
        }
    }
}

/// The `smfi_*` modifications of one message's context.
struct LibmilterEditor: MessageEditor {
    let ctx: OpaquePointer

    func changeHeader(_ name: String, occurrence: Int, value: String?) -> Bool {
        guard let value else { return Libmilter.withC(name) { smfi_chgheader(ctx, $0, Int32(occurrence), nil) } == MI_SUCCESS }
        return Libmilter.withC(name, value) { smfi_chgheader(ctx, $0, Int32(occurrence), $1) } == MI_SUCCESS
    }

    func insertHeader(_ name: String, at index: Int, value: String) -> Bool {
        Libmilter.withC(name, value) { smfi_insheader(ctx, Int32(index), $0, $1) } == MI_SUCCESS
    }

    func addHeader(_ name: String, value: String) -> Bool {
        Libmilter.withC(name, value) { smfi_addheader(ctx, $0, $1) } == MI_SUCCESS
    }

    func replaceBody(_ piece: ArraySlice<UInt8>) -> Bool {
        guard !piece.isEmpty else { return smfi_replacebody(ctx, nil, 0) == MI_SUCCESS }
        return piece.withUnsafeBufferPointer {
            smfi_replacebody(ctx, UnsafeMutablePointer(mutating: $0.baseAddress!), Int32($0.count))
        } == MI_SUCCESS
    }

    func quarantine(_ reason: String) -> Bool {
        Libmilter.withC(reason) { smfi_quarantine(ctx, $0) } == MI_SUCCESS
    }

    func setReply(code: String, enhancedCode: String, text: String) {
        _ = Libmilter.withC(code, enhancedCode) { code, enhanced in
            Libmilter.withC(text) { smfi_setreply(ctx, code, enhanced, $0) }
        }
    }
}
