public import Foundation

/// The report as text for a terminal, CSV for spreadsheets, or one self-contained HTML page.
public enum ReportFormat: String, Sendable, CaseIterable {
    case text, csv, html
}

public enum ReportLanguage: String, Sendable, CaseIterable {
    case vi, en
}

extension Report {
    /// The report in `format`: HTML in `language`, stamped with `time` in `timeZone` (the
    /// server's); the text report's reasons in `language` (its column names stay English, and
    /// CSV keeps codes: scripts rely on both).
    public func rendered(
        _ format: ReportFormat, language: ReportLanguage, generatedAt time: Date, timeZone: TimeZone
    ) -> String {
        switch format {
        case .text: text(language: language)
        case .csv: csv()
        case .html: html(language: language, generatedAt: time, timeZone: timeZone)
        }
    }

    /// The indicator in one English sentence (the text report's first line; CSV's is on stderr).
    public var indicatorSentence: String {
        let indicator = self.indicator
        return "indicator \(label): \(indicator.signingUnits) of \(indicator.units) units sign at least "
            + "\(Self.percent(indicator.unitShare)) of the mail they send (\(Self.percent(indicator.share))); "
            + "target \(Self.percent(indicator.target)): \(indicator.met ? "met" : "not met")"
    }

    static func percent(_ value: Double) -> String { String(format: "%.0f%%", value * 100) }

    static func share(_ figures: Figures?) -> String {
        figures?.share.map { String(format: "%.3f", $0) } ?? ""
    }

    static func numbers(_ f: Figures) -> [String] {
        [f.outgoing, f.signedByGateway, f.signedBySender, f.unsigned].map(String.init) + [share(f)]
            + [f.incoming, f.incomingPass, f.incomingFail, f.incomingOther].map(String.init)
    }

    // MARK: CSV

    public static let csvHeader =
        "period,unit,outgoing,signed_by_gateway,signed_by_sender,unsigned,signed_share,incoming,incoming_pass,incoming_fail,incoming_other"

    /// UTF-8 with a byte-order mark (spreadsheet programs then read Vietnamese right), CRLF lines:
    /// one row per period and unit, then the period's `total`.
    func csv() -> String {
        var lines = ["\u{FEFF}" + Self.csvHeader]
        for period in periods {
            for unit in units {
                lines.append(([period.label, unit] + Self.numbers(period.units[unit] ?? Figures())).map(Self.csvField).joined(separator: ","))
            }
            lines.append(([period.label, "total"] + Self.numbers(period.total)).map(Self.csvField).joined(separator: ","))
        }
        return lines.joined(separator: "\r\n") + "\r\n"
    }

    static func csvField(_ text: String) -> String {
        guard text.contains(where: { $0 == "," || $0 == "\"" || $0 == "\n" || $0 == "\r" }) else { return text }
        return "\"" + text.replacingOccurrences(of: "\"", with: "\"\"") + "\""
    }

    // MARK: text

    /// Aligned columns; widths counted in characters as a terminal shows them (a Vietnamese
    /// letter with its marks is one).
    func text(language: ReportLanguage) -> String {
        var out = indicatorSentence + "\n"
        let header = ["unit", "outgoing", "gateway", "sender", "unsigned", "share", "incoming", "pass", "fail", "other"]
        for period in periods {
            out += "\n\(period.label)\n"
            var rows = [header]
            for unit in units { rows.append([unit] + Self.numbers(period.units[unit] ?? Figures())) }
            rows.append(["total"] + Self.numbers(period.total))
            let widths = header.indices.map { column in rows.map { Self.width($0[column]) }.max() ?? 0 }
            for row in rows {
                out += row.enumerated().map { column, cell in
                    let fill = String(repeating: " ", count: widths[column] - Self.width(cell))
                    return column == 0 ? cell + fill : fill + cell
                }.joined(separator: "  ") + "\n"
            }
            let reasons = units.compactMap { unit -> String? in
                let common = (period.units[unit] ?? Figures()).commonestReasons.prefix(3)
                let words = common.map { "\(ReportWords.reason($0.reason, language: language)) \($0.count)" }
                return common.isEmpty ? nil : "  \(unit): " + words.joined(separator: "; ")
            }
            let heading = language == .vi ? "không ký, lý do thường gặp:" : "unsigned, commonest reasons:"
            if !reasons.isEmpty { out += heading + "\n" + reasons.joined(separator: "\n") + "\n" }
        }
        return out
    }

    /// Columns a string takes in a terminal: one per grapheme, two for wide (East Asian) ones.
    static func width(_ text: String) -> Int {
        text.reduce(0) { sum, character in
            let scalar = character.unicodeScalars.first!.value
            let wide = (0x1100...0x115F).contains(scalar) || (0x2E80...0xA4CF).contains(scalar) || (0xAC00...0xD7A3).contains(scalar)
                || (0xF900...0xFAFF).contains(scalar) || (0xFF00...0xFF60).contains(scalar)
            return sum + (wide ? 2 : 1)
        }
    }
}
