import Foundation
import Gateway
import Logging
import MIME
@testable import Milter
import Synchronization
import Testing
import TestSupport

/// The service's lifecycle and one message's path through it, without libmilter: a recording
/// editor stands where the MTA would be.
@Suite struct MilterServiceTests {
    /// Log records kept for the test to read.
    final class Records: Sendable {
        let lines = Mutex<[(message: String, metadata: Logger.Metadata)]>([])
    }

    struct RecordingHandler: LogHandler {
        let records: Records
        var logLevel: Logger.Level = .info
        var metadata: Logger.Metadata = [:]
        subscript(metadataKey key: String) -> Logger.Metadata.Value? {
            get { metadata[key] }
            set { metadata[key] = newValue }
        }
        func log(event: LogEvent) {
            let merged = metadata.merging(event.metadata ?? [:]) { $1 }
            records.lines.withLock { $0.append(("\(event.message)", merged)) }
        }
    }

    let directory: String
    let configurationPath: String
    let records = Records()

    init() throws {
        directory = FileManager.default.temporaryDirectory.appendingPathComponent("milter-service-\(UUID().uuidString)").path
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        configurationPath = directory + "/smime-milter.conf"
        try write(authservID: "mx1.dienbien.gov.vn")
    }

    func write(authservID: String, extra: String = "") throws {
        try """
            Mode            v
            AuthservID      \(authservID)
            TrustAnchors    \(TestPKI.repositoryRoot)/conf/trust/vgca-root-2010.pem
            RevocationCheck none
            StateDirectory  \(directory)
            \(extra)
            """.write(toFile: configurationPath, atomically: true, encoding: .utf8)
    }

    func makeService() throws -> MilterService {
        let records = self.records
        let logger = Logger(label: "test") { _ in RecordingHandler(records: records) }
        return try MilterService(
            configurationPath: configurationPath, configuration: Configuration.load(path: configurationPath), logger: logger,
            spoolDirectory: directory)
    }

    /// Feeds one incoming message to the connection as libmilter would.
    func receive(_ connection: Connection, on service: MilterService, queueID: String, body: String = "Xin chào.\r\n") {
        service.startMessage(connection, sender: "vanthu@example.org")
        connection.envelope.recipients = ["vanphong@dienbien.gov.vn"]
        connection.envelope.queueID = queueID
        let message = try! Message(bytes: Array("From: vanthu@example.org\r\nSubject: x\r\n\r\n\(body)".utf8))
        connection.headers = message.root.headers
        Array(message.bytes[message.root.bodyRange]).withUnsafeBytes { connection.appendBody($0) }
    }

    @Test func aMessageIsDecidedAppliedAndLoggedWithItsQueueIDAsMetadata() throws {
        let service = try makeService()
        let connection = service.connection()
        defer { connection.close() }
        receive(connection, on: service, queueID: "4QUEUE1")
        let editor = DecisionApplierTests.Recorder()
        #expect(service.endMessage(connection, editor: editor, leadingSpace: true) == .accept)
        #expect(editor.calls.contains { $0.hasPrefix("insert 0 Authentication-Results: mx1.dienbien.gov.vn; smime=none") })
        let line = try #require(records.lines.withLock { $0.last })
        #expect(line.message.hasPrefix("verified smime=none from=vanthu@example.org"))
        #expect(!line.message.contains("4QUEUE1"))
        #expect(line.metadata["milter.queue_id"] == "4QUEUE1")
        #expect(!connection.inMessage)
    }

    /// SIGHUP with a broken file: refused, the running configuration stays; with a good one, new
    /// connections get it and an open connection keeps the one it started with.
    @Test func aReloadSwapsTheConfigurationForNewConnectionsOnlyAndRefusesABrokenFile() throws {
        let service = try makeService()
        let before = service.connection()
        defer { before.close() }

        try write(authservID: "mx2.dienbien.gov.vn", extra: "SigningTimeout soon")
        service.reload()
        #expect(service.gateway.configuration.authservID == "mx1.dienbien.gov.vn")
        let refusal = records.lines.withLock { $0.last?.message ?? "" }
        #expect(refusal.contains("reload refused, the previous one stays in use"))

        try write(authservID: "mx2.dienbien.gov.vn")
        service.reload()
        let after = service.connection()
        defer { after.close() }
        #expect(after.gateway.configuration.authservID == "mx2.dienbien.gov.vn")
        #expect(before.gateway.configuration.authservID == "mx1.dienbien.gov.vn")
        #expect(after.gateway.statistics === before.gateway.statistics, "counters carry over a reload")
    }

    /// A graceful stop waits while a message is between MAIL FROM and its end, and no longer.
    @Test func aGracefulStopWaitsForTheMessageInFlight() throws {
        let service = try makeService()
        let connection = service.connection()
        defer { connection.close() }
        receive(connection, on: service, queueID: "4INFLIGHT")
        receive(connection, on: service, queueID: "4INFLIGHT")  // a second MAIL FROM replaces it: still one
        #expect(!service.waitForMessagesInFlight(timeout: 0.05))
        _ = service.endMessage(connection, editor: DecisionApplierTests.Recorder(), leadingSpace: true)
        #expect(service.waitForMessagesInFlight(timeout: 0.05))
        service.finishMessage(connection)  // abort after the end: nothing more to leave
        #expect(service.waitForMessagesInFlight(timeout: 0.05))
    }

    /// A body piece that cannot be kept (the spool directory is gone) defers the message with
    /// OnInternalError instead of passing it on half-read.
    @Test func aBodyThatCannotBeSpooledIsAnsweredWithOnInternalError() throws {
        try write(authservID: "mx1.dienbien.gov.vn", extra: "SpoolThreshold 16")
        let service = try MilterService(
            configurationPath: configurationPath, configuration: Configuration.load(path: configurationPath),
            logger: Logger(label: "test") { [records] _ in RecordingHandler(records: records) }, spoolDirectory: directory + "/gone")
        let connection = service.connection()
        defer { connection.close() }
        receive(connection, on: service, queueID: "4NOSPOOL", body: String(repeating: "Công văn số 12.\r\n", count: 4))
        let editor = DecisionApplierTests.Recorder()
        #expect(service.endMessage(connection, editor: editor, leadingSpace: true) == .tempfail)
        #expect(editor.calls.last?.hasPrefix("reply 451 4.3.0") == true)
    }
}
