#!/usr/bin/env python3
"""One unit's token never holds up another: unit B's signing rate through the milter protocol
alone, with unit A's token slow (50 ms a signature, one at a time, one session) and with A's
token hung, each as a ratio to B alone in the same round; and how much of its own rate A's slow
token delivers while it is busy. Tokens are the hardware-like hwtoken module over SoftHSM.
Senders are separate processes speaking the milter protocol (the PyPI miltertest client), as
Postfix's smtpd processes do; a sender whose message was deferred waits 100 ms before the next,
as a queue retries later instead of at once.
Every sender connects and finishes the milter negotiation before the measured seconds start, and
the senders' first messages follow one another 20 ms apart; a unit's rate is its messages over
the seconds from the start until its own last sender stops. Debian's libmilter runs connections
on a pool of workers: a connection that has a command to read is handed to a worker counted as
idle, and when several are handed over at once, more can be promised than there are idle
workers; the rest wait until a worker's own connection has nothing to read for 1 ms. Senders
that send back to back never leave their worker, and A's wait on the hung token for
SigningTimeout: unit B's connections, opened while A's senders were already sending, or ready at
the same moment as A's, waited the whole 5 s of a phase behind A slow, or 2 s behind A hung.
That measured libmilter's taking up of a burst of connections, not one token holding up another.
    scripts/bench-tokens.py BINARY DEMO_DIR
Environment: BENCH_ROUNDS (2), BENCH_SECONDS (5), BENCH_SENDERS (2 per unit)."""

import multiprocessing
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "EndToEndTests"))
os.environ["SMIME_MILTER"] = str(Path(sys.argv[1]).resolve())
from conftest import Daemon, Session  # noqa: E402

binary, demo = sys.argv[1], Path(sys.argv[2]).resolve()
rounds = int(os.environ.get("BENCH_ROUNDS", "2"))
seconds = float(os.environ.get("BENCH_SECONDS", "5"))
senders = int(os.environ.get("BENCH_SENDERS", "2"))
os.environ["SOFTHSM2_CONF"] = str(demo / "softhsm2.conf")
control = demo / "hwtoken" / "control"
LATENCY_MS = 50
STAGGER = 0.02  # seconds between the senders' first messages


def message(address):
    return (f"From: {address}\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: Công văn\r\n\r\n"
            + "Kính gửi Ủy ban nhân dân.\r\n" * 100).encode()


def sender(daemon, address, ready, go, offset, until, signed, deferred, stopped):
    session = Session(daemon, client="127.0.0.1")
    body = message(address)
    ready.wait(60)
    go.wait(60)
    time.sleep(offset)
    while time.time() < until.value:
        result = session.send(body, sender=f"<{address}>", queue_id="BENCH")
        if result.body_replaced:
            with signed.get_lock():
                signed.value += 1
        else:
            with deferred.get_lock():
                deferred.value += 1
            time.sleep(0.1)
    with stopped.get_lock():
        stopped.value = max(stopped.value, time.time())
    session.close()


def measure(daemon, units):
    """Messages signed per second for each unit address, all senders running at once."""
    counters = {unit: (multiprocessing.Value("i", 0), multiprocessing.Value("i", 0), multiprocessing.Value("d", 0))
                for unit in units}
    ready, go = multiprocessing.Barrier(len(units) * senders + 1), multiprocessing.Event()
    until = multiprocessing.Value("d", 0)
    processes = [multiprocessing.Process(target=sender, args=(daemon, unit, ready, go, STAGGER * number, until, *counters[unit]))
                 for number, unit in enumerate(unit for unit in units for _ in range(senders))]
    for process in processes:
        process.start()
    ready.wait(60)  # every sender connected and past the negotiation
    start = time.time()
    until.value = start + seconds
    go.set()
    for process in processes:
        process.join(seconds + 60)
    return {unit: (signed.value / (stopped.value - start), deferred.value)
            for unit, (signed, deferred, stopped) in counters.items()}


def set_control(token, name, value=None):
    path = control / token / name
    if value is None:
        path.unlink(missing_ok=True)
    else:
        path.write_text(str(value))


def signs(token):
    path = control / token / "signs"
    return int(path.read_text().strip() or 0) if path.exists() else 0


def main():
    for token in ("HW-Slow", "HW-Unit-B"):
        for name in os.listdir(control / token):
            os.unlink(control / token / name)
    set_control("HW-Slow", "latency_ms", LATENCY_MS)
    set_control("HW-Slow", "max_sessions", 1)
    base = Path(tempfile.mkdtemp(prefix="smime-milter-bench-tokens-"))
    a, b = "seal@hw-slow.lab.dienbien.gov.vn", "seal@hw-unit-b.lab.dienbien.gov.vn"
    (base / "signing-table").write_text("".join(
        f"{address} pkcs11:token={token};object=seal;type=private?pin-source=file:{demo}/pins/{token}\n"
        for address, token in ((a, "HW-Slow"), (b, "HW-Unit-B"))))
    daemon = Daemon(base, [f"SigningTable {base}/signing-table", f"PKCS11Module {demo}/hwtoken/hwtoken.so",
                           f"TrustAnchors {demo}/ca/root.pem", "SigningTimeout 2"]).start()
    alone, with_slow, with_hung, a_use = [], [], [], []
    try:
        measure(daemon, [a, b])  # warm-up: both keys logged in
        for _ in range(rounds):
            b_alone = measure(daemon, [b])[b][0]
            before = signs("HW-Slow")
            slow = measure(daemon, [a, b])
            a_use.append((signs("HW-Slow") - before) / seconds / (1000 / LATENCY_MS))
            set_control("HW-Slow", "hang", "")
            hung = measure(daemon, [a, b])
            set_control("HW-Slow", "hang")
            time.sleep(0.5)
            alone.append(b_alone)
            with_slow.append(slow[b][0] / b_alone)
            with_hung.append(hung[b][0] / b_alone)
            print(f"  round: B alone {b_alone:.1f} msg/s; A slow: A {slow[a][0]:.1f} msg/s, B {slow[b][0]:.1f}; "
                  f"A hung: B {hung[b][0]:.1f}, A deferred {hung[a][1]}", flush=True)
    finally:
        set_control("HW-Slow", "hang")
        daemon.stop()
    print(f"{'measurement':44} {'median':>10}")
    print(f"{'unit B alone, messages signed/s':44} {statistics.median(alone):>10.1f}")
    print(f"{'unit B with A slow, ratio to B alone':44} {statistics.median(with_slow):>10.2f}")
    print(f"{'unit B with A hung, ratio to B alone':44} {statistics.median(with_hung):>10.2f}")
    print(f"{'A slow: its token used, of 1/latency':44} {statistics.median(a_use):>10.2f}")


if __name__ == "__main__":
    main()
