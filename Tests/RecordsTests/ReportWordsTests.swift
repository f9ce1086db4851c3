import Foundation
import Records
import TestSupport
import Testing

/// The words people read in the report: reasons, periods and the time it was made.
@Suite struct ReportWordsTests {
    static let vietnam = TimeZone(identifier: "Asia/Ho_Chi_Minh")!
    /// 2026-12-01 09:30 in Việt Nam (02:30 UTC).
    static let stamp = Date(timeIntervalSince1970: 1_796_092_200)

    /// Every reason code the gateway writes into an unsigned record, read from its source, so
    /// that a new one without words fails here.
    static func gatewayReasonCodes() throws -> Set<String> {
        let source = try String(contentsOfFile: TestPKI.repositoryRoot + "/Sources/Gateway/Gateway.swift", encoding: .utf8)
        let pattern = try NSRegularExpression(pattern: #"(?:skip\(|fail\(\s*)"([a-z-]+)""#)
        let matches = pattern.matches(in: source, range: NSRange(source.startIndex..., in: source))
        return Set(matches.compactMap { Range($0.range(at: 1), in: source).map { String(source[$0]) } })
    }

    @Test func everyReasonTheGatewayRecordsHasVietnameseAndEnglishWords() throws {
        let codes = try Self.gatewayReasonCodes()
        #expect(codes.isSuperset(of: ["no-signer", "bounce", "encrypted", "oversize", "no-from", "token", "malformed"]), "\(codes)")
        let known = Set(ReportWords.reasons.map(\.code))
        #expect(known.isSuperset(of: codes), "no words for \(codes.subtracting(known))")
        for (code, vi, en) in ReportWords.reasons {
            #expect(!vi.isEmpty && !en.isEmpty && vi != en && vi != code && en != code, "\(code)")
            #expect(ReportWords.reason(code, language: .vi) == vi && ReportWords.reason(code, language: .en) == en)
        }
        #expect(ReportWords.reason("malformed", language: .vi) == "thư sai cấu trúc MIME")
        // A code this version does not know is shown as such, not hidden.
        #expect(ReportWords.reason("quota", language: .vi) == "lý do khác (quota)")
    }

    @Test func theTimeIsTheServersWithItsZoneNamedAndTheDayFirst() {
        #expect(
            ReportWords.generated(Self.stamp, timeZone: Self.vietnam, language: .vi)
                == "Lập lúc 09:30 ngày 01/12/2026 (giờ Việt Nam, UTC+7)")
        #expect(
            ReportWords.generated(Self.stamp, timeZone: TimeZone(identifier: "Asia/Saigon")!, language: .en)
                == "Generated at 09:30 on 01/12/2026 (Vietnam time, UTC+7)")
        #expect(ReportWords.generated(Self.stamp, timeZone: TimeZone(identifier: "UTC")!, language: .vi) == "Lập lúc 02:30 ngày 01/12/2026 (UTC)")
        #expect(
            ReportWords.generated(Self.stamp, timeZone: TimeZone(identifier: "Asia/Kolkata")!, language: .vi)
                == "Lập lúc 08:00 ngày 01/12/2026 (giờ Asia/Kolkata, UTC+5:30)")
    }

    @Test func periodsAreSaidAsPeopleSayThem() {
        #expect(ReportWords.period("2026-11", language: .vi) == "tháng 11/2026")
        #expect(ReportWords.period("2026-11", language: .en) == "November 2026")
        #expect(ReportWords.period("2026", language: .vi) == "năm 2026")
        #expect(ReportWords.period("2026-01-01..2026-06-30", language: .vi) == "từ 01/01/2026 đến 30/06/2026")
        #expect(ReportWords.period("all", language: .vi) == "toàn bộ số liệu")
    }

    /// The timer's period is the previous month of the server's calendar, not of UTC: at
    /// 01:00 on 1 December in Việt Nam it is still 30 November in UTC.
    @Test func lastMonthAndLastYearCountFromTheServersToday() throws {
        let earlyFirst = Date(timeIntervalSince1970: 1_796_061_600)  // 2026-11-30 18:00 UTC, 01:00 on 1 Dec in Việt Nam
        #expect(try ReportRange.previous("last-month", before: earlyFirst, timeZone: Self.vietnam) == .month("2026-11"))
        #expect(try ReportRange.previous("last-month", before: earlyFirst, timeZone: TimeZone(identifier: "UTC")!) == .month("2026-10"))
        let january = Date(timeIntervalSince1970: 1_767_225_600)  // 2026-01-01 00:00 UTC
        #expect(try ReportRange.previous("last-month", before: january, timeZone: Self.vietnam) == .month("2025-12"))
        #expect(try ReportRange.previous("last-year", before: january, timeZone: Self.vietnam) == .year("2025"))
        #expect { try ReportRange.previous("yesterday", before: january, timeZone: Self.vietnam) } throws: {
            "\($0)".contains("use last-month or last-year")
        }
    }
}
