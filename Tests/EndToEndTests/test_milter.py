"""The daemon driven over the milter protocol as Postfix drives it: one behaviour per test."""

import subprocess

import pytest
from miltertest import constants as c

from conftest import REPO, Session, openssl_verify, reload, signed_by_provincial_office

INTERNAL = (
    "From: =?UTF-8?B?UGjDsm5nIEvhur8gdG/DoW4=?= <ketoan@stttt.dienbien.gov.vn>\r\n"
    "To: ubnd@muonglay.dienbien.gov.vn\r\n"
    "Subject: =?UTF-8?B?QsOhbyBjw6FvIHF1w70gSVY=?=\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Kính gửi Ủy ban nhân dân thị xã Mường Lay.\r\n"
).encode()


def signed_elsewhere(pki, extra_headers=""):
    """A message another unit signed, as it arrives from outside."""
    return signed_by_provincial_office(pki, (
        extra_headers + "From: vanphong.ubnd@dienbien.gov.vn\r\nTo: stttt@stttt.dienbien.gov.vn\r\n"
        "Subject: Thông báo\r\n\r\nNội dung công văn.\r\n").encode())


def test_internal_mail_is_signed_with_the_unit_certificate(daemon, pki, tmp_path):
    session = Session(daemon, client="10.20.1.5")
    result = session.send(INTERNAL, sender="<ketoan@stttt.dienbien.gov.vn>")
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE
    assert result.body_replaced
    content_type = result.header("Content-Type")
    assert len(content_type) == 1 and content_type[0].startswith(" multipart/signed;")
    assert 'protocol="application/pkcs7-signature"' in content_type[0] and "micalg=sha-256" in content_type[0]
    assert result.header("MIME-Version") == [" 1.0"]
    assert result.header("Content-Transfer-Encoding") == [], "moved into the signed entity"
    verified = openssl_verify(pki, result.message, tmp_path)
    assert verified.returncode == 0, verified.stderr
    assert "4ABCDEF: signed from=ketoan@stttt.dienbien.gov.vn signer=pkcs11:token=STTTT-DienBien;object=unit-seal" in daemon.log_text()
    assert "pin-source" not in daemon.log_text()


def test_external_signed_mail_gets_smime_pass(daemon, pki):
    session = Session(daemon, client="203.0.113.7")
    result = session.send(signed_elsewhere(pki), queue_id="5EXTERN")
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE
    assert not result.body_replaced, "incoming bodies are never changed"
    assert result.headers[0][0] == "Authentication-Results"
    assert result.headers[0][1].startswith(" mail.dienbien.gov.vn; smime=pass")
    assert "body.smime-identifier=vanphong.ubnd@dienbien.gov.vn" in result.headers[0][1].replace("\n", "")
    assert result.headers[1][0] == "X-SMIME-Verification"
    assert "=?UTF-8?" in result.headers[1][1]
    assert "5EXTERN: verified smime=pass from=vanphong.ubnd@dienbien.gov.vn" in daemon.log_text()


def test_forged_headers_are_removed_and_other_servers_kept(daemon, pki):
    forged = ("Authentication-Results: mail.dienbien.gov.vn; smime=pass body.smime-identifier=giam.doc@dienbien.gov.vn\r\n"
              "Authentication-Results: mx.example.org; spf=pass smtp.mailfrom=example.org\r\n"
              "X-SMIME-Verification: pass; signer: forged\r\n")
    session = Session(daemon, client="203.0.113.7")
    result = session.send(signed_elsewhere(pki, forged))
    session.close()
    results = result.header("Authentication-Results")
    assert len(results) == 2
    assert results[0].startswith(" mail.dienbien.gov.vn; smime=pass")
    assert results[1] == " mx.example.org; spf=pass smtp.mailfrom=example.org"
    assert len(result.header("X-SMIME-Verification")) == 1
    assert "forged" not in result.message.decode() and "giam.doc" not in result.message.decode()


def test_a_message_for_a_missing_token_gets_a_4xx(daemon):
    session = Session(daemon, client="127.0.0.1")
    message = INTERNAL.replace(b"ketoan@stttt.dienbien.gov.vn", b"chanh.vp@absent.dienbien.gov.vn")
    result = session.send(message, queue_id="6NOTOKEN")
    session.close()
    assert result.reply[0] == c.SMFIR_REPLYCODE
    assert result.smtp_reply.startswith("451 4.7.0 signing token unavailable, try again later")
    assert not result.body_replaced
    assert "6NOTOKEN: failed (token)" in daemon.log_text()


def test_an_unauthorised_login_is_refused_and_an_authorised_one_signs(daemon):
    session = Session(daemon, client="198.51.100.20")
    refused = session.send(INTERNAL, login="someone.else")
    allowed = session.send(INTERNAL, login="vanthu")
    session.close()
    assert refused.smtp_reply.startswith("550 5.7.1 someone.else may not send as ketoan@stttt.dienbien.gov.vn")
    assert allowed.reply[0] == c.SMFIR_CONTINUE and allowed.body_replaced


