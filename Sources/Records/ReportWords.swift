public import Foundation

/// The words people read in the report: why mail left unsigned, which period, when the report
/// was made. Codes stay codes in the records and the CSV; they become words here, at the edge.
public enum ReportWords {
    // MARK: reasons

    /// Every reason an unsigned record can carry (`Gateway.sign`), with its Vietnamese and
    /// English words. `unknown` is a record without a reason.
    public static let reasons: [(code: String, vi: String, en: String)] = [
        ("no-signer", "chưa có chứng thư số cho địa chỉ gửi", "no certificate for the sender's address"),
        ("no-from", "thư không ghi địa chỉ người gửi (From)", "no sender address (From)"),
        ("bounce", "thư báo lỗi tự động", "automatic bounce message"),
        ("encrypted", "thư đã được mã hóa", "already encrypted"),
        ("oversize", "thư vượt dung lượng được ký", "too large to sign"),
        ("unauthorized", "tài khoản không được gửi bằng địa chỉ này", "login may not send as this address"),
        ("token", "thiết bị ký số (token) không sẵn sàng", "signing token unavailable"),
        ("signing", "lỗi khi ký số", "signing failed"),
        ("malformed", "thư sai cấu trúc MIME", "malformed MIME message"),
        ("unknown", "không ghi lý do", "no reason recorded"),
    ]

    /// The words for a reason code; a code this version does not know is named as such, so that
    /// nothing is hidden.
    public static func reason(_ code: String, language: ReportLanguage) -> String {
        if let known = reasons.first(where: { $0.code == code }) { return language == .vi ? known.vi : known.en }
        return language == .vi ? "lý do khác (\(code))" : "other reason (\(code))"
    }

    // MARK: periods

    static let monthNames = [
        "January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November",
        "December",
    ]

    /// A report's or a period's label (`2026-11`, `2026`, `2026-01-01..2026-06-30`, `all`) as a
    /// person says it: `tháng 11/2026`, `năm 2026`, `từ 01/01/2026 đến 30/06/2026`.
    public static func period(_ label: String, language: ReportLanguage) -> String {
        if let (year, month) = ReportRange.parseMonth(label) {
            return language == .vi ? String(format: "tháng %d/%04d", month, year) : "\(monthNames[month - 1]) \(year)"
        }
        if label.count == 4, let year = Int(label) {
            return language == .vi ? "năm \(year)" : "year \(year)"
        }
        let bounds = label.components(separatedBy: "..")
        if bounds.count == 2, let first = ReportRange.parseDay(bounds[0]), let last = ReportRange.parseDay(bounds[1]) {
            return language == .vi
                ? "từ \(day(first)) đến \(day(last))" : "\(day(first)) to \(day(last))"
        }
        if label == "all" { return language == .vi ? "toàn bộ số liệu" : "all records" }
        return label
    }

    /// A month on a chart's axis: `11/2026`.
    static func shortMonth(_ label: String) -> String {
        guard let (year, month) = ReportRange.parseMonth(label) else { return label }
        return String(format: "%02d/%04d", month, year)
    }

    /// Day first, as Vietnamese (and British) readers write it: `01/12/2026`.
    static func day(_ date: (Int, Int, Int)) -> String {
        String(format: "%02d/%02d/%04d", date.2, date.1, date.0)
    }

    // MARK: time

    /// When the report was made, in the server's time zone, named:
    /// `Lập lúc 09:30 ngày 01/12/2026 (giờ Việt Nam, UTC+7)`.
    public static func generated(_ time: Date, timeZone: TimeZone, language: ReportLanguage) -> String {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let c = calendar.dateComponents([.year, .month, .day, .hour, .minute], from: time)
        let clock = String(format: "%02d:%02d", c.hour ?? 0, c.minute ?? 0)
        let date = day((c.year ?? 0, c.month ?? 0, c.day ?? 0))
        let zone = zoneName(timeZone, at: time, language: language)
        return language == .vi ? "Lập lúc \(clock) ngày \(date) (\(zone))" : "Generated at \(clock) on \(date) (\(zone))"
    }

    /// `giờ Việt Nam, UTC+7`; another zone by its name: `giờ Europe/Paris, UTC+1`; `UTC`.
    static func zoneName(_ timeZone: TimeZone, at time: Date, language: ReportLanguage) -> String {
        let seconds = timeZone.secondsFromGMT(for: time)
        let hours = abs(seconds) / 3600
        let minutes = abs(seconds) % 3600 / 60
        let offset = "UTC" + (seconds < 0 ? "-" : "+") + (minutes == 0 ? "\(hours)" : String(format: "%d:%02d", hours, minutes))
        switch timeZone.identifier {
        case "Asia/Ho_Chi_Minh", "Asia/Saigon":
            return language == .vi ? "giờ Việt Nam, \(offset)" : "Vietnam time, \(offset)"
        case "UTC", "GMT", "Etc/UTC", "Etc/GMT", "Etc/Universal", "Universal", "Zulu", "Etc/Zulu":
            return "UTC"
        default:
            return language == .vi ? "giờ \(timeZone.identifier), \(offset)" : "\(timeZone.identifier) time, \(offset)"
        }
    }
}
