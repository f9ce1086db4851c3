#!/usr/bin/env python3
"""The daemon's CPU per message with records off (EventDatabase none), on (the default), and on
with metrics (MetricsListen, scraped once a second while the messages flow), in the same run: the
same messages through the milter protocol, signed with the demo token, the daemon's own CPU time
(user + system, /proc/PID/stat) per message. Rounds rotate the order so that a change in the
machine's speed touches every variant.
    scripts/bench-daemon-cpu.py BINARY DEMO_DIR
Environment: BENCH_ROUNDS (3), BENCH_MESSAGES (1000); BENCH_POSTGRES_URL and
BENCH_POSTGRES_PASSWORD_FILE add a third daemon whose records are forwarded to that PostgreSQL."""

import os
import statistics
import sys
import tempfile
import threading
import time
import urllib.request
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "EndToEndTests"))
os.environ["SMIME_MILTER"] = str(Path(sys.argv[1]).resolve())
from conftest import Daemon, Session  # noqa: E402
from postfix_instance import free_port  # noqa: E402

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


def thread_seconds(pid, names):
    """The CPU of the daemon's threads whose names start with one of `names`, in nanoseconds'
    resolution (schedstat), since a clock tick is about what such a thread spends on 1000
    messages: the records threads ("records", and "records-fwd" that forwards to PostgreSQL), or
    the metrics threads (SwiftNIO's event loop "NIO-ELT-..." serving /metrics, and "health" that
    probes the milter socket)."""
    found = [int((task / "schedstat").read_text().split()[0]) / 1e9 for task in Path(f"/proc/{pid}/task").iterdir()
             if (task / "comm").read_text().strip().startswith(names)]
    assert found, f"no thread named {names}"
    return sum(found)


POSTGRES = os.environ.get("BENCH_POSTGRES_URL")


class Scraper(threading.Thread):
    """GETs /metrics once a second (Prometheus' default is once a minute, the province's 15 s),
    keeping each scrape's wall time."""

    def __init__(self, port):
        super().__init__(daemon=True)
        self.port, self.times, self.done = port, [], threading.Event()

    def run(self):
        while not self.done.is_set():
            start = time.monotonic()
            with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=10) as response:
                assert b"smime_milter_messages_total" in response.read()
            self.times.append(time.monotonic() - start)
            self.done.wait(1)

    def stop(self):
        self.done.set()
        self.join()
        return self.times


def run(base, mode):
    """One round of one variant: "off", "records", "metrics" (records and metrics) or "postgres"."""
    records, metrics = mode != "off", mode == "metrics"
    directory = base / mode
    key = (f"pkcs11:token=STTTT-DienBien;object=unit-seal;type=private?pin-source=file:{demo}/pins/STTTT-DienBien")
    directory.mkdir(exist_ok=True)
    (directory / "signing-table").write_text(f"*@stttt.dienbien.gov.vn {key} chain={demo}/ca/chain.pem\n")
    (directory / "units").write_text("*@stttt.dienbien.gov.vn Sở Thông tin và Truyền thông\n"
                                     "*@.muonglay.dienbien.gov.vn Ủy ban nhân dân thị xã Mường Lay\n")
    lines = [f"SigningTable {directory}/signing-table", f"Units {directory}/units", f"TrustAnchors {demo}/ca/root.pem",
             "PKCS11Module /usr/lib/softhsm/libsofthsm2.so"]
    if not records:
        lines.append("EventDatabase none")
    elif mode == "postgres":
        lines += [f"EventDatabase {POSTGRES}", f"EventDatabasePasswordFile {os.environ['BENCH_POSTGRES_PASSWORD_FILE']}"]
    port = free_port() if metrics else None
    if metrics:
        lines.append(f"MetricsListen inet:{port}@127.0.0.1")
    daemon = Daemon(directory, lines).start()
    scraper = None
    try:
        session = Session(daemon, client="127.0.0.1")
        for _ in range(20):  # warm up: the token login, the first allocations
            session.send(MESSAGE, sender="<ketoan@stttt.dienbien.gov.vn>", recipients=("<ubnd@muonglay.dienbien.gov.vn>",))
        if metrics:
            scraper = Scraper(port)
            scraper.start()
        before = cpu_seconds(f"/proc/{daemon.process.pid}/stat")
        for _ in range(messages):
            result = session.send(MESSAGE, sender="<ketoan@stttt.dienbien.gov.vn>",
                                  recipients=("<ubnd@muonglay.dienbien.gov.vn>",))
            assert result.body_replaced
        session.close()
        used = cpu_seconds(f"/proc/{daemon.process.pid}/stat") - before
        scrapes = scraper.stop() if scraper else []
        time.sleep(1.5)  # the writer's last batch of the round
        writer = thread_seconds(daemon.process.pid, ("records",)) if records else 0.0
        served = thread_seconds(daemon.process.pid, ("NIO-ELT-", "health")) if metrics else 0.0
    finally:
        daemon.stop()
    if records:
        assert (directory / "events.sqlite").exists()
    return used / messages * 1e6, writer / messages * 1e6, served / messages * 1e6, scrapes


with tempfile.TemporaryDirectory(prefix="bench-daemon-cpu-") as temporary:
    base = Path(temporary)
    modes = ["off", "records", "metrics"] + (["postgres"] if POSTGRES else [])
    cpu, thread, served, scrapes = {mode: [] for mode in modes}, {mode: [] for mode in modes}, [], []
    for number in range(rounds):
        # Which goes first rotates, so that none always runs on a warmer machine.
        for mode in modes[number % len(modes):] + modes[:number % len(modes)]:
            total, writer, metrics_threads, scraped = run(base, mode)
            cpu[mode].append(total)
            thread[mode].append(writer)
            if mode == "metrics":
                served.append(metrics_threads)
            scrapes += scraped
    off, on, metrics = (statistics.median(cpu[mode]) for mode in ("off", "records", "metrics"))

    def line(label, mode):
        return f"  {label:<34}: {statistics.median(cpu[mode]):7.0f} µs   rounds: {', '.join(f'{v:.0f}' for v in cpu[mode])}"

    print(f"{messages} internal messages signed per round, {rounds} rounds, median of the daemon's CPU per message:")
    print(line("records off (EventDatabase none)", "off"))
    print(line("records on  (events.sqlite)", "records"))
    print(line("records and metrics, scraped 1/s", "metrics"))
    print(f"  records on / off: {on / off:.3f}")
    print(f"  of which the records thread: {statistics.median(thread['records']):.1f} µs per message "
          f"({statistics.median(thread['records']) / off * 100:.1f} % of the CPU per message with records off)")
    print(f"  metrics on / off: {metrics / on:.3f} (target at most 1.02); of which the metrics threads "
          f"(/metrics and the health probe): {statistics.median(served):.1f} µs per message "
          f"({statistics.median(served) / on * 100:.1f} %)")
    print(f"  {len(scrapes)} scrapes during the rounds, median {statistics.median(scrapes) * 1000:.1f} ms "
          f"from request to last byte")
    if POSTGRES:
        print(line("records to PostgreSQL", "postgres"))
        print(f"  postgres / off: {statistics.median(cpu['postgres']) / off:.3f}; the records threads "
              f"(file and forwarding): {statistics.median(thread['postgres']):.1f} µs per message")
