public import Foundation

/// Dates written for people and headers, by hand: Foundation's formatters go through ICU, and
/// making one per message cost more than the rest of a verdict's header (BENCHMARKS.md).
public enum DateText {
    /// `2026-11-29T13:53:36Z`.
    public static func iso8601(_ date: Date) -> String {
        let (year, month, day, hour, minute, second) = civil(date, offset: 0)
        return String(format: "%04d-%02d-%02dT%02d:%02d:%02dZ", year, month, day, hour, minute, second)
    }

    /// `2026-11-29` (UTC).
    public static func day(_ date: Date) -> String {
        let (year, month, day, _, _, _) = civil(date, offset: 0)
        return String(format: "%04d-%02d-%02d", year, month, day)
    }

    /// `29/11/2026`, as dates are written in Vietnam, in Vietnam's time (UTC+7, no summer time).
    public static func vietnameseDay(_ date: Date) -> String {
        let (year, month, day, _, _, _) = civil(date, offset: 7 * 3600)
        return String(format: "%02d/%02d/%04d", day, month, year)
    }

    /// `Tue, 01 Dec 2026 07:00:00 +0700` (RFC 5322 section 3.3), in the zone `offset` seconds east
    /// of UTC.
    public static func rfc5322(_ date: Date, offset: Int) -> String {
        let (year, month, day, hour, minute, second) = civil(date, offset: offset)
        let days = Int(((date.timeIntervalSince1970.rounded(.down) + Double(offset)) / 86400).rounded(.down))
        let weekday = ((days % 7) + 7 + 4) % 7  // 1970-01-01 was a Thursday
        let zone = abs(offset) / 60
        func two(_ number: Int) -> String { number < 10 ? "0\(number)" : "\(number)" }
        return "\(weekdayNames[weekday]), \(two(day)) \(monthNames[month - 1]) \(year) "
            + "\(two(hour)):\(two(minute)):\(two(second)) \(offset < 0 ? "-" : "+")\(two(zone / 60))\(two(zone % 60))"
    }

    static let weekdayNames = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"]
    static let monthNames = ["Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"]

    /// Year, month, day, hour, minute, second of `date` shifted by `offset` seconds.
    static func civil(_ date: Date, offset: Int) -> (Int, Int, Int, Int, Int, Int) {
        let seconds = Int(date.timeIntervalSince1970.rounded(.down)) + offset
        let days = Int((Double(seconds) / 86400).rounded(.down))
        let inDay = seconds - days * 86400
        // Howard Hinnant's civil_from_days.
        let z = days + 719_468
        let era = (z >= 0 ? z : z - 146_096) / 146_097
        let dayOfEra = z - era * 146_097
        let yearOfEra = (dayOfEra - dayOfEra / 1460 + dayOfEra / 36524 - dayOfEra / 146_096) / 365
        let dayOfYear = dayOfEra - (365 * yearOfEra + yearOfEra / 4 - yearOfEra / 100)
        let mp = (5 * dayOfYear + 2) / 153
        let day = dayOfYear - (153 * mp + 2) / 5 + 1
        let month = mp < 10 ? mp + 3 : mp - 9
        let year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0)
        return (year, month, day, inDay / 3600, inDay % 3600 / 60, inDay % 60)
    }

    /// Days since 1970-01-01 of a civil date (Howard Hinnant's days_from_civil).
    static func days(year: Int, month: Int, day: Int) -> Int {
        let y = month <= 2 ? year - 1 : year
        let era = (y >= 0 ? y : y - 399) / 400
        let yearOfEra = y - era * 400
        let dayOfYear = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1
        let dayOfEra = yearOfEra * 365 + yearOfEra / 4 - yearOfEra / 100 + dayOfYear
        return era * 146_097 + dayOfEra - 719_468
    }

    /// An RFC 5322 date (section 3.3), with the obsolete forms of section 4.3 mail still carries:
    /// no day of week, no seconds, two- or three-digit years, named zones, a trailing comment
    /// such as "(ICT)". Nil when it is not one.
    public static func parseRFC5322(_ value: String) -> Date? {
        var text = Substring(value)
        if let comment = text.firstIndex(of: "(") { text = text[..<comment] }
        var words = text.split(whereSeparator: { $0 == " " || $0 == "\t" || $0 == "\r" || $0 == "\n" }).map(String.init)
        if let first = words.first, let comma = first.firstIndex(of: ",") {
            let rest = String(first[first.index(after: comma)...])  // "Sun," or "Sun,29"
            if rest.isEmpty { words.removeFirst() } else { words[0] = rest }
        } else if let first = words.first, first.allSatisfy(\.isLetter) {
            words.removeFirst()  // a day of the week without its comma
        }
        guard words.count >= 4, let day = Int(words[0]), (1...31).contains(day), let month = months[words[1].lowercased()],
            var year = Int(words[2])
        else { return nil }
        if words[2].count == 2 { year += year < 50 ? 2000 : 1900 } else if words[2].count == 3 { year += 1900 }
        let time = words[3].split(separator: ":").map { Int($0) }
        guard time.count == 2 || time.count == 3, time.allSatisfy({ $0 != nil }) else { return nil }
        let hour = time[0]!, minute = time[1]!, second = time.count == 3 ? time[2]! : 0
        guard (0...23).contains(hour), (0...59).contains(minute), (0...60).contains(second) else { return nil }
        let offset = words.count > 4 ? zone(words[4]) : 0
        guard let offset else { return nil }
        let seconds = days(year: year, month: month, day: day) * 86400 + hour * 3600 + minute * 60 + second - offset
        return Date(timeIntervalSince1970: TimeInterval(seconds))
    }

    private static let months = [
        "jan": 1, "feb": 2, "mar": 3, "apr": 4, "may": 5, "jun": 6, "jul": 7, "aug": 8, "sep": 9, "oct": 10, "nov": 11,
        "dec": 12,
    ]

    /// `+0700`, `-0500`, or an obsolete name; military letters and unknown names count as UTC
    /// (RFC 5322 section 4.3 says they carry no information).
    private static func zone(_ text: String) -> Int? {
        if let sign = text.first, sign == "+" || sign == "-", text.count == 5, let digits = Int(text.dropFirst()) {
            let seconds = (digits / 100) * 3600 + (digits % 100) * 60
            return sign == "-" ? -seconds : seconds
        }
        let named = ["ut": 0, "gmt": 0, "z": 0, "est": -5, "edt": -4, "cst": -6, "cdt": -5, "mst": -7, "mdt": -6, "pst": -8, "pdt": -7]
        if let hours = named[text.lowercased()] { return hours * 3600 }
        return text.allSatisfy(\.isLetter) ? 0 : nil
    }
}
