import ArgumentParser
import Foundation
import Gateway
import Monitoring
import Token

/// Times one `/metrics` exposition for a province-sized daemon (units, signing-table lines on
/// tokens of their own, each with its certificate and chain, every token in a non-ok state so
/// that every series is written), beside the same daemon with no signing table: the cost of the
/// per-unit and per-token series.
struct MetricsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "metrics", abstract: "Time one /metrics scrape with many units and tokens.")

    @Option(name: .long, help: "Signer certificate each signing-table line names (PEM).")
    var cert: String

    @Option(name: .long, help: "Chain each signing-table line names (PEM).")
    var chain: String

    @Option(name: .long, help: "Units.")
    var units: Int = 13

    @Option(name: .long, help: "Signing-table lines, each on a token of its own.")
    var tokens: Int = 20

    @Option(name: .long, help: "Scrapes timed (the median is printed).")
    var rounds: Int = 50

    func run() throws {
        guard units > 0, tokens > 0, rounds > 0 else { throw ValidationError("--units, --tokens and --rounds must be positive") }
        let unitsText = (0..<units).map { "*@unit\($0).dienbien.gov.vn  Đơn vị \($0)" }.joined(separator: "\n")
        let tableText = (0..<tokens).map {
            "*@line\($0).unit\($0 % units).dienbien.gov.vn pkcs11:token=Token-\($0);object=seal?pin-source=file:/nonexistent "
                + "cert=\(cert) chain=\(chain)"
        }.joined(separator: "\n")
        let table = try SigningTable.parse(tableText, file: "signing-table")
        let statistics = Statistics()
        for unit in 0..<units {
            for counter in ["signed", "skipped.no-signer", "failed.token", "verified.pass", "verified.fail"] {
                statistics.count(counter, units: ["Đơn vị \(unit)"])
            }
        }
        let province = Gateway(
            configuration: Configuration(), signingTable: table, authorizedSigners: nil, verifier: nil,
            units: try Units.parse(unitsText, file: "units"), statistics: statistics)
        for entry in table.entries {
            province.tokenTracker.failed(entry, TokenError(.locked, operation: "C_Login", detail: "locked"))
        }
        let empty = Gateway(configuration: Configuration(), signingTable: nil, authorizedSigners: nil, verifier: nil)

        func measure(_ gateway: Gateway) -> (first: Double, median: Double, bytes: Int, series: Int) {
            let metrics = DaemonMetrics(version: smimeMilterVersion)
            let state = DaemonMetrics.ScrapeState(gateway: gateway, recordsWaiting: 0, recordsDropped: 0)
            var text: [UInt8] = []
            let first = median(rounds: 1) { text = metrics.exposition(state) }
            let later = median(rounds: rounds) { text = metrics.exposition(state) }
            return (first, later, text.count, text.split(separator: UInt8(ascii: "\n")).filter { $0.first != UInt8(ascii: "#") }.count)
        }
        let baseline = measure(empty)
        let measured = measure(province)
        func row(_ cells: String...) -> String {
            cells[0].padding(toLength: 50, withPad: " ", startingAt: 0)
                + zip(cells.dropFirst(), [10, 12, 8, 8]).map { String(repeating: " ", count: max(1, $1 - $0.count + 1)) + $0 }.joined()
        }
        func row(_ label: String, _ values: (first: Double, median: Double, bytes: Int, series: Int)) -> String {
            row(label, String(format: "%.2f", values.first * 1000), String(format: "%.2f", values.median * 1000), "\(values.series)", "\(values.bytes)")
        }
        print(row("scrape", "first ms", "median ms", "series", "bytes"))
        print(row("baseline: no signing table, no units", baseline))
        print(row("\(units) units, \(tokens) tokens with certificate and chain", measured))
        print(String(format: "one scrape, %d units and %d tokens: %.2f ms (target under 10 ms)", units, tokens, measured.median * 1000))
    }
}
