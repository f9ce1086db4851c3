#!/usr/bin/env python3
"""make demo: the demo milter in a Postfix of its own on loopback, one internal and one external
message through it, and what arrived at the other end.
    scripts/demo.py BINARY DEMO_DIR"""

import os
import smtplib
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "Tests" / "EndToEndTests"))
from postfix_instance import PostfixInstance, SmtpSink, stop_process  # noqa: E402

binary, demo = sys.argv[1], Path(sys.argv[2]).resolve()
os.environ["SOFTHSM2_CONF"] = str(demo / "softhsm2.conf")
base = Path(tempfile.mkdtemp(prefix="smime-milter-demo-"))
os.chmod(base, 0o755)
socket_path = base / "smime-milter.sock"
subprocess.run(["scripts/demo-config.sh", str(demo), f"local:{socket_path}"], check=True)
log = open(base / "milter.log", "wb")
milter = subprocess.Popen([binary, "run", "--config", str(demo / "smime-milter.conf"), "--stderr"], stdout=log,
                          stderr=subprocess.STDOUT)
sink = SmtpSink(base / "sink")
postfix = None
try:
    while not socket_path.exists():
        if milter.poll() is not None:
            sys.exit(f"smime-milter did not start:\n{(base / 'milter.log').read_text()}")
        time.sleep(0.1)
    postfix = PostfixInstance(base / "postfix", sink.port, milter=f"unix:{socket_path}").start()

    internal = ("From: =?UTF-8?B?UGjDsm5nIEvhur8gdG/DoW4=?= <ketoan@stttt.dienbien.gov.vn>\r\n"
                "To: ubnd@muonglay.dienbien.gov.vn\r\nSubject: =?UTF-8?B?QsOhbyBjw6Fv?=\r\n"
                "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
                "Kính gửi Ủy ban nhân dân thị xã Mường Lay.\r\n").encode()
    with smtplib.SMTP("127.0.0.1", postfix.submission_port) as client:
        client.sendmail("ketoan@stttt.dienbien.gov.vn", ["ubnd@muonglay.dienbien.gov.vn"], internal)

    source = base / "outside.eml"
    source.write_bytes(b"From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\n"
                       b"Subject: Thong bao\r\n\r\nNoi dung cong van.\r\n")
    signed = subprocess.run([binary, "sign", "--key", f"{demo}/certs/vanphong.key", "--cert",
                             f"{demo}/certs/vanphong.pem", "--chain", f"{demo}/ca/chain.pem", str(source)],
                            capture_output=True, check=True).stdout
    with smtplib.SMTP("127.0.0.1", postfix.smtp_port, source_address=("127.0.0.3", 0)) as client:
        client.sendmail("vanphong.ubnd@dienbien.gov.vn", ["stttt@stttt.dienbien.gov.vn"], signed)

    deadline = time.time() + 30
    while len(sink.messages()) < 2 and time.time() < deadline:
        time.sleep(0.2)
    time.sleep(0.5)
    for title, message in zip(["1. Internal mail, as it left Postfix (signed):",
                               "2. Signed mail from outside, as it reached the recipient (verified):"],
                              sink.messages()):
        print(f"\n{title}\n")
        print(message.decode(errors="replace").split("\n\n")[0])
        path = base / "received.eml"
        path.write_bytes(message)
        result = subprocess.run(["openssl", "cms", "-verify", "-in", str(path), "-CAfile", f"{demo}/ca/root.pem",
                                 "-out", "/dev/null"], capture_output=True, text=True)
        print(f"\nopenssl cms -verify: {result.stderr.strip()}")
    print("\nThe milter's log:\n")
    print((base / "milter.log").read_text())
    print("Postfix's log:", postfix.maillog)
finally:
    if postfix:
        postfix.stop()
    sink.stop()
    stop_process(milter, timeout=30)
