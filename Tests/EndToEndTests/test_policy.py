"""Policy over the milter protocol: the command line says what the milter says, SHA-1 message
signatures, malformed staff mail (OnMalformed) and mail that waited (signed without signingTime)."""

import base64
import email.header
import email.utils
import os
import re
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest
from miltertest import constants as c

from conftest import BINARY, REPO, Daemon, Session, key_uri, openssl_verify, signed_by_provincial_office, split_message

CORPUS = REPO / "Tests" / "MIMETests" / "Corpus"


def signing_table(pki, directory):
    chain = f"{pki}/ca/chain.pem"
    (directory / "signing-table").write_text("\n".join([
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}",
        f"*@dienbien.gov.vn {pki}/certs/vanphong.key cert={pki}/certs/vanphong.pem chain={chain}",
    ]) + "\n")
    return [f"SigningTable {directory}/signing-table", "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
            f"TrustAnchors {pki}/ca/root.pem", f"CRLDirectory {pki}/crl", "RevocationCheck crl",
            f"Intermediates {pki}/ca/intermediate.pem"]


def started(pki, directory, extra):
    directory.mkdir(parents=True, exist_ok=True)
    return Daemon(directory, signing_table(pki, directory) + extra).start()


@pytest.fixture(scope="module")
def daemons(pki, tmp_path_factory):
    """One daemon in Vietnamese with the defaults, one in English that allows SHA-1 and accepts
    malformed mail."""
    root = tmp_path_factory.mktemp("policy")
    vi = started(pki, root / "vi", ["HeaderLanguage vi"])
    en = started(pki, root / "en", ["HeaderLanguage en", "AllowSHA1Signatures yes", "OnMalformed accept",
                                    "AddReadableHeader yes"])
    yield {"vi": vi, "en": en}
    vi.stop()
    en.stop()


def rfc5322_date(seconds_ago):
    return email.utils.formatdate(time.time() - seconds_ago, localtime=False)


def sha1_signed(pki, tmp_path):
    """A message signed elsewhere with `openssl cms -sign -md sha1` and the test PKI's file key."""
    entity = tmp_path / "entity"
    entity.write_bytes(b"Content-Type: text/plain; charset=us-ascii\r\n\r\nBao cao thang 11.\r\n")
    out = tmp_path / "sha1.eml"
    subprocess.run(["openssl", "cms", "-sign", "-md", "sha1", "-in", str(entity), "-signer", f"{pki}/certs/vanphong.pem",
                    "-inkey", f"{pki}/certs/vanphong.key", "-certfile", f"{pki}/ca/intermediate.pem", "-out", str(out),
                    "-from", "vanphong.ubnd@dienbien.gov.vn", "-to", "stttt@stttt.dienbien.gov.vn",
                    "-subject", "SHA-1"], check=True, capture_output=True)
    message = out.read_bytes().replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    return f"Date: {rfc5322_date(0)}\r\n".encode() + message


def inserted(result_replies):
    """The fields the milter inserted, in the order they end up at the top of the message."""
    fields = []
    for command, args in result_replies:
        if command == c.SMFIR_INSHEADER:
            fields.insert(0, (args["name"], args["value"]))
        elif command == c.SMFIR_ADDHEADER:
            fields.append((args["name"], args["value"]))
    return fields


def normalised(value):
    return " ".join(value.split())


def printed_by_verify(daemon, message: bytes, tmp_path):
    """The fields `smime-milter verify --config` prints for the message, unfolded."""
    path = tmp_path / "verify.eml"
    path.write_bytes(message)
    run = subprocess.run([str(BINARY), "verify", "--config", str(daemon.config), str(path)], capture_output=True,
                         timeout=60)
    assert run.returncode == 0, run.stderr
    fields = []
    for line in run.stdout.decode().split("\n"):
        if not line:
            continue
        if line[0] in " \t":
            fields[-1][1] += " " + line.strip()
        else:
            name, _, value = line.partition(":")
            fields.append([name, value])
    return [(name, normalised(value)) for name, value in fields]


