import Foundation
import Gateway
import MIME

/// One MTA connection: the configuration it started with, what the MTA told us about the
/// client, and the message being received. Several messages may follow each other on one
/// connection; `resetMessage` runs after each end of message and on abort.
///
/// libmilter calls one connection's callbacks on one thread at a time, so the mutable state
/// needs no lock; the class is handed to C as an unmanaged pointer (see `Libmilter.attach`).
final class Connection {
    /// The service the connection belongs to (messages in flight, logging).
    let service: MilterService
    let gateway: Gateway
    /// The negotiated protocol flags: which steps expect no reply.
    var protocolFlags: UInt = 0
    var clientAddress: String?
    var clientName: String?
    var daemonName: String?

    // The message in progress.
    var envelope = Envelope()
    var headers: [HeaderField] = []
    var body: BodySpool
    var started: ContinuousClock.Instant?
    /// Set when the message cannot be processed (a spool write failed): answered at end of message.
    var failure: String?

    private(set) var closed = false

    init(service: MilterService, gateway: Gateway, spoolDirectory: String) {
        self.service = service
        self.gateway = gateway
        body = BodySpool(threshold: gateway.configuration.spoolThreshold, directory: spoolDirectory)
    }

    deinit {
        assert(closed, "a connection was released without close()")
    }

    var inMessage: Bool { started != nil }

    func startMessage(sender: String) {
        resetMessage()
        started = .now
        envelope = Envelope(
            clientAddress: clientAddress, daemonName: daemonName, sender: sender, recipients: [], queueID: nil)
    }

    /// A piece of the body; a piece that cannot be kept marks the message failed (answered at
    /// its end with `OnInternalError`).
    func appendBody(_ bytes: UnsafeRawBufferPointer) {
        guard failure == nil else { return }
        do {
            try body.append(bytes)
        } catch {
            failure = "\(error)"
        }
    }

    func resetMessage() {
        envelope = Envelope()
        headers = []
        body.reset()
        started = nil
        failure = nil
    }

    /// Releases what the connection holds; safe to call more than once.
    func close() {
        guard !closed else { return }
        resetMessage()
        closed = true
    }
}
