public import Foundation
public import Logging
import Synchronization

/// Threads of their own for the blocking calls to one token, so that whoever needs a signature
/// can stop waiting for it.
///
/// PKCS#11 cannot cancel a `C_Sign`: a USB token that hangs keeps the calling thread for as long
/// as it likes. So the call never runs on the thread that must answer Postfix. `run` hands the
/// job to one of these threads and waits for it with a deadline; when the deadline passes the
/// caller gets `TokenError.timeout` and leaves, and the job, if it already started, finishes on
/// its own thread and its result is dropped. A job that has not started by its deadline never
/// starts.
///
/// When a call has run longer than `stuckAfter`, or past the deadline of the caller who waits for
/// it, the token is taken to be stuck: further jobs fail at once (`TokenError.stuck`) instead of
/// each waiting the whole deadline, until a call returns. Threads start when work comes and end after a minute
/// idle, so a configuration that is reloaded leaves none behind.
///
/// Every call is handed over, even to a token that answers in microseconds (SoftHSM, a network
/// HSM): a call started on the milter's thread cannot be taken back, so a token that was fast
/// until now and hangs in that call (a USB token pulled out mid-signature, a `p11-kit server`
/// connection that stalls) would hold the thread past its deadline, and a fast path chosen by
/// the token's past speed fails exactly when it matters. What the hand-off costs is kept to two
/// wake-ups: a new job wakes one idle thread (`signal`), and a finished job wakes only the caller
/// waiting for it, through the job's own semaphore, which also keeps a signal given before its
/// caller waits. (With one condition for all, every finished job woke every caller waiting for
/// any job and every idle thread: with ten sessions at a time the kernel's side of the hand-off
/// was 5.7 % of the daemon's CPU samples, and 1.6 % after; BENCHMARKS.md, "The cost of one
/// signed message".)
public final class TokenWorkers: @unchecked Sendable {
    // @unchecked: every stored var below is read and written only with `condition` held.
    public let name: String
    public let threads: Int
    public let stuckAfter: TimeInterval
    private let logger: Logger
    private let idleExit: TimeInterval

    private final class Job: @unchecked Sendable {
        // @unchecked: `result` and `startedAt` are guarded by the owning TokenWorkers' condition.
        let work: () -> Result<Any, any Error>
        let deadline: Date
        var startedAt: Date?
        var result: Result<Any, any Error>?
        /// Signalled once, when `result` is set; only the job's caller waits on it.
        let done = DispatchSemaphore(value: 0)
        init(work: @escaping () -> Result<Any, any Error>, deadline: Date) {
            self.work = work
            self.deadline = deadline
        }
    }

    private let condition = NSCondition()
    private var queue: [Job] = []
    private var running = 0
    private var idle = 0
    /// When each busy thread's current call started, by thread number.
    private var busySince: [Int: Date] = [:]
    private var nextThread = 0
    private var stuck = false

    /// - Parameters:
    ///   - threads: calls in flight at once (the token's session pool size).
    ///   - stuckAfter: how long one call may run before the token counts as stuck.
    public init(
        name: String, threads: Int, stuckAfter: TimeInterval, idleExit: TimeInterval = 60,
        logger: Logger = Logger(label: "smime-milter.token")
    ) {
        self.name = name
        self.threads = max(1, threads)
        self.stuckAfter = stuckAfter
        self.idleExit = idleExit
        self.logger = logger
    }

    private static let registry = Mutex<[String: TokenWorkers]>([:])

    /// The workers of one token for the whole process: every configuration (reloads included)
    /// and every key on the token share them, so that a hung token holds at most `threads`
    /// threads however often the configuration is reloaded, and a reload finds it known stuck.
    /// - Parameter token: what identifies the token (module and token attributes of its URI).
    public static func shared(
        token: String, name: String, threads: Int, stuckAfter: TimeInterval, logger: Logger
    ) -> TokenWorkers {
        // A changed pool size or timeout is a new set of workers; the old one's threads end
        // after a minute idle (or with the call they are stuck in).
        let key = "\(token)\u{1f}\(threads)\u{1f}\(stuckAfter)"
        return registry.withLock { all in
            if let existing = all[key] { return existing }
            let made = TokenWorkers(name: name, threads: threads, stuckAfter: stuckAfter, logger: logger)
            all[key] = made
            return made
        }
    }

