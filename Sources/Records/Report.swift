public import Foundation
public import Gateway

/// The province's report: per period and unit, what was sent and how much of it was signed,
/// what came in and how it verified; and the plan's indicator (units whose share signed reaches
/// `unitShare`, out of all units of the Units table, against `target`).
public struct Report: Sendable {
    /// What one unit sent and received in one period.
    public struct Figures: Sendable, Equatable {
        /// Messages that left (deferred and rejected ones are not counted: they did not leave).
        public var outgoing = 0
        public var signedByGateway = 0
        public var signedBySender = 0
        public var unsigned = 0
        public var unsignedReasons: [String: Int] = [:]
        public var incoming = 0
        public var incomingPass = 0
        public var incomingFail = 0
        public var incomingOther = 0

        public init() {}

        public var signed: Int { signedByGateway + signedBySender }
        /// Signed out of sent; nil when nothing was sent.
        public var share: Double? { outgoing == 0 ? nil : Double(signed) / Double(outgoing) }

        /// The commonest reasons for unsigned mail, most frequent first.
        public var commonestReasons: [(reason: String, count: Int)] {
            unsignedReasons.sorted { $0.value != $1.value ? $0.value > $1.value : $0.key < $1.key }.map { ($0.key, $0.value) }
        }

        static func + (a: Figures, b: Figures) -> Figures {
            var sum = a
            sum.outgoing += b.outgoing
            sum.signedByGateway += b.signedByGateway
            sum.signedBySender += b.signedBySender
            sum.unsigned += b.unsigned
            sum.unsignedReasons.merge(b.unsignedReasons, uniquingKeysWith: +)
            sum.incoming += b.incoming
            sum.incomingPass += b.incomingPass
            sum.incomingFail += b.incomingFail
            sum.incomingOther += b.incomingOther
            return sum
        }
    }

    public struct Period: Sendable {
        public let label: String
        /// By unit name.
        public let units: [String: Figures]

        public var total: Figures { units.values.reduce(Figures(), +) }
    }

    /// The plan's indicator over the whole report.
    public struct Indicator: Sendable, Equatable {
        public let signingUnits: Int
        public let units: Int
        public let unitShare: Double
        public let target: Double

        public var share: Double { units == 0 ? 0 : Double(signingUnits) / Double(units) }
        public var met: Bool { units > 0 && share >= target }
    }

    /// The report's whole range, e.g. `2026-11`, `2026`, `2026-01-01..2026-06-30`.
    public let label: String
    public let periods: [Period]
    /// Every unit, in order: the Units table's first, then others seen in the records.
    public let units: [String]
    /// The units the indicator counts: the Units table's, or every unit seen when there is none.
    public let plannedUnits: [String]
    public let unitShare: Double
    public let target: Double

    /// The figures of the whole range.
    public var overall: [String: Figures] {
        periods.reduce(into: [:]) { sum, period in sum.merge(period.units, uniquingKeysWith: +) }
    }

    public var indicator: Indicator { indicator(of: overall) }

    public func indicator(of figures: [String: Figures]) -> Indicator {
        let signing = plannedUnits.filter { (figures[$0]?.share ?? 0) >= unitShare }.count
        return Indicator(signingUnits: signing, units: plannedUnits.count, unitShare: unitShare, target: target)
    }

    /// Builds the report from the counts of one or more databases (several mail servers).
    public init(
        counts: [EventStore.Count], range: ReportRange, byMonth: Bool, units table: Units?, unitShare: Double = 0.5,
        target: Double = 0.5
    ) {
        label = range.label
        self.unitShare = unitShare
        self.target = target
        var byPeriod: [String: [String: Figures]] = [:]
        for count in counts {
            var figures = byPeriod[count.period, default: [:]][count.unit, default: Figures()]
            switch (count.direction, count.outcome) {
            case (.incoming, _):
                figures.incoming += count.count
                switch count.detail {
                case "pass": figures.incomingPass += count.count
                case "fail": figures.incomingFail += count.count
                default: figures.incomingOther += count.count
                }
            case (_, .signed):
                figures.outgoing += count.count
                figures.signedByGateway += count.count
            case (_, .senderSigned):
                figures.outgoing += count.count
                figures.signedBySender += count.count
            case (_, .unsigned):
                figures.outgoing += count.count
                figures.unsigned += count.count
                figures.unsignedReasons[count.detail ?? "unknown", default: 0] += count.count
            case (_, .verified), (_, .deferred), (_, .rejected):
                break
            }
            byPeriod[count.period, default: [:]][count.unit] = figures
        }
        let planned = table?.names ?? []
        let seen = Set(byPeriod.values.flatMap(\.keys))
        units = planned + seen.subtracting(planned).sorted()
        plannedUnits = table == nil ? units : planned
        // An open range by month: the months that have records.
        let labels = byMonth ? (range.months.isEmpty ? byPeriod.keys.sorted() : range.months) : [range.label]
        periods = labels.map { Period(label: $0, units: byPeriod[byMonth ? $0 : "", default: [:]]) }
    }
}

