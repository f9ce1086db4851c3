#!/usr/bin/env python3
"""Where the daemon's time goes for one signed 4 KB message: the daemon runs under callgrind
(instruction counts, which a loaded machine does not disturb), signs messages sent through the
milter protocol with the demo token, and the cost of the counted messages, all threads, is
split into stages. Recipients outside the local domains ("external", the common case) or inside
them ("internal": the verification headers are added too).
    scripts/profile-signing.py BINARY DEMO_DIR [external|internal] [MESSAGES]
callgrind counts user-space instructions only: what the kernel does for the daemon (socket
reads and writes, poll, futex) is not in the table; `perf record -e cpu-clock -g` shows it.
valgrind comes with `scripts/install-deps.sh bench`; its version 3.19 cannot read the DWARF 5 of
Swift 6 binaries, so a copy without debug sections (objcopy --strip-debug; the symbols stay) is
profiled."""

import collections
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "EndToEndTests"))
from conftest import Session  # noqa: E402

binary, demo = Path(sys.argv[1]).resolve(), Path(sys.argv[2]).resolve()
mode = sys.argv[3] if len(sys.argv) > 3 else "external"
count = int(sys.argv[4]) if len(sys.argv) > 4 else 200
WARM_UP = 20
os.environ["SOFTHSM2_CONF"] = str(demo / "softhsm2.conf")
repository = Path(__file__).resolve().parents[1]


