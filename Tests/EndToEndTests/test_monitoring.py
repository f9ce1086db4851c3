"""Watching the daemon: /metrics scraped by a real Prometheus while mail flows through the milter
protocol, /healthz, and the systemd notify protocol on a datagram socket the test owns."""

import json
import os
import signal
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest
from miltertest import constants as c

from conftest import BINARY, Daemon, Session, key_uri, reload, signed_by_provincial_office
from postfix_instance import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]


def message(sender, subject="Báo cáo"):
    return (f"From: {sender}\r\nTo: ubnd@muonglay.dienbien.gov.vn\r\nSubject: {subject}\r\n"
            "Content-Type: text/plain; charset=utf-8\r\n\r\nKính gửi.\r\n").encode()


class NotifySocket:
    """The socket systemd would own as NOTIFY_SOCKET: every datagram the daemon sends, in order."""

    def __init__(self, path):
        self.path = str(path)
        self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        self.sock.bind(self.path)
        self.sock.settimeout(0.2)
        self.messages = []
        self.lock = threading.Lock()
        self.running = True
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        while self.running:
            try:
                data = self.sock.recv(4096)
            except socket.timeout:
                continue
            except OSError:
                return
            with self.lock:
                self.messages.append((time.monotonic(), data.decode()))

    def received(self, since=0.0):
        with self.lock:
            return [text for at, text in self.messages if at >= since]

    def wait_for(self, prefix, since=0.0, timeout=15):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for text in self.received(since):
                if text.startswith(prefix) or f"\n{prefix}" in text:
                    return text
            time.sleep(0.05)
        raise AssertionError(f"no {prefix!r} datagram; got {self.received(since)}")

    def close(self):
        self.running = False
        self.sock.close()


def get(port, path, timeout=10):
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{port}{path}", timeout=timeout) as response:
            return response.status, response.read().decode()
    except urllib.error.HTTPError as error:
        return error.code, error.read().decode()


def samples(text, name):
    """{labels-string: value} of one metric in an exposition."""
    found = {}
    for line in text.splitlines():
        if line.startswith(name + "{") or line.startswith(name + " "):
            key, _, value = line.rpartition(" ")
            found[key[len(name):]] = float(value)
    return found


def start_daemon(pki, directory, metrics_port, notify=None, watchdog_usec=None, extra=()):
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chain = f"{pki}/ca/chain.pem"
    (directory / "signing-table").write_text("\n".join([
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}",
        f"*@absent.dienbien.gov.vn pkcs11:token=Absent-Token;object=seal;type=private?pin-source=file:{pki}/pins/PIN-Test",
        f"*@dienbien.gov.vn {pki}/certs/vanphong.key cert={pki}/certs/vanphong.pem chain={chain}",
    ]) + "\n")
    (directory / "units").write_text("*@dienbien.gov.vn  Văn phòng UBND tỉnh\n*@stttt.dienbien.gov.vn  Sở TT&TT\n")
    env = {}
    if notify:
        env["NOTIFY_SOCKET"] = notify.path
    if watchdog_usec:
        env["WATCHDOG_USEC"] = str(watchdog_usec)
    daemon = Daemon(directory, [
        f"SigningTable {directory}/signing-table",
        f"Units {directory}/units",
        "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
        f"TrustAnchors {pki}/ca/root.pem",
        f"CRLDirectory {pki}/crl",
        "InternalHosts 127.0.0.1, ::1, 10.20.0.0/16",
        f"MetricsListen inet:{metrics_port}@127.0.0.1",
        *extra,
    ], env=env)
    return daemon.start()


@pytest.fixture
def notify(tmp_path):
    sock = NotifySocket(tmp_path / "notify.sock")
    yield sock
    sock.close()


@pytest.fixture
def monitored(pki, tmp_path, notify):
    port = free_port()
    daemon = start_daemon(pki, tmp_path / "milter", port, notify=notify, watchdog_usec=2_000_000)
    daemon.metrics_port = port
    yield daemon
    daemon.stop()


