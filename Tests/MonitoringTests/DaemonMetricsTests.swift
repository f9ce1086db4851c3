import Foundation
import Gateway
import SMIME
import XCTest

@testable import Monitoring

final class DaemonMetricsTests: XCTestCase {
    func gateway(statistics: Statistics) throws -> Gateway {
        let units = try Units.parse("*@so.example  Sở Thông tin\n*@ubnd.example  UBND \"tỉnh\"\n", file: "units")
        return Gateway(
            configuration: Configuration(), signingTable: nil, authorizedSigners: nil, verifier: nil, units: units,
            statistics: statistics)
    }

    func exposition(_ metrics: DaemonMetrics, _ gateway: Gateway) -> String {
        String(decoding: metrics.exposition(.init(gateway: gateway, recordsWaiting: 3, recordsDropped: 7)), as: UTF8.self)
    }

    func testCountersComeFromTheStatisticsWithUnitsOutsideTheTableFoldedIntoOther() throws {
        let statistics = Statistics()
        statistics.count("signed", units: ["Sở Thông tin"])
        statistics.count("signed", units: ["Sở Thông tin"])
        statistics.count("failed.token", units: ["UBND \"tỉnh\""])
        statistics.count("verified.pass", units: ["Sở Thông tin"])
        for index in 0..<500 { statistics.count("signed", units: ["sender\(index).example"]) }
        statistics.count("failed.internal", units: ["(unknown)"])
        let text = exposition(DaemonMetrics(version: "9.9.9"), try gateway(statistics: statistics))

        XCTAssertTrue(
            text.contains(#"smime_milter_messages_total{direction="outgoing",outcome="signed",reason="",unit="Sở Thông tin"} 2"#), text)
        XCTAssertTrue(
            text.contains(#"smime_milter_messages_total{direction="outgoing",outcome="signed",reason="",unit="other"} 500"#), text)
        XCTAssertTrue(
            text.contains(#"smime_milter_messages_total{direction="incoming",outcome="verified",reason="pass",unit="Sở Thông tin"} 1"#))
        XCTAssertTrue(text.contains(#"outcome="failed",reason="internal",unit="unknown"} 1"#))
        XCTAssertTrue(text.contains(#"smime_milter_build_info{version="9.9.9"} 1"#))
        XCTAssertTrue(text.contains("smime_milter_records_queue_depth 3"))
        XCTAssertTrue(text.contains("smime_milter_records_dropped_total 7"))
        XCTAssertTrue(text.contains("smime_milter_units 2"))
        // A quote in a unit's name is escaped, not a broken line.
        XCTAssertTrue(text.contains(#"unit="UBND \"tỉnh\""} 1"#), text)
        let series = text.split(separator: "\n").filter { $0.hasPrefix("smime_milter_messages_total{") }
        XCTAssertEqual(series.count, 5)
    }

    func testTheMessagePathFillsHistogramsVerificationsAndInFlight() throws {
        let metrics = DaemonMetrics(version: "1")
        let gateway = try gateway(statistics: Statistics())
        metrics.messageStarted()
        metrics.messageStarted()
        metrics.messageFinished()
        metrics.messageEnded(
            Decision(outcome: .signed(signer: "x"), units: [], address: nil), total: .milliseconds(30), deciding: .milliseconds(20),
            spooledBytes: 5_000_000)
        metrics.messageEnded(
            Decision(outcome: .verified(Verdict(result: .fail, reason: "bad")), units: [], address: nil), total: .milliseconds(3),
            deciding: .milliseconds(1), spooledBytes: 0)
        let text = exposition(metrics, gateway)
        XCTAssertTrue(text.contains("smime_milter_messages_in_flight 1"), text)
        XCTAssertTrue(text.contains(#"smime_milter_signing_duration_seconds_bucket{le="0.025"} 1"#), text)
        XCTAssertTrue(text.contains(#"smime_milter_signing_duration_seconds_bucket{le="0.01"} 0"#), text)
        XCTAssertTrue(text.contains("smime_milter_message_duration_seconds_count 2"), text)
        XCTAssertTrue(text.contains(#"smime_milter_verifications_total{result="fail"} 1"#), text)
        XCTAssertTrue(text.contains("smime_milter_spooled_bytes_total 5000000"), text)
        XCTAssertTrue(text.contains("smime_milter_config_last_reload_successful 1"), text)
    }

    func testCounterNamesSplitIntoDirectionOutcomeAndReason() {
        XCTAssertTrue(DaemonMetrics.split("signed") == ("outgoing", "signed", ""))
        XCTAssertTrue(DaemonMetrics.split("skipped.no-signer") == ("outgoing", "skipped", "no-signer"))
        XCTAssertTrue(DaemonMetrics.split("skipped.incoming") == ("incoming", "skipped", "incoming"))
        XCTAssertTrue(DaemonMetrics.split("verified.temperror") == ("incoming", "verified", "temperror"))
        XCTAssertTrue(DaemonMetrics.split("sender-signed.pass") == ("outgoing", "sender-signed", "pass"))
    }
}
