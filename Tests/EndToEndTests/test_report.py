"""The province's report from the records the daemon keeps: mail from three units (one the
gateway signs, one whose staff sign themselves, one that does not sign), incoming mail with a
good and a bad signature, and internal mail between two units, across a restart; then
`smime-milter report` over the daemon's database."""

import subprocess

from conftest import BINARY, Daemon, Session, key_uri, signed_by_provincial_office

UNITS = """# the plan's units (illustrative addresses)
*@stttt.dienbien.gov.vn          Sở Thông tin và Truyền thông
vanthu.stttt@dienbien.gov.vn     Sở Thông tin và Truyền thông
vanphong.ubnd@dienbien.gov.vn    Ủy ban nhân dân tỉnh
*@sotuphap.dienbien.gov.vn       Sở Tư pháp
*@ubnd.muongnhe.dienbien.gov.vn  Ủy ban nhân dân huyện Mường Nhé
"""

HEADER = ("period,unit,outgoing,signed_by_gateway,signed_by_sender,unsigned,signed_share,"
          "incoming,incoming_pass,incoming_fail,incoming_other")


def message(sender, recipient, text="Kính gửi các đơn vị."):
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: =?UTF-8?B?QsOhbyBjw6Fv?=\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n{text}\r\n").encode()


def send(daemon, client, payload, sender, recipient, queue_id):
    session = Session(daemon, client=client)
    result = session.send(payload, sender=f"<{sender}>", recipients=(f"<{recipient}>",), queue_id=queue_id)
    session.close()
    return result


def report(daemon, *arguments):
    return subprocess.run([str(BINARY), "report", "--config", str(daemon.config), *arguments],
                          capture_output=True, text=True)


def test_report_counts_units_across_a_restart_and_internal_recipients_see_the_headers(pki, tmp_path):
    chain = f"{pki}/ca/chain.pem"
    (tmp_path / "signing-table").write_text(
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}\n"
        f"vanthu.stttt@dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'vanthu')} chain={chain}\n")
    (tmp_path / "units").write_text(UNITS)
    daemon = Daemon(tmp_path, [
        f"SigningTable {tmp_path}/signing-table", f"Units {tmp_path}/units",
        "PKCS11Module /usr/lib/softhsm/libsofthsm2.so", f"TrustAnchors {pki}/ca/root.pem", f"CRLDirectory {pki}/crl",
    ]).start()
    try:
        # Before the restart: one message from each unit to the outside.
        signed = send(daemon, "127.0.0.1", message("ketoan@stttt.dienbien.gov.vn", "a@example.org"),
                      "ketoan@stttt.dienbien.gov.vn", "a@example.org", "R1")
        assert signed.body_replaced and not signed.header("Authentication-Results"), "outside recipients only"
        own = signed_by_provincial_office(pki, message("vanphong.ubnd@dienbien.gov.vn", "b@example.org"))
        by_sender = send(daemon, "127.0.0.1", own, "vanphong.ubnd@dienbien.gov.vn", "b@example.org", "R2")
        assert not by_sender.body_replaced, "mail the sender signed is left as it is"
        unsigned = send(daemon, "127.0.0.1", message("chanhvp@sotuphap.dienbien.gov.vn", "c@example.org"),
                        "chanhvp@sotuphap.dienbien.gov.vn", "c@example.org", "R3")
        assert not unsigned.body_replaced
        daemon.stop()
        daemon.start()

        # After it: mail from outside, good and tampered, and one unit writing to another.
        good = signed_by_provincial_office(pki, message("vanphong.ubnd@dienbien.gov.vn", "vanthu@stttt.dienbien.gov.vn"))
        passed = send(daemon, "203.0.113.7", good, "vanphong.ubnd@dienbien.gov.vn", "vanthu@stttt.dienbien.gov.vn", "R4")
        assert passed.header("Authentication-Results")[0].startswith(" mail.dienbien.gov.vn; smime=pass")
        tampered = signed_by_provincial_office(pki, message("vanphong.ubnd@dienbien.gov.vn", "x@sotuphap.dienbien.gov.vn",
                                                            "Nội dung gốc."))
        tampered = tampered.replace("g=E1=BB=91c".encode(), "g=E1=BB=93c".encode())
        failed = send(daemon, "203.0.113.7", tampered, "vanphong.ubnd@dienbien.gov.vn", "x@sotuphap.dienbien.gov.vn", "R5")
        assert "smime=fail" in failed.header("Authentication-Results")[0]
        internal = send(daemon, "127.0.0.1", message("vanthu.stttt@dienbien.gov.vn", "y@sotuphap.dienbien.gov.vn"),
                        "vanthu.stttt@dienbien.gov.vn", "y@sotuphap.dienbien.gov.vn", "R6")
        assert internal.body_replaced
        results = internal.header("Authentication-Results")
        assert len(results) == 1 and results[0].startswith(" mail.dienbien.gov.vn; smime=pass"), results
        assert "vanthu.stttt@dienbien.gov.vn" in results[0].replace("\n", "")
        assert internal.header("X-SMIME-Verification")
    finally:
        daemon.stop()

    assert "R2: signed by the sender, verified smime=pass from=vanphong.ubnd@dienbien.gov.vn" in daemon.log_text()
    csv = report(daemon, "--format", "csv")
    assert csv.returncode == 0, csv.stderr
    assert csv.stdout.startswith("\ufeff")
    # (text mode reads the CSV's CRLF line ends as line ends)
    assert csv.stdout.lstrip("\ufeff").splitlines() == [
        HEADER,
        "all,Sở Thông tin và Truyền thông,2,2,0,0,1.000,1,1,0,0",
        "all,Ủy ban nhân dân tỉnh,1,0,1,0,1.000,0,0,0,0",
        "all,Sở Tư pháp,1,0,0,1,0.000,1,0,1,0",
        "all,Ủy ban nhân dân huyện Mường Nhé,0,0,0,0,,0,0,0,0",
        "all,total,4,2,1,1,0.750,2,1,1,0",
    ]
    assert csv.stderr.strip() == ("indicator all: 2 of 4 units sign at least 50% of the mail they send (50%); "
                                  "target 50%: met")
    text = report(daemon, "--unit-share", "0.9", "--target", "0.6")
    assert text.returncode == 0 and text.stdout.splitlines()[0].endswith("target 60%: not met"), text.stdout
    assert "Sở Tư pháp: chưa có chứng thư số cho địa chỉ gửi 1" in text.stdout
    english = report(daemon, "--lang", "en")
    assert "Sở Tư pháp: no certificate for the sender's address 1" in english.stdout, english.stdout


