"""Revocation through the milter protocol with the certificate authority's web server down, up,
and gone again across a restart: a message never waits on the CA for more than CRLFetchTimeout,
and lists fetched once keep answering."""

import socket
import subprocess
import sys
import time

from conftest import BINARY, REPO, Daemon, Session, ca_ports, signed_by_provincial_office
from postfix_instance import stop_process


def signed(pki, key, sender):
    message = (f"From: {sender}\r\nTo: stttt@stttt.dienbien.gov.vn\r\nSubject: Công văn\r\n\r\n"
               "Nội dung công văn.\r\n").encode()
    return subprocess.run(
        [str(BINARY), "sign", "--key",
         f"{pki}/certs/{key}.key", "--cert", f"{pki}/certs/{key}.pem", "--chain", f"{pki}/ca/chain.pem"],
        input=message, capture_output=True, check=True).stdout


def verdict(daemon, message, queue_id):
    session = Session(daemon, client="203.0.113.7")
    start = time.time()
    result = session.send(message, queue_id=queue_id)
    took = time.time() - start
    session.close()
    return result.header("Authentication-Results")[0], took


def silent_server(port):
    """Accepts connections and never answers, as a CA web server behind a broken proxy does."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    listener.listen(64)
    return listener


def ca_server(pki):
    process = subprocess.Popen(
        [sys.executable, str(REPO / "Tests" / "TestSupport" / "ca_server.py"), "--port", str(ca_ports(pki)[0]),
         "--root", str(pki)],
        stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    assert process.stdout.readline().strip() == "ready"
    return process


def test_a_silent_ca_costs_one_message_the_budget_and_fetched_lists_survive_a_restart(pki, tmp_path):
    good = signed_by_provincial_office(pki, (
        "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\nSubject: Thông báo\r\n\r\n"
        "Nội dung.\r\n").encode())
    revoked = signed(pki, "revoked", "thuhoi@dienbien.gov.vn")
    # A message that waited for the download from the silent server would wait the whole budget.
    budget = 5
    lines = [f"TrustAnchors {pki}/ca/root.pem", "RevocationCheck crl+fetch", f"CRLFetchTimeout {budget}",
             "FetchHosts 127.0.0.1:%d, 127.0.0.1:%d" % ca_ports(pki)]

    listener = silent_server(ca_ports(pki)[0])
    daemon = Daemon(tmp_path / "milter", lines).start()
    try:
        first, first_took = verdict(daemon, good, "R000")
        # Both distribution points waited for at once: one after the other would take twice the budget.
        assert "smime=temperror" in first and first_took < 2 * budget, (first, first_took)
        for number in range(40):
            result, took = verdict(daemon, good, f"R{number + 1:03d}")
            assert "smime=temperror" in result
            # No message waits for the download in flight or backing off (`make bench` measures how fast they are).
            assert took < budget, f"message {number + 1} took {took:.3f} s: it waited for the download"
    finally:
        daemon.stop()
        listener.close()

    server = ca_server(pki)
    try:
        daemon.start()
        assert "smime=pass" in verdict(daemon, good, "UP1")[0]
        assert "smime=fail" in verdict(daemon, revoked, "UP2")[0]
        daemon.stop()
    finally:
        stop_process(server, timeout=5)

    kept = list((tmp_path / "milter" / "crl-cache").glob("*.der"))
    assert len(kept) == 2, kept
    daemon.start()
    try:
        assert "smime=pass" in verdict(daemon, good, "KEPT1")[0]
        assert "smime=fail" in verdict(daemon, revoked, "KEPT2")[0]
    finally:
        daemon.stop()