def as_the_mta_has_it(message: bytes) -> bytes:
    """The message as the milter is given it: header fields one by one, the body in CRLF form."""
    fields, body = split_message(message)
    head = "".join(f"{name}:{value}\n" for name, value in fields).replace("\n", "\r\n").encode()
    return head + b"\r\n" + body


def decoded(value):
    return str(email.header.make_header(email.header.decode_header(" ".join(value.split()))))


# MARK: 4. the command line says what the milter says

def corpus_and_signed(pki, tmp_path):
    messages = {path.name: path.read_bytes() for path in sorted(CORPUS.iterdir()) if path.is_file()}
    fresh = (f"Date: {rfc5322_date(0)}\r\nFrom: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\n"
             "Subject: =?UTF-8?B?VGjDtG5nIGLDoW8=?=\r\n\r\nNội dung công văn.\r\n").encode()
    signed = signed_by_provincial_office(pki, fresh)
    messages["signed-by-the-office"] = signed
    messages["signed-with-a-wrong-from"] = signed.replace(b"From: vanphong.ubnd@", b"From: giamdoc@", 1)
    messages["signed-and-altered"] = signed.replace("Nội dung".encode(), b"Noi dung", 1).replace(b"N=E1=BB=99i", b"N=E1=BB=98i", 1)
    messages["signed-with-sha1"] = sha1_signed(pki, tmp_path)
    return messages


@pytest.mark.parametrize("language", ["vi", "en"])
def test_verify_prints_the_fields_the_milter_adds_for_every_corpus_message(daemons, pki, tmp_path, language):
    daemon = daemons[language]
    messages = corpus_and_signed(pki, tmp_path)
    session = Session(daemon, client="203.0.113.7")
    compared = 0
    for name, message in messages.items():
        try:
            fields, _ = split_message(message)
        except UnicodeDecodeError:
            continue  # miltertest sends header fields as text: raw 8-bit headers are left to the MIME tests
        if not all(re.fullmatch(r"[!-9;-~]+", n) for n, _ in fields) or any("\0" in v for _, v in fields):
            continue  # a line that is no header field: Postfix would start the body there, not pass it on
        mta = as_the_mta_has_it(message)
        result = session.send(mta, queue_id="9CMP")
        assert result.reply[0] == c.SMFIR_CONTINUE, name
        by_milter = [(n, normalised(v)) for n, v in inserted(result.replies)]
        assert [n for n, _ in by_milter] == ["Authentication-Results", "X-SMIME-Verification"], name
        assert by_milter == printed_by_verify(daemon, mta, tmp_path), name
        compared += 1
    session.close()
    assert compared >= len(messages) - 8, f"only {compared} of {len(messages)} compared"


def test_verify_follows_header_language(daemons, pki, tmp_path):
    message = signed_by_provincial_office(pki, (
        f"Date: {rfc5322_date(0)}\r\nFrom: giamdoc@dienbien.gov.vn\r\nTo: a@stttt.dienbien.gov.vn\r\n\r\nx\r\n").encode())
    vi = dict(printed_by_verify(daemons["vi"], message, tmp_path))
    en = dict(printed_by_verify(daemons["en"], message, tmp_path))
    assert decoded(vi["X-SMIME-Verification"]).startswith("chữ ký số đúng nhưng không được chấp nhận; lý do: địa chỉ thư")
    assert en["X-SMIME-Verification"].startswith("policy; reason: the signer's address")


# MARK: 5. SHA-1

def test_sha1_signed_mail_is_policy_with_its_reason_in_both_languages(daemons, pki, tmp_path):
    message = as_the_mta_has_it(sha1_signed(pki, tmp_path))
    session = Session(daemons["vi"], client="203.0.113.7")
    result = session.send(message, queue_id="9SHAONE")
    session.close()
    results = normalised(result.header("Authentication-Results")[0])
    assert results.startswith('mail.dienbien.gov.vn; smime=policy reason="SHA-1 is no longer accepted for signatures"'), results
    readable = decoded(result.header("X-SMIME-Verification")[0])
    assert readable.startswith(
        "chữ ký số đúng nhưng không được chấp nhận; lý do: chữ ký số dùng thuật toán SHA-1, không còn được chấp nhận"), readable
    assert "smime=policy" in daemons["vi"].log_text() and "SHA-1 is no longer accepted" in daemons["vi"].log_text()


