import ArgumentParser
import Foundation
import MIME

/// Parsing and signing preparation of a large message with a base64 attachment, with time and
/// peak memory, beside a baseline in the same run: one copy of the message and Foundation's own
/// base64 decoding of the attachment (the least work any parser must do).
struct MIMEBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "mime", abstract: "Parse and prepare for signing a large message; time and memory.")

    @Option(name: .long, help: "Attachment size in MB.")
    var megabytes: Int = 25

    @Option(name: .long, help: "Rounds; the median is reported.")
    var rounds: Int = 5

    func run() throws {
        let message = Self.message(attachmentBytes: megabytes << 20)
        let (headers, body) = try Self.split(message)
        let encoded = Data(message[Self.attachmentRange(message)])
        let size = Double(message.count) / 1_048_576

        // Memory first, each phase once, while the high-water mark still tells them apart.
        let base = peakRSS()
        _ = try SigningPreparation(headers: headers, body: body)
        let afterPrepare = peakRSS()
        _ = try Message(bytes: message)
        let afterParse = peakRSS()

        let copy = median(rounds: rounds) {
            let copied = message.withUnsafeBufferPointer { Array($0) }
            precondition(copied.count == message.count)
        }
        let foundation = median(rounds: rounds) { _ = Data(base64Encoded: encoded, options: .ignoreUnknownCharacters) }
        let parse = try median(rounds: rounds) { _ = try Message(bytes: message) }
        let decode = try median(rounds: rounds) {
            let parsed = try Message(bytes: message)
            _ = parsed.decodedBody(of: parsed.root.parts[1])
        }
        let prepare = try median(rounds: rounds) { _ = try SigningPreparation(headers: headers, body: body) }
        print(String(format: "message: %.1f MB (%d MB attachment, base64), median of %d rounds", size, megabytes, rounds))
        print(row("measurement", "seconds", "MB/s"))
        for (label, seconds) in [
            ("baseline: copy the message", copy), ("baseline: Foundation base64", foundation),
            ("parse", parse), ("parse + decode attachment", decode), ("prepareForSigning", prepare),
        ] {
            print(row(label, String(format: "%.3f", seconds), String(format: "%.0f", size / seconds)))
        }
        print(String(format: "peak RSS with the message in memory: %.0f MB", base))
        print(String(format: "prepareForSigning added at most %.0f MB (%.1fx the message); parse alone %.0f MB",
            afterPrepare - base, (afterPrepare - base) / size, max(0, afterParse - afterPrepare)))
    }

    static func message(attachmentBytes: Int) -> [UInt8] {
        var generator = SystemRandomNumberGenerator()
        var payload = [UInt8](repeating: 0, count: attachmentBytes)
        for index in stride(from: 0, to: payload.count, by: 8) {
            withUnsafeBytes(of: generator.next()) { random in
                for offset in 0..<min(8, payload.count - index) { payload[index + offset] = random[offset] }
            }
        }
        var text = "From: vanthu.stttt@dienbien.gov.vn\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: large\r\n"
        text += "MIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"big\"\r\n\r\n--big\r\n"
        text += "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
        text += "Kính gửi: Ủy ban nhân dân thị xã Mường Lay.\r\n--big\r\n"
        text += "Content-Type: application/octet-stream; name=\"du-lieu.bin\"\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        return Array(text.utf8) + Base64.encode(payload) + Array("--big--\r\n".utf8)
    }

    static func split(_ bytes: [UInt8]) throws -> ([HeaderField], [UInt8]) {
        let message = try Message(bytes: bytes)
        return (message.root.headers, Array(message.bytes[message.root.bodyRange]))
    }

    static func attachmentRange(_ bytes: [UInt8]) -> Range<Int> {
        guard let message = try? Message(bytes: bytes) else { return 0..<0 }
        return message.root.parts[1].bodyRange
    }
}

/// The process's peak resident set size in MB (getrusage).
func peakRSS() -> Double {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Double(usage.ru_maxrss) / 1024
}
