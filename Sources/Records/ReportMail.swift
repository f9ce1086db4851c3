public import Foundation
import SMIME
internal import MIME

/// The report as one mail message: a short text summary carrying the indicator, the HTML page as
/// its alternative, and the CSV attached (`multipart/mixed` holding `multipart/alternative` and
/// the CSV). Built whole before anything is handed to sendmail.
public struct ReportMail: Sendable {
    public let from: String
    public let to: [String]
    public let subject: String
    /// The message in CRLF form, headers and body.
    public let message: [UInt8]

    /// - Parameters:
    ///   - time: when it is made (`Date`, the HTML page's stamp), shown in `timeZone`.
    ///   - identifier: unique text for the boundaries and the Message-ID.
    public init(
        report: Report, language: ReportLanguage, from: String, to: [String], generatedAt time: Date, timeZone: TimeZone,
        identifier: String
    ) {
        self.from = from
        self.to = to
        subject = Self.subject(report, language: language)
        let html = report.rendered(.html, language: language, generatedAt: time, timeZone: timeZone)
        let csv = report.rendered(.csv, language: language, generatedAt: time, timeZone: timeZone)
        let summary = Self.summary(report, language: language, generatedAt: time, timeZone: timeZone)
        let mixed = "=_report-mixed-\(identifier)"
        let alternative = "=_report-alternative-\(identifier)"
        let domain = from.split(separator: "@").last.map(String.init) ?? "localhost"
        let file = "bao-cao-ky-so-\(report.label.replacingOccurrences(of: "..", with: "_")).csv"

        var head = "From: \(from)\r\n"
        head += HeaderField.fold(name: "To", value: to.joined(separator: ", ")) + "\r\n"
        head += HeaderField.fold(name: "Subject", value: EncodedWord.encode(subject)) + "\r\n"
        head += "Date: \(DateText.rfc5322(time, offset: timeZone.secondsFromGMT(for: time)))\r\n"
        head += "Message-ID: <report-\(identifier)@\(domain)>\r\n"
        head += "MIME-Version: 1.0\r\n"
        head += "Content-Type: multipart/mixed; boundary=\"\(mixed)\"\r\n"
        head += "\r\n"
        var out = Array(head.utf8)
        func text(_ line: String) { out += Array(line.utf8) }
        text("--\(mixed)\r\nContent-Type: multipart/alternative; boundary=\"\(alternative)\"\r\n\r\n")
        text("--\(alternative)\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\n")
        out += QuotedPrintable.encode(Array(summary.utf8))
        text("\r\n--\(alternative)\r\nContent-Type: text/html; charset=utf-8\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        out += Base64.encode(Array(html.utf8))
        text("--\(alternative)--\r\n\r\n")
        text("--\(mixed)\r\nContent-Type: text/csv; charset=utf-8; name=\"\(file)\"\r\n")
        text("Content-Disposition: attachment; filename=\"\(file)\"\r\nContent-Transfer-Encoding: base64\r\n\r\n")
        out += Base64.encode(Array(csv.utf8))
        text("--\(mixed)--\r\n")
        message = out
    }

    /// `Báo cáo ký số thư điện tử tháng 11/2026: 8/13 đơn vị, Đạt`.
    public static func subject(_ report: Report, language: ReportLanguage) -> String {
        let indicator = report.indicator
        let period = ReportWords.period(report.label, language: language)
        return language == .vi
            ? "Báo cáo ký số thư điện tử \(period): \(indicator.signingUnits)/\(indicator.units) đơn vị, "
                + (indicator.met ? "Đạt" : "Chưa đạt")
            : "Signed e-mail report, \(period): \(indicator.signingUnits)/\(indicator.units) units, "
                + (indicator.met ? "met" : "not met")
    }

    /// The plain-text part: the indicator, the units below the share, where the rest is.
    static func summary(
        _ report: Report, language: ReportLanguage, generatedAt time: Date, timeZone: TimeZone
    ) -> String {
        let indicator = report.indicator
        let overall = report.overall
        let behind = report.plannedUnits.filter { (overall[$0]?.share ?? 0) < report.unitShare }
        let percent = Report.percent
        let period = ReportWords.period(report.label, language: language)
        var lines: [String]
        if language == .vi {
            lines = [
                "Báo cáo ký số thư điện tử \(period)", "",
                "Chỉ tiêu: \(indicator.signingUnits)/\(indicator.units) đơn vị ký số từ \(percent(indicator.unitShare)) thư gửi đi "
                    + "trở lên (\(percent(indicator.share))); mục tiêu \(percent(indicator.target)): "
                    + (indicator.met ? "Đạt" : "Chưa đạt"),
            ]
            if !behind.isEmpty {
                lines += ["", "Đơn vị chưa đạt:"]
                lines += behind.map { "- \($0): " + (overall[$0]?.share.map { "ký \(percent($0)) thư gửi đi" } ?? "không gửi thư nào") }
            }
            lines += [
                "", "Báo cáo đầy đủ (bảng và biểu đồ) ở phần HTML của thư này; số liệu chi tiết trong tệp CSV đính kèm.",
                ReportWords.generated(time, timeZone: timeZone, language: language),
            ]
        } else {
            lines = [
                "Signed e-mail report, \(period)", "",
                "Indicator: \(indicator.signingUnits) of \(indicator.units) units sign at least \(percent(indicator.unitShare)) of "
                    + "the mail they send (\(percent(indicator.share))); target \(percent(indicator.target)): "
                    + (indicator.met ? "met" : "not met"),
            ]
            if !behind.isEmpty {
                lines += ["", "Units below the share:"]
                lines += behind.map { "- \($0): " + (overall[$0]?.share.map { "\(percent($0)) of sent mail signed" } ?? "sent no mail") }
            }
            lines += [
                "", "The full report (tables and charts) is the HTML part of this message; the figures are in the attached CSV file.",
                ReportWords.generated(time, timeZone: timeZone, language: language),
            ]
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

}
