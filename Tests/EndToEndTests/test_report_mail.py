"""The province's report as people read it and as it arrives by itself: every reason code in
words on the page Chromium renders; `report --mail` through a real Postfix with the milter in its
chain, arriving signed and verifying in openssl, gpgsm and NSS, with the same page and CSV as
`report --format html/csv`; a sendmail that fails; and the shipped timer and service units."""

import base64
import email
import email.header
import email.policy
import os
import re
import shutil
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest

from conftest import BINARY, Daemon, key_uri
from postfix_instance import PostfixInstance, SmtpSink
from test_postfix import clear, verify_with_openssl_and_gpgsm, wait_for_messages
from test_report_html import chromium

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "conf" / "units.sample"
ZONE = {"TZ": "Asia/Ho_Chi_Minh"}


def gateway_reason_codes():
    """Every reason the gateway writes into an unsigned record, read from its source."""
    source = (REPO / "Sources" / "Gateway" / "Gateway.swift").read_text()
    codes = set(re.findall(r'(?:skip\(|fail\(\s*)"([a-z-]+)"', source))
    assert {"no-signer", "bounce", "encrypted", "oversize", "no-from", "token", "malformed"} <= codes, codes
    return sorted(codes)


def records(directory: Path):
    """A year of records for the sample's units (`bench report`), the database the daemon writes."""
    database = directory / "events.sqlite"
    subprocess.run([str(BINARY), "bench", "report", "--records", "3000", "--units", str(UNITS), "--database",
                    str(database), "--year", "2026", "--rounds", "1"], check=True, capture_output=True)
    return database


def report(config, *arguments, env=None):
    return subprocess.run([str(BINARY), "report", "--config", str(config), *arguments], capture_output=True,
                          env={**os.environ, **ZONE, **(env or {})})


def unit_names():
    names = []
    for line in UNITS.read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name = line.split(None, 1)[1].strip()
            if name not in names:
                names.append(name)
    return names


# MARK: words on the page

def test_no_reason_code_is_left_untranslated_on_the_rendered_page(tmp_path):
    database = records(tmp_path)
    codes = gateway_reason_codes() + [""]  # '' is a record without a reason
    # Each unit's commonest reason is one of the codes: every code reaches the page.
    with sqlite3.connect(database) as db:
        for code, unit in zip(codes, unit_names()):
            db.execute("INSERT INTO daily VALUES ('2026-11-15', 'outgoing', ?, '[]', 'unsigned', ?, 1000)", (unit, code))
    assert len(codes) <= len(unit_names())
    config = tmp_path / "smime-milter.conf"
    config.write_text(f"TrustAnchors {REPO}/conf/trust\nUnits {UNITS}\nEventDatabase {database}\n")
    for language, other in (("vi", "lý do khác ("), ("en", "other reason (")):
        page = tmp_path / f"report-{language}.html"
        made = report(config, "--month", "2026-11", "--format", "html", "--lang", language, "--output", str(page))
        assert made.returncode == 0, made.stderr
        dom = chromium("--dump-dom", page.as_uri(), home=tmp_path).stdout.decode()
        cells = re.findall(r'<td class="reasons">(.*?)</td>', dom)
        assert len(cells) == len(unit_names()) + 1, len(cells)
        shown = [re.sub(r" \(\d+\)$", "", entry) for cell in cells for entry in cell.split("<br>") if entry]
        assert shown, dom[-3000:]
        for words in shown:
            assert words not in codes and not words.startswith(other), f"{language}: '{words}' is a code, not words"
        # The commonest reason of each unit is its code's words, all different.
        firsts = [re.sub(r" \(\d+\)$", "", cell.split("<br>")[0]) for cell in cells[:len(codes)]]
        assert len(set(firsts)) == len(codes), firsts
        if language == "vi":
            assert re.search(r"thư sai cấu trúc MIME \(1\d\d\d\)", dom) and re.search(r"không ghi lý do \(1\d\d\d\)", dom)
            assert re.search(r"Lập lúc \d\d:\d\d ngày \d\d/\d\d/20\d\d \(giờ Việt Nam, UTC\+7\)", dom), dom[-500:]
            assert "Kỳ báo cáo: <b>tháng 11/2026</b>" in dom
        # CSV keeps codes out of the way: figures only, as before.
        csv = report(config, "--month", "2026-11", "--format", "csv").stdout.decode()
        assert "thư sai" not in csv and "malformed" not in csv


# MARK: the report by mail through Postfix

