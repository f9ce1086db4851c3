import Foundation
import Gateway
import MIME
import Records
import Testing

/// The report as a mail message: a text summary and the HTML page as alternatives, the CSV
/// attached, the Subject in Vietnamese with the period and the indicator.
@Suite struct ReportMailTests {
    static let vietnam = TimeZone(identifier: "Asia/Ho_Chi_Minh")!
    static let stamp = Date(timeIntervalSince1970: 1_796_092_200)

    func november() throws -> Report {
        let records = try ReportTests()
        return try records.report([records.november()], range: .month("2026-11"))
    }

    func mail(_ report: Report, language: ReportLanguage) -> ReportMail {
        ReportMail(
            report: report, language: language, from: "baocao@stttt.dienbien.gov.vn",
            to: ["vanphong.ubnd@dienbien.gov.vn", "lanhdao@stttt.dienbien.gov.vn"], generatedAt: Self.stamp,
            timeZone: Self.vietnam, identifier: "test-1")
    }

    @Test func theSubjectSaysThePeriodAndTheIndicatorInVietnamese() throws {
        let report = try november()
        #expect(ReportMail.subject(report, language: .vi) == "Báo cáo ký số thư điện tử tháng 11/2026: 2/3 đơn vị, Đạt")
        #expect(ReportMail.subject(report, language: .en) == "Signed e-mail report, November 2026: 2/3 units, met")
        let message = try Message(bytes: mail(report, language: .vi).message)
        let subject = try #require(message.root.header("Subject"))
        // RFC 2047 on the wire, the words back when decoded.
        #expect(subject.rawValue.allSatisfy { $0 < 0x80 })
        #expect(EncodedWord.decode(subject.value) == "Báo cáo ký số thư điện tử tháng 11/2026: 2/3 đơn vị, Đạt")
    }

    @Test func theBodyIsTheSummaryAndThePageAsAlternativesWithTheCSVAttached() throws {
        let report = try november()
        let message = try Message(bytes: mail(report, language: .vi).message)
        #expect(message.root.contentType.value == "multipart/mixed")
        #expect(message.root.header("MIME-Version")?.value.trimmingCharacters(in: .whitespaces) == "1.0")
        let parts = message.root.parts
        try #require(parts.count == 2)
        #expect(parts[0].contentType.value == "multipart/alternative")
        let alternatives = parts[0].parts
        try #require(alternatives.count == 2)
        #expect(alternatives.map(\.contentType.value) == ["text/plain", "text/html"])
        let summary = String(decoding: message.decodedBody(of: alternatives[0]), as: UTF8.self)
        #expect(summary.contains("Chỉ tiêu: 2/3 đơn vị ký số từ 50% thư gửi đi trở lên (67%); mục tiêu 50%: Đạt"))
        #expect(summary.contains("Đơn vị chưa đạt:\r\n- Ủy ban nhân dân huyện Mường Nhé: không gửi thư nào\r\n\r\n"))
        #expect(summary.contains("Lập lúc 09:30 ngày 01/12/2026 (giờ Việt Nam, UTC+7)"))
        let html = String(decoding: message.decodedBody(of: alternatives[1]), as: UTF8.self)
        #expect(html == report.rendered(.html, language: .vi, generatedAt: Self.stamp, timeZone: Self.vietnam))
        #expect(parts[1].contentType.value == "text/csv")
        #expect(parts[1].header("Content-Disposition")?.value.contains("attachment; filename=\"bao-cao-ky-so-2026-11.csv\"") == true)
        let csv = String(decoding: message.decodedBody(of: parts[1]), as: UTF8.self)
        #expect(csv == report.rendered(.csv, language: .vi, generatedAt: Self.stamp, timeZone: Self.vietnam))
        // Every line fits SMTP's limit, and the message is 7-bit: nothing for the gateway to convert.
        let bytes = mail(report, language: .vi).message
        #expect(bytes.allSatisfy { $0 < 0x80 })
        #expect(bytes.split(separator: 0x0A).allSatisfy { $0.count <= 78 })
    }

    @Test func theEnglishMailIsEnglishAndAddressesAreChecked() throws {
        let message = try Message(bytes: mail(try november(), language: .en).message)
        let summary = String(decoding: message.decodedBody(of: message.root.parts[0].parts[0]), as: UTF8.self)
        #expect(summary.contains("Indicator: 2 of 3 units sign at least 50% of the mail they send (67%); target 50%: met"))
        #expect(Configuration.isMailAddress("vanphong.ubnd@dienbien.gov.vn"))
        for bad in ["Văn phòng <vanphong.ubnd@dienbien.gov.vn>", "vanphong", "-oQ/tmp@x.vn", "a@b", "a b@c.vn"] {
            #expect(!Configuration.isMailAddress(bad), "\(bad)")
        }
    }
}
