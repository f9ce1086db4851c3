internal import COpenSSL
import Foundation

/// The fetch cache's files: fetched CRLs (DER plus a JSON record with the issuing CA, so that a
/// restart can use and refresh them) and the last failures, for `smime-milter crl`.
struct FetchDisk {
    let directory: String

    /// The directory, created if need be; nil when it cannot be written.
    init?(_ directory: String) {
        try? FileManager.default.createDirectory(
            atPath: directory, withIntermediateDirectories: true, attributes: [.posixPermissions: 0o700])
        guard FileManager.default.isWritableFile(atPath: directory) else { return nil }
        self.directory = directory
    }

    /// The files' common name for `key`: a digest, so that any URL makes a safe file name.
    private func base(_ key: String) -> String {
        var digest = [UInt8](repeating: 0, count: 32)
        let bytes = Array(key.utf8)
        _ = EVP_Digest(bytes, bytes.count, &digest, nil, EVP_sha256(), nil)
        return directory + "/" + digest.prefix(16).map { String(format: "%02x", $0) }.joined()
    }

    struct Record: Codable {
        var key: String
        var fetchedAt: Date
        var validUntil: Date?
        /// The issuing CA's certificate, DER.
        var issuer: Data?
    }

    /// The failures, for `smime-milter crl` in another process (not reloaded: a restart tries
    /// every source again).
    struct FailureRecord: Codable {
        var count: Int
        var error: String
        var retryAt: Date
    }

    func write(_ key: String, bytes: [UInt8], record: Record) throws {
        let base = base(key)
        try Data(bytes).write(to: URL(fileURLWithPath: base + ".der"), options: .atomic)
        try JSONEncoder().encode(record).write(to: URL(fileURLWithPath: base + ".json"), options: .atomic)
    }

    func writeFailures(_ records: [String: FailureRecord]) {
        try? JSONEncoder().encode(records).write(to: URL(fileURLWithPath: directory + "/failures.json"), options: .atomic)
    }

    /// The failures another process recorded in `directory`.
    static func recordedFailures(_ directory: String) -> [String: FailureRecord] {
        guard let data = FileManager.default.contents(atPath: directory + "/failures.json") else { return [:] }
        return (try? JSONDecoder().decode([String: FailureRecord].self, from: data)) ?? [:]
    }

    /// One kept file pair, or the base name of a damaged one.
    enum Kept {
        case record(Record, base: String)
        case damaged(base: String)
    }

    /// The records changed since `since` (all when nil).
    func records(changedSince since: Date?) -> [Kept] {
        guard let names = try? FileManager.default.contentsOfDirectory(atPath: directory) else { return [] }
        var kept: [Kept] = []
        for name in names where name.hasSuffix(".json") && name != "failures.json" {
            let base = directory + "/" + name.dropLast(5)
            if let since,
                let modified = (try? FileManager.default.attributesOfItem(atPath: base + ".json"))?[.modificationDate]
                    as? Date, modified < since
            {
                continue
            }
            guard let data = FileManager.default.contents(atPath: base + ".json"),
                let record = try? JSONDecoder().decode(Record.self, from: data)
            else {
                kept.append(.damaged(base: base))
                continue
            }
            kept.append(.record(record, base: base))
        }
        return kept
    }

    func der(base: String) -> [UInt8]? {
        FileManager.default.contents(atPath: base + ".der").map { Array($0) }
    }

    func remove(base: String) {
        try? FileManager.default.removeItem(atPath: base + ".json")
        try? FileManager.default.removeItem(atPath: base + ".der")
    }
}
