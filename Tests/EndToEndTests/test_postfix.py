"""smime-milter in a real Postfix (postfix -c DIR on loopback) relaying to smtp-sink."""

import base64
import ctypes
import os
import socket
import shutil
import smtplib
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from miltertest import constants as c

from conftest import Daemon, Session, key_uri, openssl_verify, signed_by_provincial_office
from postfix_instance import PostfixInstance, SmtpSink, free_port

SUBMITTED = (
    "From: =?UTF-8?B?UGjDsm5nIEvhur8gdG/DoW4=?= <ketoan@stttt.dienbien.gov.vn>\r\n"
    "To: ubnd@muonglay.dienbien.gov.vn\r\n"
    "Subject: =?UTF-8?B?Q8O0bmcgdsSDbiBz4buRIDEyMy9TVFRUVA==?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Kính gửi Ủy ban nhân dân thị xã Mường Lay.\r\n"
).encode()


@pytest.fixture(scope="module")
def setup(pki):
    # Postfix's daemons run as the postfix user: the directory must be reachable for them.
    base = Path(tempfile.mkdtemp(prefix="smime-milter-postfix-"))
    os.chmod(base, 0o755)
    sink = SmtpSink(base / "sink")
    chain = f"{pki}/ca/chain.pem"
    (base / "milter").mkdir()
    (base / "milter" / "signing-table").write_text("\n".join([
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}",
        f"*@recovery.dienbien.gov.vn {key_uri(pki, 'Recovery-Test', 'recovery')} chain={chain}",
    ]) + "\n")
    daemon = Daemon(base / "milter", [
        f"SigningTable {base}/milter/signing-table",
        "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
        f"TrustAnchors {pki}/ca/root.pem",
        f"CRLDirectory {pki}/crl",
        "MTA ORIGINATING",
        "UMask 000",
    ])
    os.chmod(base / "milter", 0o755)
    daemon.start()
    postfix = PostfixInstance(base / "postfix", sink.port, milter=f"unix:{daemon.socket}").start()
    yield postfix, sink, daemon, base
    postfix.stop()
    daemon.stop()
    sink.stop()
    shutil.rmtree(base, ignore_errors=True)


