"""The daemon's memory stays flat while a signer fails on every message (a PEM key with another
certificate: the signer is made again, and refused, for each message). Not run under
AddressSanitizer, whose quarantine holds freed memory on purpose."""

import os
from pathlib import Path

import pytest
from miltertest import constants as c

from conftest import Daemon, Session

MESSAGE = (b"From: vanthu@dienbien.gov.vn\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: x\r\n\r\n"
           b"Kinh gui cac don vi.\r\n")


def resident_kb(pid):
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError("no VmRSS")


def send(daemon, count):
    session = Session(daemon, client="127.0.0.1")
    for number in range(count):
        result = session.send(MESSAGE, sender="<vanthu@dienbien.gov.vn>", queue_id=f"M{number}")
        assert result.smtp_reply.startswith("451 "), result.replies
    session.close()


@pytest.mark.skipif(bool(os.environ.get("SMIME_MILTER_SANITIZED")), reason="ASan keeps freed memory")
def test_memory_is_flat_while_a_signer_fails_on_every_message(pki, tmp_path):
    (tmp_path / "signing-table").write_text(
        f"*@dienbien.gov.vn {pki}/certs/vanphong.key cert={pki}/certs/expired.pem\n")
    daemon = Daemon(tmp_path, [f"SigningTable {tmp_path}/signing-table", f"TrustAnchors {pki}/ca/root.pem"]).start()
    try:
        send(daemon, 500)
        after_500 = resident_kb(daemon.process.pid)
        send(daemon, 4500)
        after_5000 = resident_kb(daemon.process.pid)
        assert daemon.alive()
        assert "M4499: failed (signing)" in daemon.log_text() and "does not belong to" in daemon.log_text()
        grown = (after_5000 - after_500) / 1024
        print(f"resident after 500 failing messages {after_500 / 1024:.1f} MB, after 5000 {after_5000 / 1024:.1f} MB")
        assert grown < 5, f"{grown:.1f} MB more after 4,500 more failing messages"
    finally:
        daemon.stop()