@pytest.fixture(scope="module")
def gateway(pki):
    base = Path(tempfile.mkdtemp(prefix="smime-milter-report-mail-"))
    os.chmod(base, 0o755)
    sink = SmtpSink(base / "sink")
    (base / "milter").mkdir()
    (base / "milter" / "signing-table").write_text(
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={pki}/ca/chain.pem\n")
    database = records(base)
    daemon = Daemon(base / "milter", [
        f"SigningTable {base}/milter/signing-table", "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
        f"TrustAnchors {pki}/ca/root.pem", f"CRLDirectory {pki}/crl", f"Units {UNITS}", "UMask 000",
        f"EventDatabase {base}/milter/events.sqlite",
        "ReportMailTo vanphong.ubnd@dienbien.gov.vn, lanhdao@stttt.dienbien.gov.vn",
        "ReportMailFrom baocao@stttt.dienbien.gov.vn",
    ])
    os.chmod(base / "milter", 0o755)
    daemon.start()
    postfix = PostfixInstance(base / "postfix", sink.port, milter=f"unix:{daemon.socket}").start()
    sendmail = base / "sendmail"
    sendmail.write_text(f'#!/bin/sh\nexec /usr/sbin/sendmail -C {postfix.config} "$@"\n')
    sendmail.chmod(0o755)
    yield postfix, sink, daemon, database, sendmail
    postfix.stop()
    daemon.stop()
    sink.stop()
    shutil.rmtree(base, ignore_errors=True)


def nss_verify(pki, content: bytes, signature: bytes, directory: Path):
    nss = directory / "nss"
    nss.mkdir()
    subprocess.run(["certutil", "-N", "-d", f"sql:{nss}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{nss}", "-n", "root", "-t", "C,C,C", "-i", f"{pki}/ca/root.pem"],
                   check=True, capture_output=True)
    (directory / "nss-content").write_bytes(content)
    (directory / "nss-signature").write_bytes(signature)
    return subprocess.run(["cmsutil", "-D", "-d", f"sql:{nss}", "-i", str(directory / "nss-signature"), "-c",
                           str(directory / "nss-content"), "-u", "4", "-o", "/dev/null"], capture_output=True, text=True)


def test_the_mailed_report_arrives_signed_with_the_same_page_and_csv(gateway, pki, tmp_path):
    postfix, sink, daemon, database, sendmail = gateway
    clear(postfix, sink)
    same = ("--month", "2026-11", "--database", str(database))
    before = report(daemon.config, *same, "--format", "html").stdout
    sent = report(daemon.config, *same, "--mail", "--sendmail", str(sendmail))
    after = report(daemon.config, *same, "--format", "html").stdout
    assert sent.returncode == 0, sent.stderr.decode()
    assert "sent to vanphong.ubnd@dienbien.gov.vn, lanhdao@stttt.dienbien.gov.vn" in sent.stderr.decode()
    [message] = wait_for_messages(postfix, sink, 1)

    # Signed by the gateway on its way out, and every verifier agrees.
    head = message.split(b"\n\n")[0]
    assert b"multipart/signed" in head, head
    verify_with_openssl_and_gpgsm(pki, message, tmp_path)
    body = message.replace(b"\r\n", b"\n").partition(b"\n\n")[2]
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
    parts = body.split(b"\n--" + boundary)
    content = parts[1][1:].replace(b"\n", b"\r\n")
    signature = base64.b64decode(parts[2][1:].split(b"\n\n", 1)[1])
    nss = nss_verify(pki, content, signature, tmp_path)
    assert nss.returncode == 0 and "problem decoding" not in nss.stdout + nss.stderr, nss.stdout + nss.stderr

    parsed = email.message_from_bytes(message, policy=email.policy.default)
    subject = str(parsed["Subject"])
    indicator = report(daemon.config, *same, "--format", "csv").stderr.decode()
    signing, units = re.search(r"(\d+) of (\d+) units", indicator).groups()
    met = "Đạt" if indicator.strip().endswith(": met") else "Chưa đạt"
    assert subject == f"Báo cáo ký số thư điện tử tháng 11/2026: {signing}/{units} đơn vị, {met}", subject
    assert all(byte < 0x80 for byte in head), "the Subject is RFC 2047-encoded"
    assert parsed["From"] == "baocao@stttt.dienbien.gov.vn"

    signed, _ = parsed.get_payload()
    assert signed.get_content_type() == "multipart/mixed"
    alternative, attachment = signed.get_payload()
    text, html = alternative.get_payload()
    assert text.get_content_type() == "text/plain" and html.get_content_type() == "text/html"
    assert f"Chỉ tiêu: {signing}/{units} đơn vị ký số" in text.get_content()
    assert html.get_payload(decode=True) in (before, after), "the HTML part is the --format html page"
    assert attachment.get_content_type() == "text/csv" and attachment.get_filename() == "bao-cao-ky-so-2026-11.csv"
    csv = report(daemon.config, *same, "--format", "csv").stdout
    assert attachment.get_payload(decode=True) == csv, "the attachment is the --format csv file"


def test_a_failing_sendmail_exits_non_zero_with_its_reason_and_nothing_is_sent(gateway, tmp_path):
    postfix, sink, daemon, database, _ = gateway
    clear(postfix, sink)
    same = ("--month", "2026-11", "--database", str(database), "--mail-to", "vanphong.ubnd@dienbien.gov.vn",
            "--mail-from", "baocao@stttt.dienbien.gov.vn")

    # Postfix's own sendmail, refusing: a configuration directory that is not there.
    broken = tmp_path / "broken-sendmail"
    broken.write_text(f'#!/bin/sh\nexec /usr/sbin/sendmail -C {tmp_path}/no-such-postfix "$@"\n')
    broken.chmod(0o755)
    refused = report(daemon.config, *same, "--sendmail", str(broken))
    said = refused.stderr.decode()
    assert refused.returncode == 1, said
    assert "exited with status" in said and "no-such-postfix" in said and "the report was not sent" in said, said

    # A sendmail that reads part of the message, then fails: the reason is passed on.
    partial = tmp_path / "partial-sendmail"
    partial.write_text(f'#!/bin/sh\nhead -c 100 > {tmp_path}/got\n'
                       'echo "sendmail: fatal: queue file write error" >&2\nexit 75\n')
    partial.chmod(0o755)
    failed = report(daemon.config, *same, "--sendmail", str(partial))
    assert failed.returncode == 1 and "status 75: sendmail: fatal: queue file write error" in failed.stderr.decode()
    assert (tmp_path / "got").read_bytes().startswith(b"From: baocao@stttt.dienbien.gov.vn\n")

    # No sendmail at all; and a report that cannot be made never reaches sendmail.
    missing = report(daemon.config, *same, "--sendmail", str(tmp_path / "nothing"))
    assert missing.returncode == 1 and "is not an executable sendmail program" in missing.stderr.decode()
    called = tmp_path / "called"
    recorder = tmp_path / "recording-sendmail"
    recorder.write_text(f"#!/bin/sh\ntouch {called}\ncat >/dev/null\n")
    recorder.chmod(0o755)
    unmade = report(daemon.config, "--month", "2026-11", "--database", str(tmp_path / "none.sqlite"), "--mail",
                    "--sendmail", str(recorder))
    assert unmade.returncode == 2 and "no such records database" in unmade.stderr.decode()
    nameless = report(daemon.config, *same[:4], "--mail-to", "Văn phòng <vanphong.ubnd@dienbien.gov.vn>",
                      "--sendmail", str(recorder))
    assert nameless.returncode == 2 and "is not a mail address" in nameless.stderr.decode()
    assert not called.exists()

    time.sleep(2)
    postfix.kick()
    time.sleep(1)
    assert sink.messages() == [] and postfix.queue_ids() == [], "nothing was sent"


# MARK: the shipped units

def test_systemd_accepts_the_timer_and_its_service(tmp_path):
    for name in ("smime-milter-report.timer", "smime-milter-report.service", "smime-milter.service"):
        # verify wants the programs to exist: the built binary stands in for /usr/sbin/smime-milter.
        text = (REPO / "systemd" / name).read_text().replace("/usr/sbin/smime-milter", str(BINARY))
        (tmp_path / name).write_text(text)
    verified = subprocess.run(["systemd-analyze", "verify", "--man=no", str(tmp_path / "smime-milter-report.timer"),
                               str(tmp_path / "smime-milter-report.service")], capture_output=True, text=True)
    assert verified.returncode == 0 and verified.stderr.strip() == "", verified.stderr

    timer = (REPO / "systemd" / "smime-milter-report.timer").read_text()
    assert "OnCalendar=*-*-01 07:00:00" in timer and "Persistent=true" in timer
    calendar = subprocess.run(["systemd-analyze", "calendar", "--iterations", "2", "*-*-01 07:00:00"],
                              capture_output=True, text=True, env={"TZ": "Asia/Ho_Chi_Minh", "PATH": "/usr/bin:/bin"})
    assert calendar.returncode == 0 and re.search(r"Next elapse: \w+ \d{4}-\d\d-01 07:00:00", calendar.stdout), calendar.stdout
    service = (REPO / "systemd" / "smime-milter-report.service").read_text()
    command = re.search(r"^ExecStart=(.*)$", service, re.M).group(1).split()
    assert command[1:] == ["report", "--config", "/etc/smime-milter/smime-milter.conf", "--period", "last-month",
                           "--mail"]
    assert not re.search(r"^(NoNewPrivileges=yes|SystemCallFilter|RestrictAddressFamilies|MemoryDenyWriteExecute)", service,
                         re.M), "postdrop is set-group-ID: nothing may set no_new_privs"
    # The package installs both and enables neither.
    rules = (REPO / "debian" / "rules").read_text()
    assert "systemd/smime-milter-report.timer" in rules and "systemd/smime-milter-report.service" in rules
    assert "dh_installsystemd --no-enable --no-start smime-milter-report.timer" in rules

    # The timer's command line is one the binary takes: with no ReportMailTo it says what to set.
    config = tmp_path / "smime-milter.conf"
    config.write_text(f"TrustAnchors {REPO}/conf/trust\nEventDatabase {records(tmp_path)}\n")
    timed = report(config, *command[4:])
    assert timed.returncode == 2 and "set ReportMailTo" in timed.stderr.decode(), timed.stderr
