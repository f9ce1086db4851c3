import Foundation
import Logging
import TestSupport
import Testing

@testable import Token

/// The token code in front of tokens that behave like the province's USB tokens at their worst
/// (`Tests/HardwareToken/hwtoken.c`): PIN counters that lock, flags, slowness, hangs, removal.
/// Each test loads a private instance of the module and owns the token it changes.
@Suite struct HardwareTokenTests {
    let pki: TestPKI
    let data = Array("signed attributes stand-in".utf8)

    init() throws {
        pki = try TestPKI.shared
    }

    func uri(_ token: String, pinFile: String? = nil) throws -> PKCS11URI {
        try PKCS11URI(
            parsing: "pkcs11:token=\(token);object=seal;type=private?pin-source=file:\(pinFile ?? pki.pinFile(token: token))")
    }

    func pinFile(_ directory: String, _ pin: String) throws -> String {
        let file = directory + "/pin"
        try pin.write(toFile: file, atomically: true, encoding: .utf8)
        chmod(file, 0o600)
        return file
    }

    // MARK: the PIN guard

    /// 20 messages, then a restart (a new guard over the same state directory): one wrong login in
    /// all. Once the file holds the right PIN, the next attempt logs in and signs.
    @Test func aRefusedPINIsPresentedOnceUntilItsFileChanges() throws {
        let module = try pki.privateHardwareModule("pin")
        try TestPKI.setControl(module: module, token: "HW-PIN", "max_pin_tries", "3")
        let directory = try pki.temporaryDirectory("pin-guard")
        let file = try pinFile(directory, "999999")
        let state = directory + "/state"
        var codes: [TokenError.Code] = []
        for attempt in 0..<20 {
            // Every fifth attempt as a restarted daemon would: a guard that only has the directory.
            let guardian = attempt % 5 == 4 ? PINGuard(directory: state, logger: Logger(label: "test")) : .at(state)
            do {
                _ = try TokenKey(uri: uri("HW-PIN", pinFile: file), modulePath: module, poolSize: 2, waitTimeout: 10, pinGuard: guardian)
            } catch let error as TokenError {
                codes.append(error.code)
                #expect(!"\(error)".contains("999999"))
            }
        }
        #expect(codes.first == .pin)
        #expect(codes.dropFirst() == Array(repeating: .pinRefused, count: 19)[...])
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "wrong_logins") == 1)
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "login_calls") == 1)

        try pki.pin.write(toFile: file, atomically: false, encoding: .utf8)
        let key = try TokenKey(uri: uri("HW-PIN", pinFile: file), modulePath: module, poolSize: 2, waitTimeout: 10, pinGuard: .at(state))
        _ = try key.sign(data)
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "pin_failures") == 0)
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "wrong_logins") == 1)
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasSuffix(".json") }.isEmpty)
    }

    /// A PIN file that becomes empty, group-readable or unreadable: a clear error naming the fix,
    /// and no login at all (a login with an empty PIN would be a wrong try).
    @Test func aBrokenPINFileIsRefusedBeforeAnyLogin() throws {
        let module = try pki.privateHardwareModule("pin-file")
        let directory = try pki.temporaryDirectory("pin-file")
        let state = directory + "/state"
        let file = try pinFile(directory, "")
        func refusal() -> String {
            do {
                _ = try TokenKey(uri: uri("HW-PIN", pinFile: file), modulePath: module, poolSize: 2, waitTimeout: 10, pinGuard: .at(state))
                return "signed"
            } catch {
                return (error as? TokenError)?.code == .pin ? "\(error)" : "other: \(error)"
            }
        }
        #expect(refusal().contains("the file is empty; write the token's user PIN into it"))
        try pki.pin.write(toFile: file, atomically: false, encoding: .utf8)
        chmod(file, 0o640)
        #expect(refusal().contains("chmod 0600"))
        try FileManager.default.removeItem(atPath: file)
        try FileManager.default.createDirectory(atPath: file, withIntermediateDirectories: false)
        chmod(file, 0o700)
        #expect(refusal().contains("it is not a regular file"))
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "login_calls") == 0)
        // The same token and folder count a login once the file is right: the 0 above counts.
        try FileManager.default.removeItem(atPath: file)
        _ = try pinFile(directory, pki.pin)
        #expect(refusal() == "signed")
        #expect(try TestPKI.counter(module: module, token: "HW-PIN", "login_calls") == 1)
    }

    @Test func aTokenAtItsFinalTryOrLockedGetsNoLoginAtAll() throws {
        let module = try pki.privateHardwareModule("flags")
        try TestPKI.setControl(module: module, token: "HW-Flags", "max_pin_tries", "3")
        let state = try pki.temporaryDirectory("flags-state")
        func attempt() -> TokenError? {
            do {
                _ = try TokenKey(uri: uri("HW-Flags"), modulePath: module, poolSize: 2, waitTimeout: 10, pinGuard: .at(state))
                return nil
            } catch {
                return error as? TokenError
            }
        }
        // Two wrong tries made elsewhere: the next wrong one would lock it.
        try TestPKI.setControl(module: module, token: "HW-Flags", "pin_failures", "2")
        let finalTry = attempt()
        #expect(finalTry?.code == .finalTry)
        #expect("\(finalTry.map { "\($0)" } ?? "")".contains("pkcs11-tool --login"))
        try TestPKI.setControl(module: module, token: "HW-Flags", "pin_failures", "3")
        #expect(attempt()?.code == .locked)
        // Contradictory flags (count low and locked, with no failure counted): the strictest wins.
        try TestPKI.setControl(module: module, token: "HW-Flags", "pin_failures", "0")
        try TestPKI.setControl(module: module, token: "HW-Flags", "flags", "50000")
        #expect(attempt()?.code == .locked)
        #expect(try TestPKI.counter(module: module, token: "HW-Flags", "login_calls") == 0)
        // Count low alone: a warning, and the login goes ahead.
        try TestPKI.setControl(module: module, token: "HW-Flags", "flags", "10000")
        #expect(attempt() == nil)
        #expect(try TestPKI.counter(module: module, token: "HW-Flags", "login_calls") == 1)
    }

    @Test func aTokenPulledOutDuringLoginIsNotAWrongPIN() throws {
        let module = try pki.privateHardwareModule("vanish")
        try TestPKI.setControl(module: module, token: "HW-Vanish", "vanish_in_login", "")
        let state = try pki.temporaryDirectory("vanish-state")
        #expect {
            try TokenKey(uri: uri("HW-Vanish"), modulePath: module, poolSize: 2, waitTimeout: 10, pinGuard: .at(state))
        } throws: { error in
            (error as? TokenError)?.returnValueName == "CKR_DEVICE_REMOVED"
        }
        #expect(try FileManager.default.contentsOfDirectory(atPath: state).filter { $0.hasSuffix(".json") }.isEmpty)
        try TestPKI.setControl(module: module, token: "HW-Vanish", "removed", nil)
        let key = try TokenKey(uri: uri("HW-Vanish"), modulePath: module, poolSize: 2, waitTimeout: 10, lookingAgain: true, pinGuard: .at(state))
        _ = try key.sign(data)
        #expect(try TestPKI.counter(module: module, token: "HW-Vanish", "wrong_logins") == 0)
    }

    // MARK: sessions

    @Test func thePoolNeverOpensMoreSessionsThanTheTokenAllows() throws {
        let module = try pki.privateHardwareModule("sessions")
        try TestPKI.setControl(module: module, token: "HW-Slow", "max_sessions", "1")
        try TestPKI.setControl(module: module, token: "HW-Slow", "latency_ms", "20")
        let key = try TokenKey(uri: uri("HW-Slow"), modulePath: module, poolSize: 4, waitTimeout: 10, pinGuard: .at(nil))
        #expect(key.poolSize == 1)
        let results = Results()
        let group = DispatchGroup()
        for _ in 0..<4 {
            group.enter()
            Thread.detachNewThread {
                for _ in 0..<3 { results.add(Result { try key.sign(self.data) }) }
                group.leave()
            }
        }
        group.wait()
        #expect(results.all.count == 12)
        for result in results.all { #expect(throws: Never.self) { try result.get() } }
        #expect(key.peakSessions == 1)
    }

    // MARK: slow and hung tokens

    /// A hung token: the first caller gives up at its deadline, later callers fail at once, and
    /// when the token answers again signing resumes by itself. Another token signs meanwhile.
    /// A module restart (to find a lost token) waits for the calls in flight; behind a C_Sign
    /// that hangs it gives up after a bounded wait instead of queueing for ever, and the other
    /// token's signer keeps signing meanwhile.
    @Test func aModuleRestartDoesNotWaitForEverBehindAHungCall() throws {
        let module = try pki.privateHardwareModule("restart-hang")
        let hung = try TokenKey(uri: uri("HW-Hang"), modulePath: module, poolSize: 1, waitTimeout: 10, pinGuard: .at(nil))
        let other = try TokenKey(uri: uri("HW-Unit-B"), modulePath: module, poolSize: 1, waitTimeout: 10, pinGuard: .at(nil))
        let workers = TokenWorkers(name: "HW-Hang", threads: 1, stuckAfter: 30)
        let data = data
        try TestPKI.setControl(module: module, token: "HW-Hang", "hang", "")
        defer { try? TestPKI.setControl(module: module, token: "HW-Hang", "hang", nil) }
        #expect(throws: TokenError.self) {
            try workers.run(until: Date(timeIntervalSinceNow: 0.3)) { try hung.sign(data) }
        }
        let loaded = try PKCS11Module.load(path: module)
        let start = Date()
        #expect(!loaded.reinitialize(notWithin: 0), "not restarted under a hung call")
        let took = Date().timeIntervalSince(start)
        #expect(took < PKCS11Module.restartWait + 1, "\(took) s")
        _ = try other.sign(data)
    }

    @Test func aHungTokenFailsFastAndRecoversWhileAnotherTokenSigns() throws {
        let module = try pki.privateHardwareModule("hang")
        let hung = try TokenKey(uri: uri("HW-Hang"), modulePath: module, poolSize: 1, waitTimeout: 10, pinGuard: .at(nil))
        let other = try TokenKey(uri: uri("HW-Unit-B"), modulePath: module, poolSize: 1, waitTimeout: 10, pinGuard: .at(nil))
        let hungWorkers = TokenWorkers(name: "HW-Hang", threads: 1, stuckAfter: 0.4)
        let otherWorkers = TokenWorkers(name: "HW-Unit-B", threads: 1, stuckAfter: 0.4)
        let data = data
        try TestPKI.setControl(module: module, token: "HW-Hang", "hang", "")

        var start = Date()
        #expect {
            try hungWorkers.run(until: Date(timeIntervalSinceNow: 0.4)) { try hung.sign(data) }
        } throws: { ($0 as? TokenError)?.code == .timeout }
        // It returns at its deadline: the hung token never answers.
        #expect(Date().timeIntervalSince(start) < 30)

        // The hung call started a little after the first caller began waiting: past `stuckAfter`
        // from its start, the token is stuck.
        Thread.sleep(forTimeInterval: 0.5)
        start = Date()
        #expect {
            try hungWorkers.run(until: Date(timeIntervalSinceNow: 60)) { try hung.sign(data) }
        } throws: { ($0 as? TokenError)?.code == .stuck }
        // `stuck`, not `timeout`: it did not wait for its deadline (a minute) to fail.
        #expect(Date().timeIntervalSince(start) < 30, "a stuck token fails at once")

        for _ in 0..<5 {
            _ = try otherWorkers.run(until: Date(timeIntervalSinceNow: 5)) { try other.sign(data) }
        }

        try TestPKI.setControl(module: module, token: "HW-Hang", "hang", nil)
        var signed = false
        let deadline = Date(timeIntervalSinceNow: 10)
        while !signed && Date() < deadline {
            do {
                _ = try hungWorkers.run(until: Date(timeIntervalSinceNow: 5)) { try hung.sign(data) }
                signed = true
            } catch let error as TokenError where error.code == .stuck {
                Thread.sleep(forTimeInterval: 0.05)
            }
        }
        #expect(signed)
    }

    /// Pulled out while signing and put back: one recovery attempt fails with a clear
    /// "unavailable" while it is out, and the key signs again once it is back.
    @Test func aTokenPulledOutAndPutBackSignsAgain() throws {
        let module = try pki.privateHardwareModule("pull")
        let key = try TokenKey(uri: uri("HW-Pull"), modulePath: module, poolSize: 2, waitTimeout: 10, moduleRestartInterval: 0, pinGuard: .at(nil))
        _ = try key.sign(data)
        try TestPKI.setControl(module: module, token: "HW-Pull", "removed", "")
        #expect {
            try key.sign(data)
        } throws: { ($0 as? TokenError)?.code == .unavailable }
        try TestPKI.setControl(module: module, token: "HW-Pull", "removed", nil)
        _ = try key.sign(data)
        // Out and back in between two messages: the live session's handle is gone; retried once.
        try TestPKI.setControl(module: module, token: "HW-Pull", "replugged", "")
        _ = try key.sign(data)
        #expect(!FileManager.default.fileExists(atPath: TestPKI.control(module: module, token: "HW-Pull") + "/replugged"))
    }
}
