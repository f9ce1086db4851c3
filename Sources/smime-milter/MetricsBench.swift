import ArgumentParser
import Foundation
import Gateway
import Monitoring

/// Times one `/metrics` exposition for a province-sized daemon (`ScrapeSample`), beside a daemon
/// with no signing table and no units: the cost of the per-unit and per-token series.
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
        let province = try ScrapeSample.gateway(units: units, tokens: tokens, certificate: cert, chain: chain)
        let unconfigured = Gateway(configuration: Configuration(), signingTable: nil, authorizedSigners: nil, verifier: nil)

        func measure(_ gateway: Gateway) -> (first: Double, median: Double, bytes: Int, series: Int) {
            let metrics = DaemonMetrics(version: smimeMilterVersion)
            let state = DaemonMetrics.ScrapeState(gateway: gateway, recordsWaiting: 0, recordsDropped: 0)
            var text: [UInt8] = []
            let first = median(rounds: 1) { text = metrics.exposition(state) }
            let later = median(rounds: rounds) { text = metrics.exposition(state) }
            return (first, later, text.count, text.split(separator: UInt8(ascii: "\n")).filter { $0.first != UInt8(ascii: "#") }.count)
        }
        let baseline = measure(unconfigured)
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

        // What the milter's threads do for metrics on each message: the in-flight gauge up and
        // down and the two histograms of a signed message, beside the same loop doing nothing.
        let metrics = DaemonMetrics(version: smimeMilterVersion)
        let signed = Decision(outcome: .signed(signer: "bench"), units: ["Đơn vị 0"], address: nil)
        let calls = 200_000
        let empty = median(rounds: 5) { for index in 0..<calls { blackHole(index) } }
        let path = median(rounds: 5) {
            for index in 0..<calls {
                metrics.messageStarted()
                metrics.messageEnded(signed, total: .microseconds(1500 + index % 100), deciding: .microseconds(1000), spooledBytes: 0)
                metrics.messageFinished()
            }
        }
        print(
            String(
                format: "on the message path: %.0f ns per signed message (baseline: the empty loop, %.1f ns)",
                (path - empty) / Double(calls) * 1e9, empty / Double(calls) * 1e9))
    }
}

/// Keeps the optimiser from removing a loop whose result is otherwise unused.
@inline(never)
func blackHole<T>(_ value: T) { withExtendedLifetime(value) {} }