class Prometheus:
    """A real Prometheus on loopback, with a configuration and data directory of its own."""

    def __init__(self, directory, target_port, rules=None):
        self.port = free_port()
        directory.mkdir(parents=True, exist_ok=True)
        config = directory / "prometheus.yml"
        lines = ["global:", "  scrape_interval: 1s", "  evaluation_interval: 1s"]
        if rules:
            lines += ["rule_files:", f"  - {rules}"]
        lines += ["scrape_configs:", "  - job_name: smime-milter", "    static_configs:",
                  f"      - targets: ['127.0.0.1:{target_port}']"]
        config.write_text("\n".join(lines) + "\n")
        self.log = open(directory / "prometheus.log", "wb")
        self.process = subprocess.Popen(
            ["prometheus", f"--config.file={config}", f"--storage.tsdb.path={directory / 'data'}",
             f"--web.listen-address=127.0.0.1:{self.port}"], stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                if get(self.port, "/-/ready", timeout=2)[0] == 200:
                    return
            except OSError:
                pass
            assert self.process.poll() is None, (directory / "prometheus.log").read_text()
            time.sleep(0.2)
        raise AssertionError("Prometheus did not become ready")

    def query(self, expression):
        url = f"/api/v1/query?query={urllib.parse.quote(expression)}"
        status, body = get(self.port, url)
        assert status == 200, body
        return json.loads(body)["data"]["result"]

    def wait_for(self, expression, predicate, timeout=30):
        deadline = time.time() + timeout
        result = None
        while time.time() < deadline:
            result = self.query(expression)
            if predicate(result):
                return result
            time.sleep(0.5)
        raise AssertionError(f"{expression}: {result}")

    def stop(self):
        stop_process(self.process, timeout=30)
        self.log.close()


def value(result):
    return float(result[0]["value"][1]) if result else None


# MARK: Prometheus scraping while mail flows

def test_counters_in_prometheus_equal_the_messages_sent(monitored, pki, tmp_path):
    prometheus = Prometheus(tmp_path / "prometheus", monitored.metrics_port)
    try:
        prometheus.wait_for('up{job="smime-milter"}', lambda r: value(r) == 1)
        session = Session(monitored, client="10.20.1.5")
        for index in range(7):
            result = session.send(message(f"vanphong{index}@dienbien.gov.vn"), queue_id=f"Q{index}")
            assert result.reply[0] == c.SMFIR_CONTINUE and result.body_replaced
        for index in range(3):
            result = session.send(message("nobody@example.org"), queue_id=f"N{index}")
            assert not result.body_replaced
        session.close()
        incoming = Session(monitored, client="203.0.113.7")
        signed = signed_by_provincial_office(pki, (
            "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\n"
            "Subject: Thông báo\r\n\r\nNội dung công văn.\r\n").encode())
        for index in range(4):
            incoming.send(signed, queue_id=f"I{index}")
        incoming.close()

        signed_series = prometheus.wait_for(
            'smime_milter_messages_total{outcome="signed"}', lambda r: value(r) == 7)
        assert signed_series[0]["metric"]["unit"] == "Văn phòng UBND tỉnh"
        assert signed_series[0]["metric"]["direction"] == "outgoing"
        skipped = prometheus.wait_for('sum(smime_milter_messages_total{outcome="skipped"})', lambda r: value(r) == 3)
        assert value(skipped) == 3
        prometheus.wait_for('smime_milter_verifications_total{result="pass"}', lambda r: value(r) == 4)
        prometheus.wait_for('smime_milter_signing_duration_seconds_count', lambda r: value(r) == 7)
        prometheus.wait_for('smime_milter_message_duration_seconds_count', lambda r: value(r) == 14)
        assert value(prometheus.query('smime_milter_messages_in_flight')) == 0
        build = prometheus.query("smime_milter_build_info")
        assert build and build[0]["metric"]["version"]
        assert value(prometheus.query("smime_milter_config_last_reload_successful")) == 1
    finally:
        prometheus.stop()


def test_token_states_and_certificate_expiry_are_exported(monitored):
    text = get(monitored.metrics_port, "/metrics")[1]
    expiry = samples(text, "smime_milter_certificate_expiry_timestamp_seconds")
    # Before any mail: the file key's cert= and chain= certificates.
    assert any('role="signer"' in labels and 'token="file"' in labels for labels in expiry), expiry
    assert "smime_milter_token_state" not in text

    session = Session(monitored, client="10.20.1.5")
    assert session.send(message("ketoan@stttt.dienbien.gov.vn"), queue_id="T1").body_replaced
    result = session.send(message("ketoan@absent.dienbien.gov.vn"), queue_id="T2")
    assert result.reply[0] == c.SMFIR_REPLYCODE
    session.close()
    text = get(monitored.metrics_port, "/metrics")[1]
    states = samples(text, "smime_milter_token_state")
    assert states['{unit="Sở TT&TT",token="STTTT-DienBien",state="ok"}'] == 1
    assert states['{unit="Sở TT&TT",token="STTTT-DienBien",state="locked"}'] == 0
    # Not in the Units table: the unit is the pattern's domain, bounded by the signing table.
    assert states['{unit="absent.dienbien.gov.vn",token="Absent-Token",state="absent"}'] == 1, states
    assert samples(text, "smime_milter_token_signatures_total")['{unit="Sở TT&TT",token="STTTT-DienBien"}'] == 1
    assert samples(text, "smime_milter_token_sessions_in_use")['{unit="Sở TT&TT",token="STTTT-DienBien"}'] == 0
    expiry = samples(text, "smime_milter_certificate_expiry_timestamp_seconds")
    token_rows = [labels for labels in expiry if 'token="STTTT-DienBien"' in labels]
    assert any('role="signer"' in labels for labels in token_rows) and any('role="ca"' in labels for labels in token_rows)
    assert all(value > time.time() for value in expiry.values())


# MARK: /healthz and the notify protocol

def test_healthz_answers_ok_and_other_paths_are_404(monitored):
    assert get(monitored.metrics_port, "/healthz") == (200, "ok\n")
    for path in ["/", "/metrics/", "/index.html", "/api/v1/query", "/healthz?x=1/../../etc"]:
        status, _ = get(monitored.metrics_port, path)
        assert status == (200 if path.startswith("/healthz?") else 404), path
    request = urllib.request.Request(f"http://127.0.0.1:{monitored.metrics_port}/metrics", data=b"x", method="POST")
    with pytest.raises(urllib.error.HTTPError) as error:
        urllib.request.urlopen(request, timeout=5)
    assert error.value.code == 405


def test_notify_protocol_ready_status_reloading_and_watchdog(monitored, notify):
    ready = notify.wait_for("READY=1")
    assert "STATUS=signing for 2 units (3 signing-table lines); verifying incoming mail" in ready
    first = notify.wait_for("WATCHDOG=1")
    assert first == "WATCHDOG=1"
    # Kept alive: WATCHDOG_USEC is 2 s, a keep-alive every second.
    time.sleep(3.5)
    assert notify.received().count("WATCHDOG=1") >= 3

    mark = time.monotonic()
    monitored.process.send_signal(signal.SIGHUP)
    reloading = notify.wait_for("RELOADING=1", since=mark)
    assert "MONOTONIC_USEC=" in reloading
    again = notify.wait_for("READY=1", since=mark)
    assert "STATUS=signing for 2 units" in again
    texts = notify.received(since=mark)
    assert texts.index(reloading) < texts.index(again)

    # Tokens in the status once mail was signed with them.
    session = Session(monitored, client="10.20.1.5")
    assert session.send(message("ketoan@stttt.dienbien.gov.vn"), queue_id="T1").body_replaced
    session.send(message("ketoan@absent.dienbien.gov.vn"), queue_id="T2")
    session.close()
    status = notify.wait_for("STATUS=signing for 2 units (3 signing-table lines); tokens: 1 ok, 1 absent", since=mark)
    assert status == "STATUS=signing for 2 units (3 signing-table lines); tokens: 1 ok, 1 absent; verifying incoming mail"


def test_no_watchdog_and_503_while_the_milter_loop_does_not_answer(monitored, notify):
    notify.wait_for("WATCHDOG=1")
    # The socket file gone: the loop can no longer be reached, as when it is wedged.
    hidden = monitored.socket.with_name("hidden.sock")
    os.rename(monitored.socket, hidden)
    time.sleep(1.5)
    mark = time.monotonic()
    time.sleep(3)
    assert "WATCHDOG=1" not in notify.received(since=mark)
    status, reason = get(monitored.metrics_port, "/healthz")
    assert status == 503 and "refused the connection" in reason, reason
    assert "health:" in monitored.log_text()

    os.rename(hidden, monitored.socket)
    mark = time.monotonic()
    notify.wait_for("WATCHDOG=1", since=mark, timeout=10)
    assert get(monitored.metrics_port, "/healthz")[0] == 200


def test_stopping_is_announced(monitored, notify):
    notify.wait_for("READY=1")
    monitored.stop()
    assert any(text.startswith("STOPPING=1") for text in notify.received())


# MARK: bad input

def test_a_taken_metrics_port_is_a_clear_error_at_start_and_in_check_config(pki, tmp_path):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        with pytest.raises(RuntimeError) as error:
            start_daemon(pki, tmp_path / "milter", port)
        expected = f"MetricsListen inet:{port}@127.0.0.1: the address is already in use by another process; stop it or choose another port"
        assert expected in str(error.value)
        check = subprocess.run([str(BINARY), "check-config", "--no-tokens", "--config", str(tmp_path / "milter" / "smime-milter.conf")],
                               capture_output=True, text=True)
        assert check.returncode == 1
        assert f"error: {expected}" in check.stdout


def test_check_config_knows_the_running_daemon_holds_its_metrics_port(monitored):
    check = subprocess.run([str(BINARY), "check-config", "--no-tokens", "--config", str(monitored.config)],
                           capture_output=True, text=True)
    assert f"ok: MetricsListen inet:{monitored.metrics_port}@127.0.0.1: served by the running smime-milter" in check.stdout, check.stdout


def test_scrapes_during_reloads_all_answer(monitored):
    failures = []
    bodies = []
    stop = threading.Event()

    def scrape():
        while not stop.is_set():
            try:
                status, body = get(monitored.metrics_port, "/metrics")
                bodies.append(body)
                if status != 200 or "smime_milter_build_info" not in body:
                    failures.append((status, body[:200]))
            except OSError as error:
                failures.append(str(error))

    threads = [threading.Thread(target=scrape) for _ in range(3)]
    for thread in threads:
        thread.start()
    before = samples(get(monitored.metrics_port, "/metrics")[1], "smime_milter_config_last_reload_timestamp_seconds")
    for _ in range(10):
        reload(monitored, "configuration reloaded")
    stop.set()
    for thread in threads:
        thread.join()
    assert not failures, failures[:3]
    assert len(bodies) > 10
    after = samples(get(monitored.metrics_port, "/metrics")[1], "smime_milter_config_last_reload_timestamp_seconds")
    assert after[""] > before[""]
    assert monitored.log_text().count("configuration reloaded") == 10
    assert monitored.alive()


def test_a_refused_reload_is_exported(monitored):
    monitored.config.write_text(monitored.config.read_text() + "Mode nonsense\n")
    monitored.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 10
    while time.time() < deadline:
        text = get(monitored.metrics_port, "/metrics")[1]
        if samples(text, "smime_milter_config_last_reload_successful") == {"": 0.0}:
            break
        time.sleep(0.1)
    assert samples(text, "smime_milter_config_last_reload_successful") == {"": 0.0}


def test_ten_thousand_senders_keep_the_series_bounded(monitored):
    session = Session(monitored, client="10.20.1.5")
    for index in range(10_000):
        # Each From in a domain of its own: a unit per sender if they were labels.
        result = session.send(message(f"user{index}@sender{index}.example"), queue_id=f"F{index}")
        assert result.reply[0] == c.SMFIR_CONTINUE
    session.close()
    text = get(monitored.metrics_port, "/metrics")[1]
    series = [line for line in text.splitlines() if line and not line.startswith("#")]
    assert len(series) < 200, len(series)
    skipped = samples(text, "smime_milter_messages_total")
    assert skipped == {'{direction="outgoing",outcome="skipped",reason="no-signer",unit="other"}': 10_000.0}
    assert "sender1.example" not in text and "user1@" not in text and "F1" not in text


def test_slow_clients_do_not_hold_up_the_milter(monitored):
    # Clients that connect and send half a request, or nothing at all, and keep the connection.
    slow = []
    # More than the endpoint serves at once (32): the rest are closed at once.
    for index in range(60):
        sock = socket.create_connection(("127.0.0.1", monitored.metrics_port))
        if index % 2:
            sock.sendall(b"GET /metr")
        slow.append(sock)
    try:
        session = Session(monitored, client="10.20.1.5")
        for index in range(20):
            result = session.send(message("vanphong@dienbien.gov.vn"), queue_id=f"S{index}")
            assert result.body_replaced
        session.close()
        assert monitored.alive()
    finally:
        for sock in slow:
            sock.close()
    # Once they are gone, scrapers are answered again.
    deadline = time.time() + 10
    while True:
        try:
            status, body = get(monitored.metrics_port, "/metrics", timeout=5)
            break
        except OSError:
            assert time.time() < deadline
            time.sleep(0.2)
    assert status == 200 and "smime_milter_build_info" in body


def test_idle_metrics_connections_are_closed(monitored):
    sock = socket.create_connection(("127.0.0.1", monitored.metrics_port))
    sock.settimeout(20)
    started = time.monotonic()
    try:
        assert sock.recv(1) == b""
        assert 8 < time.monotonic() - started < 15
    finally:
        sock.close()


# MARK: the alert rules and the dashboard

MONITORING_CONF = REPO / "conf"


def test_alert_rules_pass_promtool_check_and_their_unit_tests():
    rules = MONITORING_CONF / "prometheus"
    check = subprocess.run(["promtool", "check", "rules", "smime-milter-rules.yml"], cwd=rules, capture_output=True, text=True)
    assert check.returncode == 0, check.stdout + check.stderr
    test = subprocess.run(["promtool", "test", "rules", "smime-milter-rules.test.yml", "smime-milter-expiry.test.yml"], cwd=rules, capture_output=True, text=True)
    assert test.returncode == 0, test.stdout + test.stderr


def declared_metric_names():
    """Every name DaemonMetrics declares (`name("x", "unit", ...)`), histograms with their series."""
    import re
    source = (REPO / "Sources" / "Monitoring" / "DaemonMetrics.swift").read_text()
    names = set()
    for metric, unit in re.findall(r'name\(\s*"([a-z_]+)",\s*"([a-z_]*)"', source):
        name = "_".join(part for part in ("smime_milter", metric, unit) if part)
        names.add(name)
        if unit == "seconds" and "duration" in metric:
            names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


def test_every_metric_the_dashboard_and_rules_use_is_one_the_daemon_exports(monitored):
    import re
    declared = declared_metric_names()
    session = Session(monitored, client="10.20.1.5")
    session.send(message("ketoan@stttt.dienbien.gov.vn"), queue_id="D1")
    session.close()
    scraped = {line.split("{")[0].split(" ")[0] for line in get(monitored.metrics_port, "/metrics")[1].splitlines()
               if line and not line.startswith("#")}
    # The list read from the source is the one the daemon serves (none missed by the pattern).
    assert scraped <= declared, scraped - declared
    assert {"smime_milter_messages_total", "smime_milter_token_state", "smime_milter_build_info",
            "smime_milter_certificate_expiry_timestamp_seconds"} <= scraped
    dashboard = (MONITORING_CONF / "grafana" / "smime-milter-dashboard.json").read_text()
    json.loads(dashboard)
    rules = (MONITORING_CONF / "prometheus" / "smime-milter-rules.yml").read_text()
    for text in (dashboard, rules):
        used = set(re.findall(r"smime_milter_[a-z_]+", text))
        assert used, "no metric used"
        assert used <= declared, used - declared


# MARK: the alerts firing in a real Prometheus

def firing(prometheus, alertname):
    return prometheus.query(f'ALERTS{{alertname="{alertname}", alertstate="firing"}}')


def test_token_locked_and_certificate_expiry_alerts_fire_in_prometheus(pki, tmp_path):
    from test_hardware_tokens import HardwareToken, hw_daemon

    # A unit certificate that expires in 5 days, in a file beside its key.
    certs = tmp_path / "certs"
    certs.mkdir()
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", str(certs / "soon.key"), "-out", str(certs / "soon.pem"), "-days", "5",
                    "-subj", "/CN=Sở sắp hết hạn/emailAddress=vanthu@soon.dienbien.gov.vn"],
                   check=True, capture_output=True)
    locked = HardwareToken(pki, "HW-Flags")
    locked.set("max_pin_tries", 3)
    locked.set("pin_failures", 3)
    port = free_port()
    daemon = hw_daemon(pki, tmp_path / "milter", [locked], extra=[f"MetricsListen inet:{port}@127.0.0.1"])
    table = daemon.directory / "signing-table"
    table.write_text(table.read_text() + f"*@soon.dienbien.gov.vn {certs}/soon.key cert={certs}/soon.pem\n")
    daemon.start()
    prometheus = None
    try:
        result = Session(daemon, client="127.0.0.1").send(message(locked.address()), queue_id="4LOCK")
        assert result.smtp_reply.startswith("451 4.7.0")
        prometheus = Prometheus(tmp_path / "prometheus", port, rules=MONITORING_CONF / "prometheus" / "smime-milter-rules.yml")
        alert = prometheus.wait_for('ALERTS{alertname="SmimeMilterTokenLocked", alertstate="firing"}', bool)
        assert alert[0]["metric"]["token"] == "HW-Flags"
        assert alert[0]["metric"]["unit"] == "hw-flags.lab.dienbien.gov.vn"
        soon = prometheus.wait_for('ALERTS{alertname="SmimeMilterCertificateExpiresIn7Days", alertstate="firing"}', bool)
        assert soon[0]["metric"]["unit"] == "soon.dienbien.gov.vn" and soon[0]["metric"]["role"] == "signer"
        assert firing(prometheus, "SmimeMilterCertificateExpiresIn30Days")
        assert not firing(prometheus, "SmimeMilterTokenFinalTry")

        # One wrong try less: the token is at its final try, and the alerts follow the next message.
        locked.set("pin_failures", 2)
        Session(daemon, client="127.0.0.1").send(message(locked.address()), queue_id="4FINAL")
        prometheus.wait_for('ALERTS{alertname="SmimeMilterTokenFinalTry", alertstate="firing"}', bool)
        prometheus.wait_for('ALERTS{alertname="SmimeMilterTokenLocked", alertstate="firing"}', lambda r: not r)
    finally:
        if prometheus:
            prometheus.stop()
        daemon.stop()


