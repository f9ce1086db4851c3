"""The daemon in front of tokens that behave like the province's USB tokens at their worst (the
hwtoken module of Tests/HardwareToken over SoftHSM): PINs that lock, slow and hung tokens, and
one token shared by several mail servers through `p11-kit server`. Each test owns its tokens."""

import os
import signal
import subprocess
import threading
import time
from pathlib import Path

import pytest
from miltertest import constants as c

from conftest import BINARY, Daemon, Session, key_uri, openssl_verify
from postfix_instance import stop_process


def message(sender):
    return (f"From: {sender}\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: Công văn\r\n"
            "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
            "Kính gửi Ủy ban nhân dân thị xã Mường Lay.\r\n").encode()


class HardwareToken:
    """One token's behaviour and counters under the hwtoken module (files in its control folder)."""

    COUNTERS = ("login_calls", "wrong_logins", "signs", "pin_failures")

    def __init__(self, pki, label):
        self.label = label
        self.control = Path(pki) / "hwtoken" / "control" / label
        for name in os.listdir(self.control):
            os.unlink(self.control / name)
        # The counters start at 0 in files of their own, so that a count read from a wrong
        # folder (or one the module never wrote) is an error rather than a silent 0.
        for name in self.COUNTERS:
            (self.control / name).write_text("0")

    def set(self, name, value=""):
        (self.control / name).write_text(str(value))

    def clear(self, name):
        (self.control / name).unlink(missing_ok=True)

    def count(self, name):
        path = self.control / name
        assert path.exists(), f"the hwtoken counter {path} does not exist"
        return int(path.read_text().strip())

    def address(self):
        return f"seal@{self.label.lower()}.lab.dienbien.gov.vn"


