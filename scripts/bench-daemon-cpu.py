#!/usr/bin/env python3
"""The daemon's CPU per message with records on (EventDatabase, the default) and off
(EventDatabase none), in the same run: the same messages through the milter protocol, signed
with the demo token, the daemon's own CPU time (user + system, /proc/PID/stat) per message.
Rounds alternate between the two so that a change in the machine's speed touches both.
    scripts/bench-records.py BINARY DEMO_DIR
Environment: BENCH_ROUNDS (3), BENCH_MESSAGES (1000); BENCH_POSTGRES_URL and
BENCH_POSTGRES_PASSWORD_FILE add a third daemon whose records are forwarded to that PostgreSQL."""

import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "EndToEndTests"))
os.environ["SMIME_MILTER"] = str(Path(sys.argv[1]).resolve())
from conftest import Daemon, Session  # noqa: E402

demo = Path(sys.argv[2]).resolve()
rounds = int(os.environ.get("BENCH_ROUNDS", "3"))
messages = int(os.environ.get("BENCH_MESSAGES", "1000"))
os.environ["SOFTHSM2_CONF"] = str(demo / "softhsm2.conf")
TICKS = os.sysconf("SC_CLK_TCK")
MESSAGE = ("From: ketoan@stttt.dienbien.gov.vn\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: Công văn\r\n\r\n"
           + "Kính gửi Ủy ban nhân dân.\r\n" * 100).encode()


def cpu_seconds(stat):
    fields = Path(stat).read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def writer_seconds(pid):
    """The CPU of the daemon's records threads alone ("records", and "records-fwd" that forwards
    to PostgreSQL), in nanoseconds' resolution (schedstat), since a clock tick is about what
    they spend on 1000 messages."""
    found = [int((task / "schedstat").read_text().split()[0]) / 1e9 for task in Path(f"/proc/{pid}/task").iterdir()
             if (task / "comm").read_text().strip() in ("records", "records-fwd")]
    assert found, "no records thread"
    return sum(found)


POSTGRES = os.environ.get("BENCH_POSTGRES_URL")


def run(base, records):
    directory = base / str(records)
    key = (f"pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:{demo}/pins/STTTT-DienBien")
    directory.mkdir(exist_ok=True)
    (directory / "signing-table").write_text(f"*@stttt.dienbien.gov.vn {key} chain={demo}/ca/chain.pem\n")
    (directory / "units").write_text("*@stttt.dienbien.gov.vn Sở Thông tin và Truyền thông\n"
                                     "*@.muonglay.dienbien.gov.vn Ủy ban nhân dân thị xã Mường Lay\n")
    lines = [f"SigningTable {directory}/signing-table", f"Units {directory}/units", f"TrustAnchors {demo}/ca/root.pem",
             "PKCS11Module /usr/lib/softhsm/libsofthsm2.so"]
    if not records:
        lines.append("EventDatabase none")
    elif records == "postgres":
        lines += [f"EventDatabase {POSTGRES}", f"EventDatabasePasswordFile {os.environ['BENCH_POSTGRES_PASSWORD_FILE']}"]
    daemon = Daemon(directory, lines).start()
    try:
        session = Session(daemon, client="127.0.0.1")
        for _ in range(20):  # warm up: the token login, the first allocations
            session.send(MESSAGE, sender="<ketoan@stttt.dienbien.gov.vn>", recipients=("<ubnd@muonglay.dienbien.gov.vn>",))
        before = cpu_seconds(f"/proc/{daemon.process.pid}/stat")
        for _ in range(messages):
            result = session.send(MESSAGE, sender="<ketoan@stttt.dienbien.gov.vn>",
                                  recipients=("<ubnd@muonglay.dienbien.gov.vn>",))
            assert result.body_replaced
        session.close()
        used = cpu_seconds(f"/proc/{daemon.process.pid}/stat") - before
        time.sleep(1.5)  # the writer's last batch of the round
        writer = writer_seconds(daemon.process.pid) if records else 0.0
    finally:
        daemon.stop()
    if records:
        assert (directory / "events.sqlite").exists()
    return used / messages * 1e6, writer / messages * 1e6


with tempfile.TemporaryDirectory(prefix="bench-records-") as temporary:
    base = Path(temporary)
    off, on, writer, forwarded, forwarder = [], [], [], [], []
    modes = [False, True] + (["postgres"] if POSTGRES else [])
    for number in range(rounds):
        # Which goes first rotates, so that none always runs on a warmer machine.
        for records in modes[number % len(modes):] + modes[:number % len(modes)]:
            total, thread = run(base, records)
            if records == "postgres":
                forwarded.append(total)
                forwarder.append(thread)
            elif records:
                on.append(total)
                writer.append(thread)
            else:
                off.append(total)
    print(f"{messages} internal messages signed per round, {rounds} rounds, median of the daemon's CPU per message:")
    print(f"  records off (EventDatabase none): {statistics.median(off):7.0f} µs   rounds: {', '.join(f'{v:.0f}' for v in off)}")
    print(f"  records on  (events.sqlite)     : {statistics.median(on):7.0f} µs   rounds: {', '.join(f'{v:.0f}' for v in on)}")
    print(f"  on / off: {statistics.median(on) / statistics.median(off):.3f}")
    print(f"  of which the records thread: {statistics.median(writer):.1f} µs per message "
          f"({statistics.median(writer) / statistics.median(off) * 100:.1f} % of the CPU per message with records off)")
    if forwarded:
        print(f"  records to PostgreSQL           : {statistics.median(forwarded):7.0f} µs   rounds: "
              f"{', '.join(f'{v:.0f}' for v in forwarded)}")
        print(f"  postgres / off: {statistics.median(forwarded) / statistics.median(off):.3f}; the records threads "
              f"(file and forwarding): {statistics.median(forwarder):.1f} µs per message")
