import Foundation
import SMIME
public import Token
import Synchronization

/// What the gateway learnt of each signing-table line's token from the messages it signed: the
/// state its last signature left it in and how many signatures it made. No token is asked for
/// this (a scrape must never wait for a slow token); a line not used since the daemon started
/// has no report. A reload hands the tracker to the new gateway (`keeping(_:)`), so an alert
/// does not clear until mail reaches the token again.
public final class TokenTracker: Sendable {
    /// The states `/metrics` and `systemctl status` name.
    public enum State: String, Sendable, CaseIterable {
        case ok
        case countLow = "count low"
        case finalTry = "final try"
        case locked
        case pinRefused = "PIN refused"
        case stuck
        case absent
    }

    public struct Report: Sendable, Equatable {
        public let line: Int
        /// The line's key (URI or file): a reload that gives the line another key drops the report.
        let key: String
        /// The token's label, from the key's URI or the token itself.
        public let token: String
        public var state: State
        public var signatures: Int
        /// The signer's certificate and chain (DER), once a signer was made.
        public var certificate: [UInt8]?
        public var chain: [[UInt8]]
    }

    private let reports = Mutex<[Int: Report]>([:])

    public init() {}

    /// The reports of the lines `table` still has with the same key; the others go. Called when
    /// a reload hands this tracker to the new configuration's gateway.
    public func keeping(_ table: SigningTable?) {
        let keys = Dictionary((table?.entries ?? []).map { ($0.line, $0.key) }, uniquingKeysWith: { a, _ in a })
        reports.withLock { all in all = all.filter { keys[$0.key] == $0.value.key } }
    }

    /// Every line's report, by line.
    public var snapshot: [Report] { reports.withLock { Array($0.values) }.sorted { $0.line < $1.line } }

    /// A signature made with `signer` for `entry`.
    func signed(_ entry: SigningTable.Entry, signer: any Signer) {
        let base = (signer as? Gateway.DeadlineSigner)?.base ?? signer
        var state = State.ok
        // The label is needed for a line's first report only: not worked out for every message.
        var label: String?
        if let tokenSigner = base as? TokenSigner {
            label = tokenSigner.key.tokenLabel
            switch tokenSigner.key.pinStateAtLogin {
            case .countLow: state = .countLow
            case .finalTry: state = .finalTry
            case .locked: state = .locked
            case .refused: state = .pinRefused
            case .ok: state = .ok
            }
        }
        reports.withLock { all in
            var report =
                all[entry.line]
                ?? Report(
                    line: entry.line, key: entry.key, token: label ?? Self.tokenLabel(entry), state: state, signatures: 0,
                    chain: [])
            report.state = state
            report.signatures += 1
            report.certificate = signer.certificate
            report.chain = signer.chain
            all[entry.line] = report
        }
    }

    /// A token error while signing for `entry` (public for `bench metrics`, which sets every
    /// token's state without a token).
    public func failed(_ entry: SigningTable.Entry, _ failure: TokenError) {
        let state: State
        switch failure.code {
        case .locked: state = .locked
        case .finalTry: state = .finalTry
        case .pin, .pinRefused: state = .pinRefused
        case .stuck, .timeout: state = .stuck
        case .notFound, .unavailable, .module: state = .absent
        default: return
        }
        reports.withLock { all in
            var report = all[entry.line] ?? Report(line: entry.line, key: entry.key, token: Self.tokenLabel(entry), state: state, signatures: 0, chain: [])
            report.state = state
            all[entry.line] = report
        }
    }

    /// The token's label the key's URI names, else `file` for a key in a file.
    public static func tokenLabel(_ entry: SigningTable.Entry) -> String {
        guard entry.key.lowercased().hasPrefix("pkcs11:") else { return "file" }
        return (try? PKCS11URI(parsing: entry.key))?.token ?? "(any token)"
    }
}
