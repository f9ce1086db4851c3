import Foundation
import SMIME
import Testing

/// Dates by hand, against Foundation's formatters as the reference.
@Suite struct DateTextTests {
    static func reference(_ format: String, _ zone: String = "UTC") -> DateFormatter {
        let formatter = DateFormatter()
        formatter.locale = Locale(identifier: "en_US_POSIX")
        formatter.timeZone = TimeZone(identifier: zone)
        formatter.dateFormat = format
        return formatter
    }

    static let parsed: [(String, Double)] = [
        ("Sun, 29 Nov 2026 20:53:36 +0700 (ICT)", 1_795_960_416),
        ("29 Nov 2026 13:53:36 GMT", 1_795_960_416),
        ("Sun,29 Nov 2026 13:53:36 +0000", 1_795_960_416),
        ("Sun 29 Nov 2026 13:53:36 UT", 1_795_960_416),
        ("29 Nov 2026 13:53 +0000", 1_795_960_380),
        ("Sun, 29 Nov 26 08:53:36 EST", 1_795_960_416),
        ("Mon, 29 Feb 2016 00:00:00 -0130", 1_456_709_400),
    ]

    @Test(arguments: parsed)
    func rfc5322DatesParse(text: String, seconds: Double) {
        #expect(DateText.parseRFC5322(text) == Date(timeIntervalSince1970: seconds), "\(text)")
    }

    /// RFC 5322 section 4.3: a three-digit year is counted from 1900.
    @Test func aThreeDigitYearIsFrom1900() {
        #expect(DateText.parseRFC5322("Sun, 29 Nov 126 13:53:36 Z") == Date(timeIntervalSince1970: 1_795_960_416))
    }

    @Test(arguments: ["", "yesterday", "32 Nov 2026 10:00:00 +0000", "29 Nov 2026 25:00 +0000", "29 Nov 2026 10:00 +07", "29 Foo 2026 10:00 +0000"])
    func notADateIsNil(text: String) {
        #expect(DateText.parseRFC5322(text) == nil)
    }

    /// Every format against the reference over dates from 1976 to 2099 (Vietnam's time has been
    /// UTC+7 since 1975; the reference knows the earlier zones).
    @Test func formattingAndParsingAgreeWithFoundation() {
        let rfc = Self.reference("EEE, d MMM yyyy HH:mm:ss Z", "Asia/Ho_Chi_Minh")
        let iso = Self.reference("yyyy-MM-dd'T'HH:mm:ss'Z'")
        let vietnamese = Self.reference("dd/MM/yyyy", "Asia/Ho_Chi_Minh")
        var seconds: UInt64 = 12345
        for _ in 0..<2000 {
            seconds = (seconds &* 6_364_136_223_846_793_005 &+ 1_442_695_040_888_963_407)
            let date = Date(timeIntervalSince1970: TimeInterval(189_302_400 + seconds % (4_102_444_800 - 189_302_400)))
            #expect(DateText.parseRFC5322(rfc.string(from: date)) == date)
            #expect(DateText.iso8601(date) == iso.string(from: date))
            #expect(DateText.vietnameseDay(date) == vietnamese.string(from: date))
            #expect(DateText.day(date) == String(iso.string(from: date).prefix(10)))
        }
    }

    /// Written as RFC 5322 says, and read back by our parser to the same second, east and west of
    /// UTC and around a day's and a year's end.
    @Test(arguments: [0, 7 * 3600, -5 * 3600 - 1800, 14 * 3600])
    func rfc5322DatesAreWrittenAndReadBack(offset: Int) throws {
        #expect(DateText.rfc5322(Date(timeIntervalSince1970: 1_796_083_200), offset: 7 * 3600) == "Tue, 01 Dec 2026 07:00:00 +0700")
        #expect(DateText.rfc5322(Date(timeIntervalSince1970: 0), offset: -5 * 3600 - 1800) == "Wed, 31 Dec 1969 18:30:00 -0530")
        for seconds in [0.0, 1_796_086_799, 1_798_761_599, 1_798_761_600, 951_782_400] {
            let date = Date(timeIntervalSince1970: seconds)
            let text = DateText.rfc5322(date, offset: offset)
            #expect(DateText.parseRFC5322(text) == date, "\(text)")
        }
    }
}