    /// Token calls running now, each on a session of its own (for the metrics).
    public var callsInFlight: Int {
        condition.lock()
        defer { condition.unlock() }
        return busySince.count
    }

    /// Runs `work` on a token thread and returns its result, or throws `timeout` at `deadline`,
    /// or `stuck` at once while the token is stuck.
    public func run<R>(until deadline: Date, _ work: @escaping () throws -> R) throws -> R {
        let job = Job(work: { Result { try work() as Any } }, deadline: deadline)
        condition.lock()
        defer { condition.unlock() }
        if stuck || stuckSince() != nil {
            let since = busySince.values.min() ?? Date()
            markStuck(since: since)
            throw TokenError(
                .stuck, operation: "signing with \(name)",
                detail: "the token has not answered a call for \(Self.seconds(since)) s (SigningTimeout "
                    + "\(stuckAfter) s); check the device (unplug and plug it in, or restart pcscd)")
        }
        queue.append(job)
        // Every thread not busy with a call (idle, starting, or just done with one and about to
        // look at the queue again) takes a queued job on its next turn: a new thread only for
        // the jobs beyond those.
        if idle > 0 { condition.signal() }
        if queue.count > running - busySince.count && running < threads { startThread() }
        condition.unlock()
        let answered = job.done.wait(timeout: .now() + max(0, deadline.timeIntervalSinceNow)) == .success
        condition.lock()
        if !answered && job.result == nil {
            if let startedAt = job.startedAt {
                // A call that outlived its caller's deadline, having run for most of it, makes
                // the token stuck now, not when its own age passes stuckAfter a moment later
                // (it started after its caller began waiting): the next message must not wait
                // the whole deadline again behind it. One that only just started when the
                // deadline came (it waited in the queue) says nothing about the token.
                if -startedAt.timeIntervalSinceNow >= stuckAfter / 2 { markStuck(since: startedAt) }
            } else {
                queue.removeAll { $0 === job }
            }
            throw TokenError(
                .timeout, operation: "signing with \(name)",
                detail: job.startedAt != nil
                    ? "the token did not answer within SigningTimeout; the message is deferred"
                    : "the token was busy with other messages until SigningTimeout; raise SessionPoolSize if the "
                        + "token allows more sessions, or spread the units over more tokens")
        }
        return try job.result!.get() as! R
    }

    /// Takes the token to be stuck until a call returns; logs it once. `condition` is held.
    private func markStuck(since: Date) {
        guard !stuck else { return }
        stuck = true
        logger.error(
            "token has not answered for \(Self.seconds(since)) s; messages for it are deferred at once until it answers",
            metadata: ["token.name": "\(name)"])
    }

    private static func seconds(_ since: Date) -> String {
        String(format: "%.1f", -since.timeIntervalSinceNow)
    }

    /// Threads alive now (for the tests of idle exit).
    var threadCount: Int {
        condition.lock()
        defer { condition.unlock() }
        return running
    }

    /// When the oldest running call started, if it has run too long. One hung call is enough:
    /// a USB token does one thing at a time, so its other sessions wait behind it.
    private func stuckSince() -> Date? {
        guard let oldest = busySince.values.min(), -oldest.timeIntervalSinceNow > stuckAfter else { return nil }
        return oldest
    }

    private func startThread() {
        let number = nextThread
        nextThread += 1
        running += 1
        let thread = Thread { [self] in loop(number) }
        thread.name = "token \(name)"
        thread.start()
    }

    private func loop(_ number: Int) {
        condition.lock()
        while true {
            // Jobs past their deadline are dropped: nobody waits for them.
            queue.removeAll { $0.deadline < Date() }
            guard !queue.isEmpty else {
                idle += 1
                let woke = condition.wait(until: Date(timeIntervalSinceNow: idleExit))
                idle -= 1
                if !woke && queue.isEmpty {
                    running -= 1
                    condition.unlock()
                    return
                }
                continue
            }
            let job = queue.removeFirst()
            let now = Date()
            job.startedAt = now
            busySince[number] = now
            condition.unlock()
            let result = job.work()
            condition.lock()
            busySince[number] = nil
            job.result = result
            if stuck {
                stuck = false
                logger.notice("token answers again", metadata: ["token.name": "\(name)"])
            }
            // Signalled with the lock released, so that the caller it wakes does not wait for it.
            condition.unlock()
            job.done.signal()
            condition.lock()
        }
    }
}