MALFORMED = [
    # multipart/signed without a boundary
    b"From: a@example.org\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"\r\n\r\ngarbage\r\n",
    # opaque signed data whose base64 is broken
    b"From: a@example.org\r\nContent-Type: application/pkcs7-mime; smime-type=signed-data\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\n!!!! not base64 @@@@\r\n",
    # a signature part that is not CMS
    b"From: a@example.org\r\nContent-Type: multipart/signed; protocol=\"application/pkcs7-signature\"; micalg=sha-256;"
    b" boundary=b\r\n\r\n--b\r\nContent-Type: text/plain\r\n\r\nhi\r\n--b\r\nContent-Type: application/pkcs7-signature\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEA\r\n--b--\r\n",
    # a header line far over 998 octets and no body at all
    b"From: a@example.org\r\nX-Long: " + b"x" * 20000 + b"\r\n\r\n",
]


def test_malformed_messages_are_accepted_with_a_verdict_and_no_crash(daemon):
    session = Session(daemon, client="203.0.113.9")
    for message in MALFORMED:
        result = session.send(message)
        assert result.reply[0] == c.SMFIR_CONTINUE
        verdict = result.header("Authentication-Results")[0]
        assert "smime=permerror" in verdict or "smime=none" in verdict or "smime=neutral" in verdict, verdict
    session.close()
    assert daemon.alive()


def test_several_messages_on_one_connection_each_get_their_own_result(daemon, pki, tmp_path):
    session = Session(daemon, client="198.51.100.30")
    signed = session.send(INTERNAL, login="vanthu", queue_id="7FIRST")
    session.conn.send_macro(c.SMFIC_MAIL, i="7ABORTED")
    session.conn.send_ar(c.SMFIC_MAIL, args=["<x@example.org>"])
    session.abort()
    verified = session.send(signed_elsewhere(pki), queue_id="7SECOND")
    unsigned = session.send(b"From: a@example.org\r\nSubject: hi\r\n\r\nhello\r\n", queue_id="7THIRD")
    session.close()
    assert signed.body_replaced and openssl_verify(pki, signed.message, tmp_path).returncode == 0
    assert not verified.body_replaced and "smime=pass" in verified.header("Authentication-Results")[0]
    assert "smime=none" in unsigned.header("Authentication-Results")[0]
    assert unsigned.header("X-SMIME-Verification")[0].strip().startswith("none")


def test_a_message_over_the_spool_threshold_is_signed(daemon, pki, tmp_path):
    line = "Báo cáo tổng hợp số liệu quý IV năm 2026 của các đơn vị.\r\n"
    large = INTERNAL + (line * (3 * 1024 * 1024 // len(line.encode()))).encode()
    session = Session(daemon, client="127.0.0.1")
    result = session.send(large, queue_id="8LARGE")
    session.close()
    assert result.body_replaced and len(result.body) > 3 * 1024 * 1024
    verified = openssl_verify(pki, result.message, tmp_path)
    assert verified.returncode == 0, verified.stderr


def test_sighup_reloads_and_a_broken_configuration_is_refused(daemon):
    original = daemon.config.read_text()
    try:
        daemon.config.write_text(original + "Mode verify-everything\n")
        reload(daemon, "configuration reload refused, the previous one stays in use")
        assert daemon.alive()
        session = Session(daemon, client="127.0.0.1")
        assert session.send(INTERNAL).body_replaced, "the old configuration still signs"
        session.close()

        daemon.config.write_text(original.replace("SigningTable", "#SigningTable"))
        reload(daemon, "configuration reloaded")
        session = Session(daemon, client="127.0.0.1")
        result = session.send(INTERNAL)
        session.close()
        assert not result.body_replaced, "without a signing table nothing is signed"
    finally:
        daemon.config.write_text(original)
        reload(daemon, "configuration reloaded")


MALFORMED_SHAPES = ["10-missing-close-boundary.eml", "39-nested-same-boundary.eml", "41-unclosed-trailing-blank-lines.eml",
                    "43-unclosed-inside-mixed.eml", "44-nested-same-boundary-8bit.eml"]


@pytest.mark.parametrize("name", MALFORMED_SHAPES)
def test_malformed_shapes_keep_their_content_when_signed(daemon, pki, tmp_path, name):
    """A multipart whose close delimiter is missing and one nested in another with the same
    boundary, signed through the protocol: openssl verifies the result, and the content it
    verified has the parts, with the same decoded contents, that Python's email reads in what
    was sent."""
    corpus = REPO / "Tests" / "MIMETests" / "Corpus"
    original = (corpus / name).read_bytes().replace(b"<vanthu.stttt@dienbien.gov.vn>", b"<ketoan@stttt.dienbien.gov.vn>")
    session = Session(daemon, client="10.20.1.5")
    result = session.send(original, sender="<ketoan@stttt.dienbien.gov.vn>")
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE and result.body_replaced
    (tmp_path / "original.eml").write_bytes(original)
    (tmp_path / "signed.eml").write_bytes(result.message)
    verified = subprocess.run(["openssl", "cms", "-verify", "-in", str(tmp_path / "signed.eml"), "-CAfile",
                               f"{pki}/ca/root.pem", "-out", str(tmp_path / "content.eml")], capture_output=True, text=True)
    assert verified.returncode == 0, verified.stderr
    script = str(corpus.parent / "email_parts.py")
    sent = subprocess.run(["python3", script, str(tmp_path / "original.eml")], capture_output=True, text=True, check=True)
    content = subprocess.run(["python3", script, str(tmp_path / "content.eml")], capture_output=True, text=True, check=True)
    assert content.stdout == sent.stdout
