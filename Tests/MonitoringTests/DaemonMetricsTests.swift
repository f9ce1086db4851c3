import Foundation
import SMIME
import TestSupport
import Token
import XCTest

@testable import Gateway

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

final class TokenStateAcrossReloadTests: XCTestCase {
    func state(_ text: String) -> String? {
        text.split(separator: "\n").first { $0.hasPrefix("smime_milter_token_state{") && $0.hasSuffix(" 1.0") }
            .map { String($0) }
    }

    /// A token refused at its final try shows `final try` (by the error's code), and a reload
    /// that keeps the line's key keeps the state until mail reaches the token again; a reload
    /// that gives the line another key drops it.
    func testAFinalTryStateOutlivesAReloadThatKeepsTheKey() throws {
        let table = try SigningTable.parse("*@so.example pkcs11:token=So-Token;object=seal?pin-source=file:/p", file: "signing-table")
        let first = Gateway(
            configuration: Configuration(), signingTable: table, authorizedSigners: nil, verifier: nil, statistics: Statistics())
        first.tokenTracker.failed(
            table.entries[0], TokenError(.finalTry, operation: "logging in to token So-Token", detail: "final try"))
        let metrics = DaemonMetrics(version: "1")
        func scrape(_ gateway: Gateway) -> String {
            String(decoding: metrics.exposition(.init(gateway: gateway, recordsWaiting: nil, recordsDropped: nil)), as: UTF8.self)
        }
        XCTAssertEqual(state(scrape(first)), #"smime_milter_token_state{unit="so.example",token="So-Token",state="final try"} 1.0"#)

        let reloaded = Gateway(
            configuration: Configuration(), signingTable: try SigningTable.parse(
                "*@so.example pkcs11:token=So-Token;object=seal?pin-source=file:/p", file: "signing-table"),
            authorizedSigners: nil, verifier: nil, statistics: first.statistics, tokenTracker: first.tokenTracker)
        XCTAssertEqual(state(scrape(reloaded)), #"smime_milter_token_state{unit="so.example",token="So-Token",state="final try"} 1.0"#)

        let rekeyed = Gateway(
            configuration: Configuration(), signingTable: try SigningTable.parse(
                "*@so.example pkcs11:token=So-Token-2;object=seal?pin-source=file:/p", file: "signing-table"),
            authorizedSigners: nil, verifier: nil, statistics: first.statistics, tokenTracker: first.tokenTracker)
        XCTAssertNil(state(scrape(rekeyed)))
    }
}

final class ProvinceSizedScrapeTests: XCTestCase {
    /// The province's size: 13 units and 20 tokens, each with a certificate and its chain. Every
    /// token and every signer certificate has its series. (What a scrape costs is measured by
    /// `make bench`, not here: a time bound in a test measures the machine.)
    func testAScrapeWithThirteenUnitsAndTwentyTokensListsEveryTokenAndCertificate() throws {
        let pki = try TestPKI.shared
        let gateway = try ScrapeSample.gateway(
            units: 13, tokens: 20, certificate: pki.path("certs/vanphong.pem"), chain: pki.path("ca/chain.pem"))
        let metrics = DaemonMetrics(version: "1")
        let state = DaemonMetrics.ScrapeState(gateway: gateway, recordsWaiting: 0, recordsDropped: 0)
        let first = String(decoding: metrics.exposition(state), as: UTF8.self)
        let states = first.split(separator: "\n").filter { $0.hasPrefix("smime_milter_token_state{") && $0.hasSuffix(" 1.0") }
        XCTAssertEqual(states.count, 20)
        XCTAssertEqual(states.filter { $0.contains(#"unit="Đơn vị "#) && $0.contains(#"state="locked""#) }.count, 20, states.joined(separator: "\n"))
        XCTAssertEqual(
            first.split(separator: "\n").filter { $0.hasPrefix("smime_milter_certificate_expiry_timestamp_seconds{") && $0.contains("role=\"signer\"") }.count, 20)
        // A second scrape reuses the series of the first and says the same.
        XCTAssertEqual(String(decoding: metrics.exposition(state), as: UTF8.self), first)
    }
}
