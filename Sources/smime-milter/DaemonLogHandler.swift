import Foundation
import Logging

/// The daemon's log backend: syslog (facility mail, as Postfix and OpenDKIM log) or standard
/// error for the journal, one line per record: the message, then its metadata as key=value.
struct DaemonLogHandler: LogHandler {
    enum Sink: Sendable {
        case syslog, standardError
    }

    let sink: Sink
    var logLevel: Logger.Level
    var metadata: Logger.Metadata = [:]

    subscript(metadataKey key: String) -> Logger.Metadata.Value? {
        get { metadata[key] }
        set { metadata[key] = newValue }
    }

    /// Opens syslog once for the process.
    static func openSyslog() {
        openlog("smime-milter", LOG_PID | LOG_NDELAY, LOG_MAIL)
    }

    func log(event: LogEvent) {
        var merged = metadata
        if let extra = event.metadata { merged.merge(extra) { $1 } }
        // The queue ID leads the line, as in Postfix's own log, so that one grep finds both.
        var line = merged.removeValue(forKey: "milter.queue_id").map { "\($0): " } ?? ""
        line += "\(event.message)"
        for (key, value) in merged.sorted(by: { $0.key < $1.key }) {
            line += " \(key)=\(value)"
        }
        switch sink {
        case .syslog:
            let priority: Int32
            switch event.level {
            case .trace, .debug: priority = LOG_DEBUG
            case .info: priority = LOG_INFO
            case .notice: priority = LOG_NOTICE
            case .warning: priority = LOG_WARNING
            case .error: priority = LOG_ERR
            case .critical: priority = LOG_CRIT
            }
            withVaList([line]) { vsyslog(priority, "%s", $0) }
        case .standardError:
            printError("\(event.level): \(line)")
        }
    }

    static func level(_ name: String) -> Logger.Level {
        switch name {
        case "error": .error
        case "warning": .warning
        case "debug": .debug
        default: .info
        }
    }
}