def hw_daemon(pki, directory, tokens, extra=(), pin_files=None, env=None):
    """A daemon whose signing table has one line per token, through the hwtoken module."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    lines = []
    for token in tokens:
        pin = (pin_files or {}).get(token.label, f"{pki}/pins/{token.label}")
        lines.append(f"*@{token.label.lower()}.lab.dienbien.gov.vn "
                     f"pkcs11:token={token.label};object=seal;type=private?pin-source=file:{pin} chain={pki}/ca/chain.pem")
    (directory / "signing-table").write_text("\n".join(lines) + "\n")
    return Daemon(directory, [
        f"SigningTable {directory}/signing-table",
        f"PKCS11Module {pki}/hwtoken/hwtoken.so",
        f"TrustAnchors {pki}/ca/root.pem",
        *extra,
    ], env=env)


def send(daemon, sender, queue_id="4HW"):
    session = Session(daemon, client="127.0.0.1")
    try:
        return session.send(message(sender), sender=f"<{sender}>", queue_id=queue_id)
    finally:
        session.close()


def write_pin(path, pin):
    path.write_text(pin)
    os.chmod(path, 0o600)


def test_a_wrong_pin_file_costs_one_wrong_login_across_messages_reloads_restarts_and_check_config(pki, tmp_path):
    token = HardwareToken(pki, "HW-PIN")
    token.set("max_pin_tries", 3)
    pin_file = tmp_path / "pin"
    write_pin(pin_file, "999999")
    daemon = hw_daemon(pki, tmp_path / "milter", [token], pin_files={"HW-PIN": pin_file}).start()
    try:
        replies = []
        for number in range(100):
            result = send(daemon, token.address(), queue_id=f"P{number:03d}")
            replies.append(result.smtp_reply)
            if number in (10, 30, 50):
                daemon.process.send_signal(signal.SIGHUP)
                time.sleep(0.3)
            if number in (20, 40, 60):
                daemon.stop()
                daemon.start()
            if number in (70, 80):
                checked = subprocess.run([str(BINARY), "check-config", "--config", str(daemon.config)],
                                         capture_output=True, text=True)
                assert checked.returncode != 0
                assert "not presented again" in checked.stdout + checked.stderr, checked.stdout + checked.stderr
        assert all(reply.startswith("451 4.7.0") for reply in replies), set(replies)
        assert token.count("wrong_logins") == 1
        assert token.count("pin_failures") == 1, "the token is one wrong try down, not locked"
        log = daemon.log_text()
        assert "999999" not in log
        assert log.count("token PIN state: refused") <= 4, "one line per state change and process, not per message"

        # Corrected while the daemon runs: the next message logs in once and signs.
        write_pin(pin_file, pki_pin(pki))
        result = send(daemon, token.address(), queue_id="PFIXED")
        assert result.reply[0] == c.SMFIR_CONTINUE and result.body_replaced, result.smtp_reply
        verified = openssl_verify(pki, result.message, tmp_path)
        assert verified.returncode == 0, verified.stderr
        assert token.count("wrong_logins") == 1 and token.count("pin_failures") == 0
    finally:
        daemon.stop()


def pki_pin(pki):
    return (Path(pki) / "pins" / "HW-PIN").read_text()


def test_a_token_at_its_final_try_or_locked_gets_no_login_at_all(pki, tmp_path):
    token = HardwareToken(pki, "HW-Flags")
    token.set("max_pin_tries", 3)
    token.set("pin_failures", 2)
    daemon = hw_daemon(pki, tmp_path / "milter", [token]).start()
    try:
        checked = subprocess.run([str(BINARY), "check-config", "--config", str(daemon.config)],
                                 capture_output=True, text=True)
        assert checked.returncode != 0 and "CKF_USER_PIN_FINAL_TRY" in checked.stdout + checked.stderr
        final = send(daemon, token.address())
        token.set("pin_failures", 3)
        locked = send(daemon, token.address())
        assert final.smtp_reply.startswith("451 4.7.0") and locked.smtp_reply.startswith("451 4.7.0")
        assert token.count("login_calls") == 0
        log = daemon.log_text()
        assert "CKF_USER_PIN_FINAL_TRY" in log and "pkcs11-tool --login" in log
        assert "CKF_USER_PIN_LOCKED" in log

        # Wrong tries counted but the PIN file is right: check-config logs in and warns.
        token.set("pin_failures", 1)
        checked = subprocess.run([str(BINARY), "check-config", "--config", str(daemon.config)],
                                 capture_output=True, text=True)
        assert checked.returncode == 0, checked.stdout + checked.stderr
        assert "CKF_USER_PIN_COUNT_LOW" in checked.stdout + checked.stderr
        assert token.count("login_calls") == 1 and token.count("pin_failures") == 0
    finally:
        daemon.stop()


def test_a_hung_token_defers_its_mail_fast_while_another_unit_signs_and_resumes_by_itself(pki, tmp_path):
    hung, other = HardwareToken(pki, "HW-Hang"), HardwareToken(pki, "HW-Unit-B")
    daemon = hw_daemon(pki, tmp_path / "milter", [hung, other], extra=["SigningTimeout 2"]).start()
    try:
        assert send(daemon, hung.address()).body_replaced, "signs before it hangs"
        hung.set("hang")
        start = time.time()
        first = send(daemon, hung.address(), queue_id="HUNG1")
        first_took = time.time() - start
        assert first.smtp_reply.startswith("451 4.7.0"), first.smtp_reply
        assert 1.5 < first_took < 4, first_took

        later_took = []
        for number in range(5):
            start = time.time()
            result = send(daemon, hung.address(), queue_id=f"HUNG{number + 2}")
            later_took.append(time.time() - start)
            assert result.smtp_reply.startswith("451 4.7.0")
            unit_b = send(daemon, other.address(), queue_id=f"B{number}")
            assert unit_b.body_replaced, "another unit's token is not held up"
        assert max(later_took) < 1, f"a stuck token fails fast: {later_took}"
        assert "messages for it are deferred at once" in daemon.log_text()

        hung.clear("hang")
        deadline = time.time() + 10
        while True:
            result = send(daemon, hung.address(), queue_id="HUNG1")
            if result.body_replaced or time.time() > deadline:
                break
            time.sleep(0.2)
        assert result.body_replaced, "the deferred mail signs on a later try once the token answers"
        assert openssl_verify(pki, result.message, tmp_path).returncode == 0
        assert "token answers again" in daemon.log_text()
        # Every message deferred meanwhile signs when its queue tries again.
        for number in range(5):
            assert send(daemon, hung.address(), queue_id=f"HUNG{number + 2}").body_replaced
    finally:
        hung.clear("hang")
        daemon.stop()


def test_a_slow_token_serialises_its_own_mail_and_nothing_is_lost(pki, tmp_path):
    slow, other = HardwareToken(pki, "HW-Slow"), HardwareToken(pki, "HW-Unit-B")
    slow.set("latency_ms", 50)
    slow.set("max_sessions", 1)
    daemon = hw_daemon(pki, tmp_path / "milter", [slow, other], extra=["SessionPoolSize 4"]).start()
    results = []
    lock = threading.Lock()

    def sender(address, count, tag):
        session = Session(daemon, client="127.0.0.1")
        for number in range(count):
            result = session.send(message(address), sender=f"<{address}>", queue_id=f"{tag}{number}")
            with lock:
                results.append((address, result.body_replaced, result.smtp_reply))
        session.close()

    try:
        threads = [threading.Thread(target=sender, args=(slow.address(), 10, f"S{n}x")) for n in range(3)]
        threads.append(threading.Thread(target=sender, args=(other.address(), 30, "B")))
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(120)
        assert len(results) == 60
        assert all(signed for _, signed, _ in results), [r for r in results if not r[1]][:3]
        assert slow.count("signs") >= 30
        assert "CKR_SESSION_COUNT" not in daemon.log_text()
    finally:
        daemon.stop()


def test_two_mail_servers_sign_with_one_token_through_p11_kit_server(pki, tmp_path):
    """The token's host runs `p11-kit server`; a second daemon signs through p11-kit's client module."""
    client_module = "/usr/lib/x86_64-linux-gnu/pkcs11/p11-kit-client.so"
    socket_path = tmp_path / "p11-kit.sock"
    server = subprocess.Popen(
        ["p11-kit", "server", "-f", "-s", "--provider", "/usr/lib/softhsm/libsofthsm2.so", "-n", str(socket_path),
         "pkcs11:token=STTTT-DienBien"],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "XDG_RUNTIME_DIR": str(tmp_path)})
    try:
        deadline = time.time() + 10
        while not socket_path.exists() and time.time() < deadline:
            time.sleep(0.05)
        assert socket_path.exists(), "p11-kit server did not start"
        directory = tmp_path / "milter"
        directory.mkdir()
        (directory / "signing-table").write_text(
            f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={pki}/ca/chain.pem\n")
        daemon = Daemon(directory, [
            f"SigningTable {directory}/signing-table",
            f"PKCS11Module {client_module}",
            f"TrustAnchors {pki}/ca/root.pem",
        ], env={"P11_KIT_SERVER_ADDRESS": f"unix:path={socket_path}"}).start()
        try:
            result = send(daemon, "ketoan@stttt.dienbien.gov.vn", queue_id="REMOTE")
            assert result.body_replaced, result.smtp_reply + daemon.log_text()[-2000:]
            verified = openssl_verify(pki, result.message, tmp_path)
            assert verified.returncode == 0, verified.stderr
        finally:
            daemon.stop()
    finally:
        stop_process(server, timeout=10)
