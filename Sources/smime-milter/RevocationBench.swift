import ArgumentParser
import Foundation
import Gateway
import MIME
import SMIME

/// Verification with revocation: the rate of verifying one signed message over and over (the
/// revocation data cached after the first), or the latency of each of `count` messages from a
/// fresh cache, as JSON for `scripts/bench-revocation.py`, which runs the CA server variants.
struct RevocationBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "revocation", abstract: "Verification rate or per-message latency with a revocation check.")

    @Option(name: .long, help: "A signed message.")
    var message: String

    @Option(name: .long, help: "Trust anchor PEM file.")
    var trust: String

    @Option(name: .long, help: "none, crl, crl+fetch or ocsp.")
    var revocation: String = "none"

    @Option(name: .long, help: "CRL directory.")
    var crlDirectory: String?

    @Option(name: .long, help: "Seconds a message may wait for revocation data.")
    var fetchTimeout: Int = 2

    @Option(name: .long, help: "Host or host:port to fetch from besides those the trust anchor names (repeatable; as FetchHosts).")
    var fetchHost: [String] = []

    @Option(name: .long, help: "Seconds to measure the rate for.")
    var seconds: Double = 2

    @Option(name: .long, help: "Measure the latency of this many messages instead of the rate.")
    var count: Int?

    @Option(name: .long, help: "Milliseconds between two messages when measuring latency.")
    var interval: Int = 0

    func run() throws {
        guard let check = RevocationCheck(rawValue: revocation) else { throw ValidationError("unknown \(revocation)") }
        let verifier = Verifier(
            trust: try TrustStore(
                anchors: [trust], intermediates: [], crlDirectory: crlDirectory, revocation: check, fetchTimeout: fetchTimeout,
                fetchHosts: fetchHost, cacheDirectory: nil,
                gracePeriod: TimeInterval(Configuration().crlGracePeriod)),
            signingTimeSkew: TimeInterval(Configuration().signingTimeSkew),
            allowSHA1Signatures: Configuration().allowSHA1Signatures)
        let bytes = Array(try Data(contentsOf: URL(fileURLWithPath: message)))
        var results: [String: Int] = [:]
        func once() throws {
            let parsed = try Message(bytes: bytes)
            let verdict = Verification.verify(message: parsed, from: Verification.authorAddress(parsed.root.headers), verifier: verifier)
            results[verdict.result.rawValue, default: 0] += 1
        }
        var output: [String: Double] = [:]
        if let count {
            var times: [Double] = []
            for _ in 0..<max(2, count) {
                let start = Date()
                try once()
                times.append(Date().timeIntervalSince(start))
                Thread.sleep(forTimeInterval: Double(interval) / 1000)
            }
            // The first message apart (it may start the downloads); percentiles of the others.
            let first = times.removeFirst()
            times.sort()
            output = [
                "first": first, "p50": times[times.count / 2], "p99": times[min(times.count - 1, times.count * 99 / 100)],
                "max": times[times.count - 1],
            ]
        } else {
            try once()  // the first message fills the cache
            output["rate"] = try rate(seconds) { try once() }
        }
        for (result, number) in results { output["result_" + result] = Double(number) }
        let json = try JSONSerialization.data(withJSONObject: output, options: [.sortedKeys])
        print(String(decoding: json, as: UTF8.self))
    }
}
