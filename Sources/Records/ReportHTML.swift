import Foundation

/// The report as one self-contained HTML page: no external scripts, fonts or styles; charts in
/// inline SVG; printable.
extension Report {
    struct Words {
        let title, period, indicator, met, notMet, unit, outgoing, gateway, sender, unsigned, share, incoming, pass, fail,
            other, reasons, total, chartShare, chartMonths, signingUnits, mailSigned, target: String

        static let vi = Words(
            title: "Báo cáo ký số thư điện tử", period: "Kỳ báo cáo", indicator: "Chỉ tiêu", met: "Đạt", notMet: "Chưa đạt",
            unit: "Đơn vị", outgoing: "Thư gửi đi", gateway: "Cổng ký", sender: "Người gửi tự ký", unsigned: "Không ký",
            share: "Tỷ lệ ký", incoming: "Thư đến", pass: "Hợp lệ", fail: "Sai chữ ký", other: "Khác",
            reasons: "Lý do không ký thường gặp", total: "Tổng cộng", chartShare: "Tỷ lệ thư gửi đi được ký số theo đơn vị",
            chartMonths: "Theo tháng", signingUnits: "đơn vị ký số", mailSigned: "thư được ký", target: "mục tiêu")
        static let en = Words(
            title: "Signed e-mail report", period: "Period", indicator: "Indicator", met: "met", notMet: "not met",
            unit: "Unit", outgoing: "Sent", gateway: "Signed by gateway", sender: "Signed by sender", unsigned: "Unsigned",
            share: "Share signed", incoming: "Received", pass: "Pass", fail: "Fail", other: "Other",
            reasons: "Commonest reasons unsigned", total: "Total", chartShare: "Share of sent mail signed, by unit",
            chartMonths: "By month", signingUnits: "units signing", mailSigned: "mail signed", target: "target")
    }

    func html(language: ReportLanguage, generatedAt time: Date, timeZone: TimeZone) -> String {
        let w = language == .vi ? Words.vi : Words.en
        let indicator = self.indicator
        let overall = self.overall
        var body = "<h1>\(Self.escape(w.title))</h1>\n"
        body += "<p class=\"period\">\(w.period): <b>\(Self.escape(ReportWords.period(label, language: language)))</b></p>\n"
        let sentence =
            language == .vi
            ? "\(indicator.signingUnits)/\(indicator.units) đơn vị ký số từ \(Self.percent(indicator.unitShare)) thư gửi đi trở lên "
                + "(\(Self.percent(indicator.share))); mục tiêu \(Self.percent(indicator.target))"
            : "\(indicator.signingUnits) of \(indicator.units) units sign at least \(Self.percent(indicator.unitShare)) of the mail "
                + "they send (\(Self.percent(indicator.share))); target \(Self.percent(indicator.target))"
        body += "<div class=\"indicator \(indicator.met ? "met" : "unmet")\"><span>\(w.indicator)</span> \(Self.escape(sentence)): "
            + "<b>\(indicator.met ? w.met : w.notMet)</b></div>\n"
        body += "<h2>\(Self.escape(w.chartShare))</h2>\n" + barChart(overall, words: w)
        if periods.count > 1 {
            body += "<h2>\(Self.escape(w.chartMonths))</h2>\n" + lineChart(words: w)
        }
        if periods.count > 1 {
            // The whole range first, then each month.
            body += table(Period(label: label, units: overall), words: w, language: language, heading: true)
        }
        for period in periods {
            body += table(period, words: w, language: language, heading: periods.count > 1)
        }
        body += "<p class=\"generated\">\(Self.escape(ReportWords.generated(time, timeZone: timeZone, language: language)))</p>\n"
        return """
            <!DOCTYPE html>
            <html lang="\(language.rawValue)">
            <head>
            <meta charset="utf-8">
            <title>\(Self.escape(w.title)) \(Self.escape(ReportWords.period(label, language: language)))</title>
            <style>
            body { font-family: "DejaVu Sans", "Noto Sans", Arial, sans-serif; margin: 2em; color: #1a1a1a; }
            h1 { font-size: 1.6em; margin-bottom: 0.2em; }
            h2 { font-size: 1.15em; margin-top: 1.6em; }
            .indicator { padding: 0.8em 1em; border-radius: 6px; font-size: 1.1em; margin: 1em 0; }
            .indicator.met { background: #e3f4e6; border: 1px solid #2e7d32; }
            .indicator.unmet { background: #fdeaea; border: 1px solid #c62828; }
            .indicator span { font-weight: bold; margin-right: 0.4em; }
            table { border-collapse: collapse; margin: 0.6em 0 1.4em; font-size: 0.92em; }
            th, td { border: 1px solid #bbb; padding: 0.3em 0.6em; }
            th { background: #eef2f7; }
            td.n { text-align: right; font-variant-numeric: tabular-nums; }
            td.unit { min-width: 9em; }
            td.reasons { font-size: 0.92em; min-width: 17em; }
            tr.total td { font-weight: bold; background: #f6f6f6; }
            svg text { font-family: inherit; font-size: 13px; }
            .generated { color: #666; font-size: 0.85em; }
            @media print { body { margin: 1cm; } h2 { page-break-after: avoid; } table, svg { page-break-inside: avoid; } }
            </style>
            </head>
            <body>
            \(body)</body>
            </html>

            """
    }