def test_bad_report_input_is_refused_clearly_and_writes_no_partial_file(pki, tmp_path):
    (tmp_path / "units").write_text("*@stttt.dienbien.gov.vn  Sở Thông tin và Truyền thông\n*@sotuphap.dienbien.gov.vn\n")
    config = tmp_path / "smime-milter.conf"
    config.write_text(f"TrustAnchors {pki}/ca/root.pem\nStateDirectory {tmp_path}\nUnits {tmp_path}/units\n")
    good = tmp_path / "report.csv"
    good.write_text("the good report of last month\n")

    def run(*arguments, conf=config):
        return subprocess.run([str(BINARY), "report", "--config", str(conf), *arguments], capture_output=True, text=True)

    nameless = run("--output", str(good))
    assert nameless.returncode == 2 and "units:2: '*@sotuphap.dienbien.gov.vn' has no unit name" in nameless.stderr

    (tmp_path / "units").write_text("*@stttt.dienbien.gov.vn  Sở Thông tin và Truyền thông\n")
    month = run("--month", "2026-13", "--output", str(good))
    assert month.returncode == 2 and "--month 2026-13: not a month; write YYYY-MM" in month.stderr

    other = tmp_path / "other.sqlite"
    subprocess.run(["python3", "-c", "import sqlite3,sys; sqlite3.connect(sys.argv[1]).execute('create table t (a)')",
                    str(other)], check=True)
    foreign = run("--database", str(other), "--format", "csv", "--output", str(good))
    assert foreign.returncode == 2 and "is not an smime-milter records database" in foreign.stderr

    missing = run("--database", str(tmp_path / "nothing.sqlite"), "--output", str(good))
    assert missing.returncode == 2 and "no such records database" in missing.stderr
    assert good.read_text() == "the good report of last month\n"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("report.csv")) == ["report.csv"]