def wait_for_messages(postfix, sink, count, timeout=60):
    """The messages in the sink, once Postfix has logged `count` deliveries to it since the
    last `clear()` (smtp-sink writes as the data arrives: only Postfix's status=sent says
    a message is complete)."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if postfix.log().count("status=sent") - postfix.delivered_before >= count:
            messages = sink.messages()
            assert len(messages) == count, f"{len(messages)} messages in the sink, {count} delivered"
            return messages
        time.sleep(0.2)
    raise AssertionError(f"{postfix.log().count('status=sent') - postfix.delivered_before} of {count} messages arrived")


def clear(postfix, sink):
    sink.clear()
    postfix.delivered_before = postfix.log().count("status=sent")


def smtp(port, message, sender, recipient, source="127.0.0.1"):
    with smtplib.SMTP("127.0.0.1", port, source_address=(source, 0), timeout=120) as client:
        client.sendmail(sender, [recipient], message)


def verify_with_openssl_and_gpgsm(pki, message: bytes, directory: Path):
    openssl = openssl_verify(pki, message, directory)
    assert openssl.returncode == 0, openssl.stderr

    # gpgsm wants the signed entity and the signature as two files.
    head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    boundary = head.split(b'boundary="')[1].split(b'"')[0]
    # preamble, signed entity, signature part, closing delimiter
    parts = body.split(b"\n--" + boundary)
    signed = parts[1][1:].replace(b"\n", b"\r\n")
    signature_part = parts[2][1:].split(b"\n\n", 1)[1]
    (directory / "content").write_bytes(signed)
    (directory / "smime.p7s").write_bytes(base64.b64decode(signature_part))
    home = directory / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg-connect-agent", "/bye"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        subprocess.run(["gpgsm", "--batch", "--import", f"{pki}/ca/root.pem"], env=env, capture_output=True)
        fingerprint = subprocess.run(["openssl", "x509", "-in", f"{pki}/ca/root.pem", "-noout", "-fingerprint",
                                      "-sha1"], capture_output=True, text=True).stdout.split("=")[1].strip()
        (home / "trustlist.txt").write_text(f"{fingerprint} S relax\n")
        gpgsm = subprocess.run(["gpgsm", "--batch", "--disable-crl-checks", "--verify", str(directory / "smime.p7s"),
                                str(directory / "content")], env=env, capture_output=True, text=True)
        assert gpgsm.returncode == 0, gpgsm.stderr
        assert "Good signature" in gpgsm.stderr
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, stdin=subprocess.DEVNULL, capture_output=True)


def test_submission_on_the_originating_service_arrives_signed(setup, pki, tmp_path):
    postfix, sink, daemon, _ = setup
    clear(postfix, sink)
    smtp(postfix.submission_port, SUBMITTED, "ketoan@stttt.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn",
         source="127.0.0.3")
    [message] = wait_for_messages(postfix, sink, 1)
    assert b"multipart/signed" in message.split(b"\n\n")[0]
    verify_with_openssl_and_gpgsm(pki, message, tmp_path)


def test_mail_from_an_internal_address_and_local_submission_arrive_signed(setup, pki, tmp_path):
    postfix, sink, daemon, _ = setup
    clear(postfix, sink)
    smtp(postfix.smtp_port, SUBMITTED, "ketoan@stttt.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn")
    postfix.sendmail(SUBMITTED, "ketoan@stttt.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn")
    messages = wait_for_messages(postfix, sink, 2)
    assert len(messages) == 2
    for index, message in enumerate(messages):
        directory = tmp_path / str(index)
        directory.mkdir()
        verify_with_openssl_and_gpgsm(pki, message, directory)


def test_signed_mail_from_outside_arrives_with_smime_pass(setup, pki, tmp_path):
    postfix, sink, daemon, _ = setup
    clear(postfix, sink)
    signed = signed_by_provincial_office(
        pki, b"From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\nSubject: test\r\n\r\nhello\r\n")
    smtp(postfix.smtp_port, signed, "vanphong.ubnd@dienbien.gov.vn", "stttt@stttt.dienbien.gov.vn", source="127.0.0.3")
    [message] = wait_for_messages(postfix, sink, 1)
    head = message.split(b"\n\n")[0].decode()
    # smtp-sink's own Received field comes first; ours are the next, above Postfix's Received.
    fields = [line for line in head.split("\n") if line[:1] not in (" ", "\t")]
    assert "by smtp-sink" in head.split("Authentication-Results")[0]
    first = fields[1]
    assert first.startswith("Authentication-Results: mail.dienbien.gov.vn; smime=pass"), head
    assert "X-SMIME-Verification:" in head


def test_mail_while_the_token_is_gone_is_deferred_then_delivered_signed(setup, pki, tmp_path):
    postfix, sink, daemon, _ = setup
    clear(postfix, sink)
    subprocess.run(["bash", f"{pki}/recovery-token.sh", "pull"], check=True)
    try:
        message = SUBMITTED.replace(b"ketoan@stttt.dienbien.gov.vn", b"vanthu@recovery.dienbien.gov.vn")
        postfix.sendmail(message, "vanthu@recovery.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn")
        deadline = time.time() + 30
        while "signing token unavailable" not in postfix.log() and time.time() < deadline:
            time.sleep(0.2)
        assert "milter-reject: END-OF-MESSAGE from localhost[127.0.0.1]: 4.7.0 signing token unavailable" in postfix.log(), postfix.log()[-2000:]
        time.sleep(1)
        assert sink.messages() == [], "nothing leaves unsigned"
        assert len(postfix.queue_ids()) == 1 or list((postfix.queue / "maildrop").iterdir()), "the message is still queued"
    finally:
        # Put back whatever happened: the other tests of this module sign with it.
        subprocess.run(["bash", f"{pki}/recovery-token.sh", "insert"], check=True)

    # The module is restarted at most every 5 seconds while a token is missing: the queue is
    # flushed until the message leaves (each try before the restart is deferred again).
    deadline = time.time() + 90
    while postfix.log().count("status=sent") - postfix.delivered_before < 1 and time.time() < deadline:
        postfix.kick()
        time.sleep(5)
    [delivered] = wait_for_messages(postfix, sink, 1, timeout=90)
    verify_with_openssl_and_gpgsm(pki, delivered, tmp_path)


def test_a_30_mb_message_passes_and_the_daemons_peak_memory_is_reported(setup, pki, tmp_path):
    postfix, sink, daemon, base = setup
    clear(postfix, sink)
    line = "Số liệu thống kê dân số các xã, phường năm 2026;0123456789;ABCDEFGHIJ\r\n".encode()
    body = line * (30 * 1024 * 1024 // len(line))
    smtp(postfix.submission_port, SUBMITTED + body, "ketoan@stttt.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn")
    [message] = wait_for_messages(postfix, sink, 1, timeout=300)
    assert len(message) > 30 * 1024 * 1024
    status = Path(f"/proc/{daemon.process.pid}/status").read_text()
    peak_kb = int(next(l for l in status.splitlines() if l.startswith("VmHWM:")).split()[1])
    report = f"smime-milter peak resident memory after a 30 MB message: {peak_kb // 1024} MB"
    print(report)
    (Path(os.environ.get("SMIME_MILTER_REPORT_DIR", base)) / "peak-memory.txt").write_text(report + "\n")
    verify_with_openssl_and_gpgsm(pki, message, tmp_path)
    assert peak_kb < 400 * 1024, report


def peer_socket_option(pid, local_port, remote_port, level, option):
    """An option of the socket process `pid` holds for the TCP connection 127.0.0.1:`local_port`
    <-> 127.0.0.1:`remote_port`, read from a copy of its descriptor (pidfd_getfd, as root).
    /proc/net/tcp writes addresses as the host reads them: 0100007F on a little-endian machine."""
    wanted = f"0100007F:{local_port:04X} 0100007F:{remote_port:04X}"
    inode = next(line.split()[9] for line in Path("/proc/net/tcp").read_text().splitlines()[1:]
                 if " ".join(line.split()[1:3]) == wanted)
    descriptor = next(int(fd) for fd in os.listdir(f"/proc/{pid}/fd")
                      if os.readlink(f"/proc/{pid}/fd/{fd}") == f"socket:[{inode}]")
    libc = ctypes.CDLL(None, use_errno=True)
    pidfd = os.pidfd_open(pid)
    try:
        copy = libc.syscall(438, pidfd, descriptor, 0)  # SYS_pidfd_getfd
        assert copy >= 0, os.strerror(ctypes.get_errno())
    finally:
        os.close(pidfd)
    with socket.socket(fileno=copy) as duplicate:
        return duplicate.getsockopt(level, option)


def test_on_tcp_the_milter_answers_where_postfix_waits_and_sends_at_once(pki, tmp_path):
    """On TCP, Postfix sends a command it expects no answer to as a segment of its own, and Nagle's
    algorithm holds its next command until that one is acknowledged: 40 ms later when nothing
    answers it. So over TCP the milter answers every step after which Postfix waits for its SMTP
    client, and its own connections have TCP_NODELAY (its replies to one message are several
    writes). Both checked on the daemon, then a message through Postfix arrives signed."""
    # Postfix's daemons run as the postfix user: the directory must be reachable for them.
    base = Path(tempfile.mkdtemp(prefix="smime-milter-tcp-"))
    os.chmod(base, 0o755)
    chain = f"{pki}/ca/chain.pem"
    (base / "signing-table").write_text(
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}\n")
    daemon = Daemon(base / "milter", [
        f"SigningTable {base}/signing-table", "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
        f"TrustAnchors {pki}/ca/root.pem", "MTA ORIGINATING"], tcp_port=free_port()).start()
    sink = SmtpSink(base / "sink")
    postfix = None
    try:
        session = Session(daemon)
        waits = c.SMFIP_NR_CONN | c.SMFIP_NR_RCPT | c.SMFIP_NOHELO | c.SMFIP_NODATA
        assert session.conn.protocol_flags & waits == 0, hex(session.conn.protocol_flags)
        unanswered = c.SMFIP_NR_HDR | c.SMFIP_NR_EOH | c.SMFIP_NR_BODY
        assert session.conn.protocol_flags & unanswered == unanswered, hex(session.conn.protocol_flags)
        client_port = session.sock.getsockname()[1]
        assert peer_socket_option(daemon.process.pid, daemon.tcp_port, client_port,
                                  socket.IPPROTO_TCP, socket.TCP_NODELAY) == 1
        session.close()

        postfix = PostfixInstance(base / "postfix", sink.port, milter=f"inet:127.0.0.1:{daemon.tcp_port}").start()
        postfix.delivered_before = 0
        smtp(postfix.submission_port, SUBMITTED, "ketoan@stttt.dienbien.gov.vn", "ubnd@muonglay.dienbien.gov.vn",
             source="127.0.0.3")
        [message] = wait_for_messages(postfix, sink, 1)
        assert b"multipart/signed" in message.split(b"\n\n")[0]
        assert openssl_verify(pki, message, tmp_path).returncode == 0
    finally:
        if postfix:
            postfix.stop()
        daemon.stop()
        sink.stop()
        shutil.rmtree(base, ignore_errors=True)