def run(base):
    """Runs the daemon under callgrind; returns the callgrind file of the counted messages."""
    stripped = base / "smime-milter"
    subprocess.run(["objcopy", "--strip-debug", str(binary), str(stripped)], check=True)
    socket = base / "milter.sock"
    subprocess.run([str(repository / "scripts/demo-config.sh"), str(demo), f"local:{socket}", str(base)], check=True)
    with open(base / "smime-milter.conf", "a") as config:
        # Generous timeouts: under valgrind everything is about fifty times slower.
        config.write("InternalHosts 127.0.0.1\nLogLevel warning\nSigningTimeout 240\nCRLFetchTimeout 60\n")
    daemon = subprocess.Popen(
        ["valgrind", "--tool=callgrind", f"--callgrind-out-file={base}/callgrind.%p", "--dump-instr=no",
         str(stripped), "run", "--config", str(base / "smime-milter.conf"), "--stderr"],
        stdout=open(base / "log", "wb"), stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while not socket.exists():
        if daemon.poll() is not None or time.time() > deadline:
            raise RuntimeError("the daemon did not start: " + (base / "log").read_text(errors="replace")[-3000:])
        time.sleep(0.2)

    class Target:
        pass
    target = Target()
    target.socket, target.tcp_port = socket, None
    line = "Số liệu thống kê các xã, phường năm 2026; 0123456789 ABCDEFGHIJ abcdefghij.\r\n"
    body = (line * 60).encode()[:4096]
    recipient = "ubnd@muonglay.dienbien.gov.vn" if mode == "internal" else "vanthu@partner.example"
    message = (f"From: ketoan@stttt.dienbien.gov.vn\r\nTo: {recipient}\r\nSubject: bench\r\n"
               "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n").encode() + body
    session = Session(target, client="127.0.0.1")
    session.sock.settimeout(600)

    def send(number):
        result = session.send(message, sender="<ketoan@stttt.dienbien.gov.vn>", recipients=(f"<{recipient}>",),
                              queue_id=f"P{number:06d}")
        assert result.body_replaced, result.replies
    try:
        for number in range(WARM_UP):  # the token login, the signer, the first allocations
            send(number)
        subprocess.run(["callgrind_control", "-z", str(daemon.pid)], check=True, capture_output=True)
        for number in range(count):
            send(WARM_UP + number)
        subprocess.run(["callgrind_control", "-d", str(daemon.pid)], check=True, capture_output=True)
        session.close()
    finally:
        daemon.terminate()
        daemon.wait(timeout=300)
    return base / f"callgrind.{daemon.pid}.1"


def functions(path):
    """Inclusive instructions per function (demangled name), from the calls callgrind recorded."""
    names, own, called = {}, collections.Counter(), collections.Counter()
    function = callee = None
    pending = False
    for line in open(path, errors="replace"):
        if line.startswith(("fn=", "cfn=")):
            match = re.match(r"c?fn=\((\d+)\)(?: (.*))?", line.rstrip("\n"))
            if match.group(2) is not None:
                names[match.group(1)] = match.group(2)
            if line.startswith("fn="):
                function = names.get(match.group(1))
            else:
                callee = names.get(match.group(1))
        elif line.startswith("calls="):
            pending = True
        elif line[:1].isdigit() or line[:1] in "+-*":
            fields = line.split()
            if len(fields) < 2:
                continue
            if pending:
                if callee != function:
                    called[function] += int(fields[1])
                pending = False
            else:
                own[function] += int(fields[1])
        elif line.startswith("totals:") or line.startswith("summary:"):
            own["TOTAL"] = int(line.split()[1])
    mangled = sorted(set(own) | set(called))
    demangled = subprocess.run(["swift", "demangle", "--simplified"], input="\n".join(mangled), capture_output=True,
                               text=True, check=True).stdout.split("\n")
    inclusive = {}
    for name, readable in zip(mangled, demangled):
        value = own[name] + called[name] if name != "TOTAL" else own[name]
        inclusive[readable] = max(inclusive.get(readable, 0), value)
    return inclusive


def stages(cost):
    def of(*names):
        return sum(cost.get(name, 0) for name in names)
    total = of("TOTAL")
    job = of("closure #1 in closure #1 in TokenWorkers.run<A>(until:_:)")
    softhsm = of("C_Sign", "C_SignInit")
    loop = of("TokenWorkers.loop(_:)")
    wait = of("TokenWorkers.run<A>(until:_:)", "specialized TokenWorkers.run<A>(until:_:)")
    engine = of("mi_engine")
    decide = of("specialized MilterService.decide(_:)")
    sign = of("Gateway.sign(envelope:headers:body:)")
    preparation = of("SigningPreparation.init(headers:body:limits:)", "MultipartSigned.init(inner:signatureDER:micalg:)")
    cms = of("static CMSSigning.sign(content:signer:digest:signingTime:)")
    certificate = of("Certificate.init(der:)")
    applying = of("specialized static DecisionApplier.apply<A>(_:to:leadingSpace:logger:)")
    logging = of("Decision.summary.getter", "Logger.subscript.setter")
    recorded, writer = of("EventWriter.record(_:)"), of("EventWriter.run()")
    counted, ended = of("Statistics.count(_:units:)"), of("DaemonMetrics.messageEnded(_:total:deciding:spooledBytes:)")
    saved = of("MilterService.saveStatistics()")
    headers = of("Gateway.verificationHeaders(_:headers:)", "Gateway.ownVerificationHeaders(_:line:headers:)")
    tracker = of("TokenTracker.signed(_:signer:)")
    decision = (decide - sign - counted) + (sign - preparation - cms - certificate - tracker - headers) + tracker
    rows = [
        ("milter callbacks and body collection (libmilter, callbacks)",
         engine - (decide + applying + logging + recorded + ended)),
        ("MIME preparation (7-bit inner entity, multipart/signed)", preparation),
        ("CMS building (attributes, digest, DER)", cms - wait),
        ("token call: the token's C_SignInit and C_Sign (SoftHSM)", softhsm),
        ("token call: PKCS#11 wrapper and session pool", job - softhsm),
        ("thread hand-off to the token's worker (user space)", (loop - job) + wait),
        ("decision (From, signing table, unit, recipients)", decision),
        ("verification headers for local recipients", headers),
        ("header edits and new body (smfi_*)", applying),
        ("logging", logging),
        ("records (signer's certificate, queue, writer thread)", recorded + writer + certificate),
        ("statistics and metrics", counted + ended + saved),
        ("other threads", total - engine - loop - writer - saved),
    ]
    print(f"{count} signed 4 KB messages, recipients {'inside' if mode == 'internal' else 'outside'} the local "
          f"domains; instructions per message, all threads (user space):")
    print(f"{'stage':<62} {'instructions':>13} {'share':>7}")
    for name, value in rows:
        print(f"{name:<62} {value:>13,.0f} {value / total * 100:6.1f}%")
    print(f"{'total':<62} {total:>13,.0f} {100:6.1f}%")
    print(f"{'of which the daemon itself (all but the token call in SoftHSM)':<62} {total - softhsm:>13,.0f} "
          f"{(total - softhsm) / total * 100:6.1f}%")


with tempfile.TemporaryDirectory(prefix="profile-signing-") as temporary:
    path = run(Path(temporary))
    stages({name: value / count for name, value in functions(path).items()})