def test_allow_sha1_signatures_lets_it_pass(daemons, pki, tmp_path):
    session = Session(daemons["en"], client="203.0.113.7")
    result = session.send(as_the_mta_has_it(sha1_signed(pki, tmp_path)))
    session.close()
    assert normalised(result.header("Authentication-Results")[0]).startswith("mail.dienbien.gov.vn; smime=pass")


# MARK: 6. malformed staff mail

def deeply_nested(depth=40):
    head = (f"From: vanphong.ubnd@dienbien.gov.vn\r\nTo: someone@example.org\r\nDate: {rfc5322_date(0)}\r\n"
            "Subject: nested\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed; boundary=\"d0\"\r\n\r\n")
    body = "".join(f"--d{i}\r\nContent-Type: multipart/mixed; boundary=\"d{i + 1}\"\r\n\r\n" for i in range(depth))
    body += f"--d{depth}\r\nContent-Type: text/plain\r\n\r\nhello\r\n"
    body += "".join(f"--d{i}--\r\n" for i in range(depth, -1, -1))
    return (head + body).encode()


def records(daemon, queue_id, timeout=10):
    deadline = time.time() + timeout
    database = daemon.directory / "events.sqlite"
    while time.time() < deadline:
        if database.exists():
            with sqlite3.connect(database) as db:
                rows = db.execute("SELECT outcome, reason FROM events WHERE queue_id = ?", (queue_id,)).fetchall()
            if rows:
                return rows
        time.sleep(0.1)
    return []


def test_malformed_staff_mail_is_rejected_with_554_by_default(daemons):
    session = Session(daemons["vi"], client="127.0.0.1")
    result = session.send(deeply_nested(), sender="<vanphong.ubnd@dienbien.gov.vn>", recipients=("<x@example.org>",),
                          queue_id="9DEEPREJ")
    session.close()
    assert result.reply[0] == c.SMFIR_REPLYCODE
    assert result.smtp_reply == ("554 5.6.0 message cannot be signed because its parts are nested too deeply "
                                 "(messages forwarded inside one another); send it again in a simpler form"), result.smtp_reply
    assert not result.body_replaced
    assert "9DEEPREJ: failed (malformed) from=vanphong.ubnd@dienbien.gov.vn" in daemons["vi"].log_text()
    assert records(daemons["vi"], "9DEEPREJ") == [("rejected", "malformed")]


def test_on_malformed_accept_delivers_it_unsigned_and_records_why(daemons):
    session = Session(daemons["en"], client="127.0.0.1")
    result = session.send(deeply_nested(), sender="<vanphong.ubnd@dienbien.gov.vn>", recipients=("<x@example.org>",),
                          queue_id="9DEEPACC")
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE
    assert not result.body_replaced and result.header("Content-Type")[0].strip().startswith("multipart/mixed")
    assert "9DEEPACC: failed (malformed) from=vanphong.ubnd@dienbien.gov.vn" in daemons["en"].log_text()
    assert records(daemons["en"], "9DEEPACC") == [("unsigned", "malformed")]
    report = subprocess.run([str(BINARY), "report", "--config", str(daemons["en"].config), "--lang", "en"],
                            capture_output=True, text=True, timeout=60)
    assert "dienbien.gov.vn: malformed MIME message 1" in report.stdout, report.stdout + report.stderr


# MARK: 8. mail that waited

def signature_of(message: bytes, directory: Path):
    """The signed entity and the DER signature of a multipart/signed message."""
    head, _, body = message.replace(b"\r\n", b"\n").partition(b"\n\n")
    boundary = re.search(rb'boundary="([^"]+)"', head).group(1)
    parts = body.split(b"\n--" + boundary)
    content = parts[1][1:].replace(b"\n", b"\r\n")
    signature = base64.b64decode(parts[2][1:].split(b"\n\n", 1)[1])
    (directory / "content").write_bytes(content)
    (directory / "smime.p7s").write_bytes(signature)
    return directory / "content", directory / "smime.p7s"


