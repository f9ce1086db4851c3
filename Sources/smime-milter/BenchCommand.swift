import ArgumentParser
import Foundation
import Gateway
import Synchronization
import Token

struct BenchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bench", abstract: "Measure throughput.", subcommands: [TokenBench.self, MIMEBench.self, SMIMEBench.self, RevocationBench.self, ReportBench.self, MetricsBench.self])
}

/// Signatures per second through the session pool with 1, 2 and 4 threads, beside the raw
/// `C_Sign` rate of one dedicated session, all in one run.
struct TokenBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "token", abstract: "Signatures per second: raw C_Sign on one session, then through the pool.")

    @Option(name: .long, help: "Key URI (pkcs11:...?pin-source=file:/PATH).")
    var key: String

    @Option(name: .long, help: "PKCS#11 module path when the URI has none.")
    var module: String?

    @Option(name: .long, help: "Sessions in the pool.")
    var poolSize: Int = 2

    @Option(name: .long, help: "Take StateDirectory (where refused PINs are recorded) from this configuration file.")
    var config: String?

    @Option(name: .long, help: "Where refused PINs are recorded (default: the configuration's StateDirectory).")
    var stateDirectory: String?

    @Option(name: .long, help: "Seconds per measurement.")
    var seconds: Double = 2

    @Option(name: .long, help: "Signature scheme: rsa, rsa-pss or ecdsa (default: the key's).")
    var scheme: String?

    func run() throws {
        let uri = try PKCS11URI(parsing: key)
        let tokenKey = try TokenKey(
            uri: uri, modulePath: module, poolSize: poolSize, waitTimeout: Double(Configuration().signingTimeout),
            pinGuard: CommandPINGuard.make(config: config, stateDirectory: stateDirectory))
        let chosen = try scheme.map { name in
            guard let value = SignatureScheme(rawValue: name) else { throw ValidationError("unknown scheme \(name)") }
            return value
        }
        // The DER of a typical set of signed attributes is about 200 octets.
        let data = [UInt8](repeating: 0x31, count: 200)
        print("key: \(tokenKey.keyType) on token \(tokenKey.tokenLabel), pool of \(poolSize) sessions")
        print(row("measurement", "signatures/s", "ratio"))
        let raw = try tokenKey.measureRawSigning(seconds: seconds, data: data, scheme: chosen)
        print(row("raw C_Sign, one session", String(format: "%.1f", raw), "1.00"))
        for threads in [1, 2, 4] {
            let rate = try Self.poolRate(key: tokenKey, threads: threads, seconds: seconds, data: data, scheme: chosen)
            print(row("pool, \(threads) thread(s)", String(format: "%.1f", rate), String(format: "%.2f", rate / raw)))
        }
    }

    static func poolRate(key: TokenKey, threads: Int, seconds: Double, data: [UInt8], scheme: SignatureScheme?) throws
        -> Double
    {
        let counts = LockedCounter()
        let deadline = Date(timeIntervalSinceNow: seconds)
        let start = Date()
        DispatchQueue.concurrentPerform(iterations: threads) { _ in
            while Date() < deadline {
                do {
                    _ = try key.sign(data, scheme: scheme)
                    counts.add(1)
                } catch {
                    counts.fail("\(error)")
                    return
                }
            }
        }
        if let failure = counts.failure { throw ValidationError("signing failed: \(failure)") }
        return Double(counts.value) / Date().timeIntervalSince(start)
    }
}

final class LockedCounter: Sendable {
    private let state = Mutex<(count: Int, error: String?)>((0, nil))

    func add(_ amount: Int) { state.withLock { $0.count += amount } }
    func fail(_ text: String) { state.withLock { $0.error = text } }
    var value: Int { state.withLock { $0.count } }
    var failure: String? { state.withLock { $0.error } }
}

/// One table row: a left-aligned label and right-aligned figures.
func row(_ label: String, _ figures: String...) -> String {
    func pad(_ text: String, _ width: Int, left: Bool) -> String {
        let fill = String(repeating: " ", count: max(0, width - text.count))
        return left ? text + fill : fill + text
    }
    return pad(label, 30, left: true) + figures.map { " " + pad($0, 12, left: false) }.joined()
}

/// Runs `work` over and over for `seconds`, at least once, and returns how many times a second.
func rate(_ seconds: Double, _ work: () throws -> Void) rethrows -> Double {
    let start = Date()
    var count = 0
    repeat {
        try work()
        count += 1
    } while Date().timeIntervalSince(start) < seconds
    return Double(count) / Date().timeIntervalSince(start)
}

/// Runs `work` `rounds` times (at least once) and returns the median time in seconds, measured
/// on the monotonic clock.
func median(rounds: Int, _ work: () throws -> Void) rethrows -> Double {
    var times: [Double] = []
    for _ in 0..<max(1, rounds) {
        let start = DispatchTime.now().uptimeNanoseconds
        try work()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9)
    }
    return times.sorted()[times.count / 2]
}