    /// One horizontal bar per unit: its share of sent mail signed, with the unit-share line.
    func barChart(_ figures: [String: Figures], words w: Words) -> String {
        let labelWidth = 330.0
        let barWidth = 420.0
        let row = 26.0
        let height = Double(units.count) * row + 30
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(labelWidth + barWidth + 70))\" height=\"\(Int(height))\" role=\"img\">\n"
        for (index, unit) in units.enumerated() {
            let y = Double(index) * row + 6
            let share = figures[unit]?.share
            let color = (share ?? 0) >= unitShare ? "#2e7d32" : "#c62828"
            svg += "<text x=\"\(Int(labelWidth - 8))\" y=\"\(Int(y + 15))\" text-anchor=\"end\">\(Self.escape(unit))</text>\n"
            svg += "<rect x=\"\(Int(labelWidth))\" y=\"\(Int(y))\" width=\"\(Int(barWidth))\" height=\"18\" fill=\"#eee\"/>\n"
            if let share, share > 0 {
                svg += "<rect x=\"\(Int(labelWidth))\" y=\"\(Int(y))\" width=\"\(String(format: "%.1f", barWidth * share))\" height=\"18\" fill=\"\(color)\"/>\n"
            }
            svg += "<text x=\"\(Int(labelWidth + barWidth + 6))\" y=\"\(Int(y + 15))\">\(share.map(Self.percent) ?? "–")</text>\n"
        }
        let x = labelWidth + barWidth * unitShare
        svg += "<line x1=\"\(String(format: "%.1f", x))\" y1=\"0\" x2=\"\(String(format: "%.1f", x))\" y2=\"\(Int(height - 22))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
        svg += "<text x=\"\(String(format: "%.1f", x))\" y=\"\(Int(height - 6))\" text-anchor=\"middle\">\(Self.percent(unitShare))</text>\n"
        return svg + "</svg>\n"
    }

    /// A line per month: the share of units signing and the share of all sent mail signed,
    /// against the target.
    func lineChart(words w: Words) -> String {
        let width = 760.0
        let height = 260.0
        let left = 50.0
        let bottom = 40.0
        let plotWidth = width - left - 45  // room for the last month's label
        let plotHeight = height - bottom - 20
        func x(_ index: Int) -> Double {
            left + (periods.count > 1 ? plotWidth * Double(index) / Double(periods.count - 1) : plotWidth / 2)
        }
        func y(_ value: Double) -> Double { 20 + plotHeight * (1 - value) }
        var svg = "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(Int(width))\" height=\"\(Int(height + 30))\" role=\"img\">\n"
        for tick in [0.0, 0.25, 0.5, 0.75, 1.0] {
            svg += "<line x1=\"\(Int(left))\" y1=\"\(String(format: "%.1f", y(tick)))\" x2=\"\(Int(left + plotWidth))\" y2=\"\(String(format: "%.1f", y(tick)))\" stroke=\"#ddd\"/>\n"
            svg += "<text x=\"\(Int(left - 6))\" y=\"\(String(format: "%.1f", y(tick) + 4))\" text-anchor=\"end\">\(Self.percent(tick))</text>\n"
        }
        svg += "<line x1=\"\(Int(left))\" y1=\"\(String(format: "%.1f", y(target)))\" x2=\"\(Int(left + plotWidth))\" y2=\"\(String(format: "%.1f", y(target)))\" stroke=\"#333\" stroke-dasharray=\"4 3\"/>\n"
        let unitsLine = periods.enumerated().map { index, period in
            "\(String(format: "%.1f", x(index))),\(String(format: "%.1f", y(indicator(of: period.units).share)))"
        }
        let mailLine = periods.enumerated().map { index, period in
            "\(String(format: "%.1f", x(index))),\(String(format: "%.1f", y(period.total.share ?? 0)))"
        }
        svg += "<polyline fill=\"none\" stroke=\"#1565c0\" stroke-width=\"2.5\" points=\"\(unitsLine.joined(separator: " "))\"/>\n"
        svg += "<polyline fill=\"none\" stroke=\"#ef6c00\" stroke-width=\"2.5\" points=\"\(mailLine.joined(separator: " "))\"/>\n"
        for (index, period) in periods.enumerated() {
            svg += "<text x=\"\(String(format: "%.1f", x(index)))\" y=\"\(Int(height - bottom + 18))\" text-anchor=\"middle\">\(Self.escape(ReportWords.shortMonth(period.label)))</text>\n"
        }
        let legend = Int(height + 14)
        svg += "<rect x=\"\(Int(left))\" y=\"\(legend - 10)\" width=\"14\" height=\"4\" fill=\"#1565c0\"/><text x=\"\(Int(left + 20))\" y=\"\(legend)\">\(Self.escape(w.signingUnits))</text>\n"
        svg += "<rect x=\"\(Int(left + 200))\" y=\"\(legend - 10)\" width=\"14\" height=\"4\" fill=\"#ef6c00\"/><text x=\"\(Int(left + 220))\" y=\"\(legend)\">\(Self.escape(w.mailSigned))</text>\n"
        svg += "<text x=\"\(Int(left + 400))\" y=\"\(legend)\">- - - \(Self.escape(w.target)) \(Self.percent(target))</text>\n"
        return svg + "</svg>\n"
    }

    func table(_ period: Period, words w: Words, language: ReportLanguage, heading: Bool) -> String {
        var out = heading ? "<h2>\(Self.escape(Self.capitalized(ReportWords.period(period.label, language: language))))</h2>\n" : ""
        out += "<table>\n<tr>" + [w.unit, w.outgoing, w.gateway, w.sender, w.unsigned, w.share, w.incoming, w.pass, w.fail, w.other, w.reasons]
            .map { "<th>\(Self.escape($0))</th>" }.joined() + "</tr>\n"
        func row(_ name: String, _ figures: Figures, total: Bool) -> String {
            let cells = Self.numbers(figures).enumerated().map { index, value in
                index == 4 ? (figures.share.map(Self.percent) ?? "–") : value
            }
            // One reason a line: the words are long, and office staff read them down the column.
            let reasons = figures.commonestReasons.prefix(3).map {
                Self.escape("\(ReportWords.reason($0.reason, language: language)) (\($0.count))")
            }.joined(separator: "<br>")
            return "<tr\(total ? " class=\"total\"" : "")><td class=\"unit\">\(Self.escape(name))</td>"
                + cells.map { "<td class=\"n\">\($0)</td>" }.joined() + "<td class=\"reasons\">\(reasons)</td></tr>\n"
        }
        for unit in units { out += row(unit, period.units[unit] ?? Figures(), total: false) }
        out += row(w.total, period.total, total: true)
        return out + "</table>\n"
    }

    /// A heading's first letter in capitals: `Tháng 11/2026`.
    static func capitalized(_ text: String) -> String { text.prefix(1).uppercased() + text.dropFirst() }

    static func escape(_ text: String) -> String {
        text.replacingOccurrences(of: "&", with: "&amp;").replacingOccurrences(of: "<", with: "&lt;")
            .replacingOccurrences(of: ">", with: "&gt;").replacingOccurrences(of: "\"", with: "&quot;")
    }
}