def verify_with_gpgsm(pki, content, signature, directory):
    home = directory / "gnupg"
    home.mkdir(mode=0o700, exist_ok=True)
    env = dict(os.environ, GNUPGHOME=str(home))
    subprocess.run(["gpg-connect-agent", "/bye"], env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    try:
        subprocess.run(["gpgsm", "--batch", "--import", f"{pki}/ca/root.pem", f"{pki}/ca/intermediate.pem"], env=env,
                       capture_output=True)
        fingerprint = subprocess.run(["openssl", "x509", "-in", f"{pki}/ca/root.pem", "-noout", "-fingerprint", "-sha1"],
                                     capture_output=True, text=True).stdout.split("=")[1].strip()
        (home / "trustlist.txt").write_text(f"{fingerprint} S relax\n")
        return subprocess.run(["gpgsm", "--batch", "--disable-crl-checks", "--verify", str(signature), str(content)],
                              env=env, capture_output=True, text=True, timeout=60)
    finally:
        subprocess.run(["gpgconf", "--kill", "all"], env=env, stdin=subprocess.DEVNULL, capture_output=True)


def verify_with_nss(pki, content, signature, directory):
    database = directory / "nss"
    database.mkdir(exist_ok=True)
    subprocess.run(["certutil", "-N", "-d", f"sql:{database}", "--empty-password"], check=True, capture_output=True)
    subprocess.run(["certutil", "-A", "-d", f"sql:{database}", "-n", "root", "-t", "C,C,C", "-i", f"{pki}/ca/root.pem"],
                   check=True, capture_output=True)
    return subprocess.run(["cmsutil", "-D", "-d", f"sql:{database}", "-i", str(signature), "-c", str(content), "-u", "4",
                           "-o", "/dev/null"], capture_output=True, text=True, timeout=60)


def signed_through_the_milter(daemon, seconds_ago, queue_id):
    message = (f"From: ketoan@stttt.dienbien.gov.vn\r\nTo: ubnd@example.org\r\nDate: {rfc5322_date(seconds_ago)}\r\n"
               "Subject: waited\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n"
               "Báo cáo gửi lại sau khi token được cắm vào.\r\n").encode()
    session = Session(daemon, client="127.0.0.1")
    result = session.send(message, sender="<ketoan@stttt.dienbien.gov.vn>", recipients=("<ubnd@example.org>",),
                          queue_id=queue_id)
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE and result.body_replaced
    return result.message


def printed_cms(signature):
    return subprocess.run(["openssl", "cms", "-cmsout", "-print", "-inform", "DER", "-in", str(signature)],
                          capture_output=True, text=True, check=True).stdout


def test_mail_that_waited_is_signed_without_signing_time_and_verifies_everywhere(daemons, pki, tmp_path):
    daemon = daemons["vi"]
    message = signed_through_the_milter(daemon, 3 * 3600, "9WAITED")
    content, signature = signature_of(message, tmp_path)
    cms = printed_cms(signature)
    assert "signingTime" not in cms and "messageDigest" in cms, cms
    openssl = openssl_verify(pki, message, tmp_path)
    assert openssl.returncode == 0, openssl.stderr
    gpgsm = verify_with_gpgsm(pki, content, signature, tmp_path)
    assert gpgsm.returncode == 0 and "Good signature" in gpgsm.stderr, gpgsm.stderr
    nss = verify_with_nss(pki, content, signature, tmp_path)
    assert nss.returncode == 0 and "problem decoding" not in nss.stdout + nss.stderr, nss.stdout + nss.stderr
    log = daemon.log_text()
    assert "9WAITED: signed without signingTime: the Date header is 180 minutes from now" in log, log[-3000:]


def test_fresh_mail_keeps_its_signing_time(daemons, pki, tmp_path):
    daemon = daemons["vi"]
    message = signed_through_the_milter(daemon, 60, "9FRESH")
    _, signature = signature_of(message, tmp_path)
    assert "signingTime" in printed_cms(signature)
    assert "9FRESH: signed without signingTime" not in daemon.log_text()
