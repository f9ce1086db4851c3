import Foundation
import Records

/// Hands a finished report mail to the local sendmail (Postfix's, by default), so that it goes
/// through the milter chain and leaves signed. sendmail reads the message from a file that
/// already holds all of it: whatever happens to this process, sendmail never sees half a
/// message, and its exit status says whether the mail was queued.
struct ReportSender {
    let program: String

    struct Failure: Error, CustomStringConvertible {
        let message: String
        var description: String { message }
    }

    func send(_ mail: ReportMail) throws {
        guard FileManager.default.isExecutableFile(atPath: program) else {
            throw Failure(
                message: "\(program) is not an executable sendmail program; install Postfix or give --sendmail PATH; "
                    + "nothing was sent")
        }
        // The sendmail interface takes local line ends; the message is CRLF throughout.
        var bytes: [UInt8] = []
        bytes.reserveCapacity(mail.message.count)
        for byte in mail.message where byte != 0x0D { bytes.append(byte) }
        let input = try Self.unlinkedFile(holding: bytes)
        defer { try? input.close() }

        let process = Process()
        process.executableURL = URL(fileURLWithPath: program)
        // -oi: a line of one dot does not end the message; -f: the envelope sender.
        process.arguments = ["-oi", "-f", mail.from, "--"] + mail.to
        process.standardInput = input
        process.standardOutput = FileHandle.nullDevice
        let errors = Pipe()
        process.standardError = errors
        do {
            try process.run()
        } catch {
            throw Failure(message: "cannot run \(program): \(error.localizedDescription); nothing was sent")
        }
        let said = errors.fileHandleForReading.readDataToEndOfFile()
        process.waitUntilExit()
        let text = String(decoding: said, as: UTF8.self).trimmingCharacters(in: .whitespacesAndNewlines)
        guard process.terminationReason == .exit, process.terminationStatus == 0 else {
            let how =
                process.terminationReason == .exit
                ? "exited with status \(process.terminationStatus)" : "was killed by signal \(process.terminationStatus)"
            throw Failure(
                message: "\(program) \(how)\(text.isEmpty ? "" : ": \(text)"); the report was not sent, "
                    + "run it again once the mail system works")
        }
    }

    /// A temporary file with `bytes` in it, already unlinked (nothing is left behind), read from
    /// its start.
    static func unlinkedFile(holding bytes: [UInt8]) throws -> FileHandle {
        var template = Array((NSTemporaryDirectory() + "/smime-milter-report.XXXXXX").utf8CString)
        let descriptor = template.withUnsafeMutableBufferPointer { mkstemp($0.baseAddress!) }
        guard descriptor >= 0 else {
            let reason = String(cString: strerror(errno))
            throw Failure(message: "cannot make a temporary file in \(NSTemporaryDirectory()): \(reason); nothing was sent")
        }
        let handle = FileHandle(fileDescriptor: descriptor, closeOnDealloc: true)
        template.withUnsafeBufferPointer { _ = unlink($0.baseAddress!) }
        do {
            try handle.write(contentsOf: bytes)
            try handle.seek(toOffset: 0)
        } catch {
            throw Failure(message: "cannot write the report to a temporary file: \(error.localizedDescription); nothing was sent")
        }
        return handle
    }
}
