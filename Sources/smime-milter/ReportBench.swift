import ArgumentParser
import Foundation
import Gateway
import Records

/// Writes synthetic records for the units of a units table (a year of mail, each unit signing a
/// share of its own) and times `report` over them, beside a plain scan of the same file.
struct ReportBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "report", abstract: "Time the report over many records; also writes sample records (--database).")

    @Option(name: .long, help: "Records to write.")
    var records: Int = 1_000_000

    @Option(name: .long, help: "Units table naming the units.")
    var units: String

    @Option(name: .long, help: "Write the records here and keep them (default: a temporary file).")
    var database: String?

    @Option(name: .long, help: "The year the records fall in.")
    var year: Int = 2026

    @Option(name: .long, help: "Rounds of each measurement (the median is printed).")
    var rounds: Int = 3

    func run() throws {
        let table = try Units.load(path: units)
        let names = table.names
        let keep = database != nil
        let path = database ?? FileManager.default.temporaryDirectory.appendingPathComponent("report-bench-\(getpid()).sqlite").path
        defer { if !keep { for suffix in ["", "-wal", "-shm"] { try? FileManager.default.removeItem(atPath: path + suffix) } } }
        let store = try EventStore(path: path)
        let written = Date()
        try store.insert(Self.events(count: records, units: names, year: year), server: "bench")
        print("wrote \(records) records for \(names.count) units in \(String(format: "%.1f", Date().timeIntervalSince(written))) s: \(path)")

        let reader = try EventStore(path: path, readOnly: true)
        let range = try ReportRange.year(String(year))
        let scan = try median(rounds: rounds) { try reader.scanAll() }
        var html = ""
        let year = try median(rounds: rounds) {
            let report = Report(counts: try reader.counts(from: range.from, to: range.to, byMonth: false), range: range, byMonth: false, units: table)
            html = report.rendered(.csv, language: .vi, generatedAt: Date(), timeZone: .current)
        }
        let byMonth = try median(rounds: rounds) {
            let report = Report(counts: try reader.counts(from: range.from, to: range.to, byMonth: true), range: range, byMonth: true, units: table)
            html = report.rendered(.html, language: .vi, generatedAt: Date(), timeZone: .current)
        }
        print(row("measurement", "seconds"))
        print(row("baseline: read every row once", String(format: "%.3f", scan)))
        print(row("report --year, CSV", String(format: "%.3f", year)))
        print(row("report --year --by month, HTML", String(format: "%.3f", byMonth)))
        print("(HTML \(html.utf8.count) bytes)")
    }

    /// Mail through the year: unit `i` signs a share that grows with `i`, some of it signed by
    /// the sender; a third of the records are incoming. Deterministic.
    static func events(count: Int, units: [String], year: Int) -> [Event] {
        var generator = UInt64(0x9E37_79B9_7F4A_7C15)
        func next() -> UInt64 {
            generator ^= generator << 13
            generator ^= generator >> 7
            generator ^= generator << 17
            return generator
        }
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = .current
        let start = calendar.date(from: DateComponents(year: year, month: 1, day: 1))!.timeIntervalSince1970
        let span = calendar.date(from: DateComponents(year: year + 1, month: 1, day: 1))!.timeIntervalSince1970 - start - 1
        let reasons = ["no-signer", "bounce", "oversize", "encrypted"]
        return (0..<count).map { index in
            let random = next()
            let unit = units[Int(random % UInt64(units.count))]
            let time = Date(timeIntervalSince1970: start + span * Double(index) / Double(max(1, count)))
            if random % 3 == 0 {
                let result = ["pass", "pass", "pass", "fail", "none", "policy"][Int(random >> 8 % 6)]
                return Event(time: time, direction: .incoming, unit: nil, recipientUnits: [unit], outcome: .verified, result: result)
            }
            let index = units.firstIndex(of: unit) ?? 0
            let signs = Double((random >> 16) % 1000) / 1000 < Double(index + 1) / Double(units.count + 1)
            let outcome: Event.Outcome = signs ? ((random >> 32) % 5 == 0 ? .senderSigned : .signed) : .unsigned
            return Event(
                time: time, queueID: String(index, radix: 16), direction: random % 7 == 1 ? .internal : .outgoing, unit: unit,
                recipientUnits: [], outcome: outcome, result: outcome == .senderSigned ? "pass" : nil,
                reason: outcome == .unsigned ? reasons[Int((random >> 40) % 4)] : nil,
                signerSubject: signs ? "CN=\(unit),O=\(unit),C=VN" : nil, signerSerial: signs ? "1A2B3C" : nil)
        }
    }
}