/// The days a report covers, and how it is labelled.
public struct ReportRange: Sendable, Equatable {
    /// `YYYY-MM-DD`, inclusive; nil for no bound.
    public let from: String?
    public let to: String?
    public let label: String

    public init(from: String?, to: String?, label: String) {
        self.from = from
        self.to = to
        self.label = label
    }

    /// `--month YYYY-MM`.
    public static func month(_ text: String) throws -> ReportRange {
        guard let (year, month) = parseMonth(text) else {
            throw RecordsError(.badPeriod, "--month \(text): not a month; write YYYY-MM, e.g. --month 2026-11")
        }
        let last = daysIn(year: year, month: month)
        return ReportRange(from: String(format: "%04d-%02d-01", year, month), to: String(format: "%04d-%02d-%02d", year, month, last), label: String(format: "%04d-%02d", year, month))
    }

    /// `--year YYYY`.
    public static func year(_ text: String) throws -> ReportRange {
        guard text.count == 4, let year = Int(text), year >= 2000 else {
            throw RecordsError(.badPeriod, "--year \(text): not a year; write YYYY, e.g. --year 2026")
        }
        return ReportRange(from: "\(year)-01-01", to: "\(year)-12-31", label: "\(year)")
    }

    /// `--from DATE --to DATE`.
    public static func days(from: String, to: String) throws -> ReportRange {
        for (option, text) in [("--from", from), ("--to", to)] where parseDay(text) == nil {
            throw RecordsError(.badPeriod, "\(option) \(text): not a date; write YYYY-MM-DD, e.g. \(option) 2026-01-01")
        }
        guard from <= to else { throw RecordsError(.badPeriod, "--from \(from) is after --to \(to); swap them") }
        return ReportRange(from: from, to: to, label: "\(from)..\(to)")
    }

    public static let all = ReportRange(from: nil, to: nil, label: "all")

    /// `--period last-month` or `last-year`: the whole month (year) before the one `now` falls
    /// in, in `timeZone` (the server's: the records' days are its local days).
    public static func previous(_ period: String, before now: Date, timeZone: TimeZone) throws -> ReportRange {
        var calendar = Calendar(identifier: .gregorian)
        calendar.timeZone = timeZone
        let today = calendar.dateComponents([.year, .month], from: now)
        guard let year = today.year, let month = today.month else {
            throw RecordsError(.badPeriod, "--period \(period): the calendar gave no date for now")
        }
        switch period {
        case "last-month":
            return try .month(month == 1 ? String(format: "%04d-12", year - 1) : String(format: "%04d-%02d", year, month - 1))
        case "last-year":
            return try .year(String(year - 1))
        default:
            throw RecordsError(.badPeriod, "--period \(period): use last-month or last-year (or --month, --year)")
        }
    }

    /// The months the range touches, `YYYY-MM`; none for an open range.
    public var months: [String] {
        guard let from, let to, var (year, month) = ReportRange.parseMonth(String(from.prefix(7))),
            let (lastYear, lastMonth) = ReportRange.parseMonth(String(to.prefix(7)))
        else { return [] }
        var months: [String] = []
        while (year, month) <= (lastYear, lastMonth) {
            months.append(String(format: "%04d-%02d", year, month))
            (year, month) = month == 12 ? (year + 1, 1) : (year, month + 1)
        }
        return months
    }

    static func parseMonth(_ text: String) -> (Int, Int)? {
        let parts = text.split(separator: "-")
        guard parts.count == 2, parts[0].count == 4, parts[1].count == 2, let year = Int(parts[0]), let month = Int(parts[1]),
            year >= 2000, (1...12).contains(month)
        else { return nil }
        return (year, month)
    }

    static func parseDay(_ text: String) -> (Int, Int, Int)? {
        let parts = text.split(separator: "-")
        guard parts.count == 3, parts[2].count == 2, let (year, month) = parseMonth(parts[0] + "-" + parts[1]),
            let day = Int(parts[2]), (1...daysIn(year: year, month: month)).contains(day)
        else { return nil }
        return (year, month, day)
    }

    static func daysIn(year: Int, month: Int) -> Int {
        switch month {
        case 2: return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) ? 29 : 28
        case 4, 6, 9, 11: return 30
        default: return 31
        }
    }
}