def test_a_hung_token_shows_a_session_in_use_and_stuck_then_ok_again(pki, tmp_path):
    from test_hardware_tokens import HardwareToken, hw_daemon, send

    hung = HardwareToken(pki, "HW-Hang")
    port = free_port()
    daemon = hw_daemon(pki, tmp_path / "milter", [hung],
                       extra=["SigningTimeout 2", f"MetricsListen inet:{port}@127.0.0.1"]).start()
    labels = '{unit="hw-hang.lab.dienbien.gov.vn",token="HW-Hang"}'
    state = lambda name: samples(get(port, "/metrics")[1], "smime_milter_token_state").get(
        f'{{unit="hw-hang.lab.dienbien.gov.vn",token="HW-Hang",state="{name}"}}')
    try:
        assert send(daemon, hung.address()).body_replaced
        assert state("ok") == 1
        hung.set("hang")
        assert send(daemon, hung.address(), queue_id="HUNG1").smtp_reply.startswith("451 4.7.0")
        # The call still hangs on its token thread: one session in use, and the token is stuck.
        text = get(port, "/metrics")[1]
        assert samples(text, "smime_milter_token_sessions_in_use")[labels] == 1
        assert state("stuck") == 1 and state("ok") == 0
        assert get(port, "/healthz")[0] == 200, "a stuck token is not a stuck milter"

        hung.clear("hang")
        deadline = time.time() + 10
        while not send(daemon, hung.address(), queue_id="AGAIN").body_replaced:
            assert time.time() < deadline
            time.sleep(0.2)
        assert state("ok") == 1 and state("stuck") == 0
        assert samples(get(port, "/metrics")[1], "smime_milter_token_sessions_in_use")[labels] == 0
    finally:
        hung.clear("hang")
        daemon.stop()
