import Foundation
import Testing

@testable import Records

/// The day a record is counted under: written digit by digit, as `String(format:)` wrote it.
@Suite struct EventStoreDayTests {
    @Test func theDayIsTheLocalDateWithFourDigitYearAndTwoDigitMonthAndDay() {
        // Every day from 1999 to 2051, at midday, and the first and last second of some days.
        var seconds = 915_192_000.0  // 1999-01-01 12:00 UTC
        var checked = 0
        while seconds < 2_556_000_000 {
            for offset in [0.0, -43_199, 43_199] {
                let date = Date(timeIntervalSince1970: seconds + offset)
                var time = time_t(date.timeIntervalSince1970)
                var parts = tm()
                localtime_r(&time, &parts)
                let expected = String(
                    format: "%04d-%02d-%02d", Int(parts.tm_year) + 1900, Int(parts.tm_mon) + 1, Int(parts.tm_mday))
                #expect(EventStore.day(date) == expected)
                checked += 1
            }
            seconds += 86_400 * 7 + 3_600
        }
        #expect(checked > 7_000)
        #expect(EventStore.day(Date(timeIntervalSince1970: 0)).utf8.count == 10)
    }
}
