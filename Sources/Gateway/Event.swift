public import Foundation

/// One message as the records keep it (`EventDatabase`): when, which way, whose, and what
/// became of its signature. Never content, never the Subject.
public struct Event: Sendable, Equatable {
    public enum Direction: String, Sendable, CaseIterable {
        /// From inside to at least one recipient outside the local domains.
        case outgoing
        /// From outside.
        case incoming
        /// From inside to local recipients only (one unit to another on this server).
        case `internal`
    }

    public enum Outcome: String, Sendable, CaseIterable {
        /// Signed by the gateway.
        case signed
        /// Already signed when it came from the sender's mail client; `result` is its verdict.
        case senderSigned = "sender-signed"
        /// Left unsigned; `reason` says why.
        case unsigned
        /// Incoming mail verified; `result` is the verdict.
        case verified
        /// Not sent on: deferred (4xx) or rejected (5xx); Postfix retries a deferred one, which
        /// then gets a record of its own.
        case deferred, rejected
    }

    public var time: Date
    public var queueID: String?
    public var direction: Direction
    /// The sender's unit (outgoing and internal mail); nil for incoming mail.
    public var unit: String?
    /// The units of the recipients in the local domains.
    public var recipientUnits: [String]
    public var outcome: Outcome
    /// The verdict's result (`pass`, `fail`, ...) for verified and sender-signed mail.
    public var result: String?
    /// Why it is unsigned, deferred or rejected, or the verdict's reason.
    public var reason: String?
    public var signerSubject: String?
    public var signerSerial: String?

    public init(
        time: Date = Date(), queueID: String? = nil, direction: Direction, unit: String?, recipientUnits: [String],
        outcome: Outcome, result: String? = nil, reason: String? = nil, signerSubject: String? = nil,
        signerSerial: String? = nil
    ) {
        self.time = time
        self.queueID = queueID
        self.direction = direction
        self.unit = unit
        self.recipientUnits = recipientUnits
        self.outcome = outcome
        self.result = result
        self.reason = reason
        self.signerSubject = signerSubject
        self.signerSerial = signerSerial
    }

    /// The record as the message really ended: a message the MTA was told to defer or reject
    /// did not leave, whatever was decided before.
    public func ended(deferred: Bool, rejected: Bool, why: String?) -> Event {
        guard deferred || rejected else { return self }
        var copy = self
        copy.outcome = deferred ? .deferred : .rejected
        copy.reason = why ?? reason
        return copy
    }
}
