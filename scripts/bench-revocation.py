#!/usr/bin/env python3
"""Verification with revocation, beside its baseline in the same run:
- the rate of verifying a signed message with no revocation check, and with a CRL of about
  150,000 entries (5 MB, as large as a national CA's) fetched once and then cached;
- the latency of each message with the CA's web server down (accepting, never answering), slow
  (3 s an answer) and up, CRLFetchTimeout 2: the first message apart, p50 and p99 of the rest,
  one message every 100 ms.
The CA is the demo PKI's intermediate; the large CRL is made by `openssl ca` from a copy of its
database with the revoked entries added. Servers listen on 127.0.0.1 only, on the port the demo
PKI's certificates name (CRL_BASE_URL in DEMO_DIR/env; 18080 for a demo PKI made before it).
    scripts/bench-revocation.py BINARY DEMO_DIR
Environment: BENCH_SECONDS (3), BENCH_REVOCATION_MESSAGES (101), BENCH_CRL_ENTRIES (150000)."""

import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
from pathlib import Path

binary, demo = str(Path(sys.argv[1]).resolve()), Path(sys.argv[2]).resolve()
seconds = os.environ.get("BENCH_SECONDS", "3")
messages = os.environ.get("BENCH_REVOCATION_MESSAGES", "101")
entries = int(os.environ.get("BENCH_CRL_ENTRIES", "150000"))
repository = Path(__file__).resolve().parents[1]
work = Path(tempfile.mkdtemp(prefix="smime-milter-bench-revocation-"))
settings = dict(line.split("=", 1) for line in (demo / "env").read_text().splitlines() if "=" in line)
port = int(settings.get("CRL_BASE_URL", "http://127.0.0.1:18080/crl").split(":")[2].split("/")[0])
ocsp_port = int(settings.get("OCSP_URL", "http://127.0.0.1:18081/").split(":")[2].split("/")[0])


def run(*arguments, **options):
    return subprocess.run([str(a) for a in arguments], check=True, capture_output=True, **options)


def large_crl():
    """The intermediate's CRL with `entries` more revoked serials, DER, made by openssl ca."""
    database = work / "db"
    shutil.copytree(demo / "ca" / "intermediate.db", database)
    with open(database / "index.txt", "a") as index:
        for number in range(entries):
            index.write(f"R\t360101000000Z\t260101000000Z,keyCompromise\t{0x100000 + number:X}\tunknown\t/CN=revoked {number}\n")
    config = (demo / "ca" / "intermediate.cnf").read_text().replace(str(demo / "ca" / "intermediate.db"), str(database))
    (work / "ca.cnf").write_text(config)
    run("openssl", "ca", "-gencrl", "-config", work / "ca.cnf", "-out", work / "large.pem")
    root = work / "www" / "crl"
    root.mkdir(parents=True)
    run("openssl", "crl", "-in", work / "large.pem", "-outform", "DER", "-out", root / "intermediate.crl")
    shutil.copy(demo / "crl" / "root.crl", root / "root.crl")
    return work / "www", (root / "intermediate.crl").stat().st_size


def ca_server(root, delay=0):
    process = subprocess.Popen(
        [sys.executable, str(repository / "Tests" / "TestSupport" / "ca_server.py"), "--port", str(port),
         "--root", str(root), "--delay", str(delay)], stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def bench(*options):
    output = run(binary, "bench", "revocation", "--message", work / "signed.eml", "--trust", demo / "ca" / "root.pem",
                 "--fetch-timeout", "2", "--interval", "100",
                 "--fetch-host", f"127.0.0.1:{port}", "--fetch-host", f"127.0.0.1:{ocsp_port}", *options).stdout
    return json.loads(output)


def main():
    message = ("From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\nSubject: Công văn\r\n\r\n"
               + "Nội dung công văn.\r\n" * 100).encode()
    signed = run(binary, "sign", "--key", demo / "certs" / "vanphong.key", "--cert", demo / "certs" / "vanphong.pem",
                 "--chain", demo / "ca" / "chain.pem", input=message).stdout
    (work / "signed.eml").write_bytes(signed)
    www, size = large_crl()
    print(f"CRL of {entries} entries: {size / 1e6:.1f} MB")

    server = ca_server(www)
    try:
        baseline = bench("--revocation", "none", "--seconds", seconds)["rate"]
        cached = bench("--revocation", "crl+fetch", "--seconds", seconds)
        assert cached.get("result_pass", 0) > 0 and cached.get("result_temperror", 0) == 0, cached
        print(f"{'verification, 4 KB message':44} {'msg/s':>10} {'ratio':>8}")
        print(f"{'no revocation check':44} {baseline:>10.0f} {1:>8.2f}")
        print(f"{'5 MB CRL, cached after the first message':44} {cached['rate']:>10.0f} {cached['rate'] / baseline:>8.2f}")
        up = bench("--revocation", "crl+fetch", "--count", messages)
    finally:
        server.terminate()
        server.wait()

    server = ca_server(www, delay=3)
    try:
        slow = bench("--revocation", "crl+fetch", "--count", messages)
    finally:
        server.terminate()
        server.wait()

    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    try:
        down = bench("--revocation", "crl+fetch", "--count", messages)
    finally:
        listener.close()

    print(f"\n{'CA web server (CRLFetchTimeout 2), ' + messages + ' messages':44} {'first':>8} {'p50':>8} {'p99':>8}  results")
    print(f"{'':44} {'':>8} {'(the others)':>17}")
    for name, figures in (("up", up), ("slow: 3 s an answer", slow), ("down: accepts, never answers", down)):
        results = ", ".join(f"{k[7:]} {int(v)}" for k, v in sorted(figures.items()) if k.startswith("result_"))
        print(f"{name:44} {figures['first'] * 1000:>6.0f}ms {figures['p50'] * 1000:>6.1f}ms {figures['p99'] * 1000:>6.1f}ms  {results}")
    shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
