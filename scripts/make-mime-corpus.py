#!/usr/bin/env python3
"""Writes the MIME test corpus (Tests/MIMETests/Corpus/*.eml): messages made for smime-milter's
tests, covering what a government mail server sees. Run once; the output is committed."""
import base64, os, sys

out = sys.argv[1] if len(sys.argv) > 1 else "Tests/MIMETests/Corpus"
os.makedirs(out, exist_ok=True)
VN = "Kính gửi Sở Thông tin và Truyền thông tỉnh Điện Biên,\nĐề nghị quý cơ quan báo cáo tình hình triển khai chữ ký số.\nTrân trọng."
PDF = b"%PDF-1.4\n" + bytes(range(256)) * 8 + b"\n%%EOF\n"
PNG = b"\x89PNG\r\n\x1a\n" + bytes((i * 37) % 256 for i in range(1500))

def b64(data):
    text = base64.b64encode(data).decode()
    return "\r\n".join(text[i:i + 76] for i in range(0, len(text), 76))

def crlf(text):
    return text.replace("\r\n", "\n").replace("\n", "\r\n")

HEAD = ("From: =?UTF-8?Q?V=C4=83n_th=C6=B0?= <vanthu.stttt@dienbien.gov.vn>\n"
        "To: ubnd@muonglay.dienbien.gov.vn\nDate: Mon, 23 Nov 2026 08:00:00 +0700\n"
        "Message-ID: <{n}@dienbien.gov.vn>\nSubject: {subject}\n")

def write(name, text=None, data=None, lf=False):
    if data is None:
        data = (text if lf else crlf(text)).encode("utf-8")
    with open(os.path.join(out, name + ".eml"), "wb") as f:
        f.write(data)

def head(n, subject, mime=True):
    return HEAD.format(n=n, subject=subject) + ("MIME-Version: 1.0\n" if mime else "")

write("01-plain-ascii", head(1, "Plain ASCII") + "Content-Type: text/plain; charset=us-ascii\n\nHello,\nThis is plain text.\n")
write("02-utf8-8bit-vietnamese", head(2, "=?UTF-8?B?QsOhbyBjw6FvIHRow6FuZyAxMQ==?=") +
      "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + VN + "\n")
write("03-quoted-printable", head(3, "QP") + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
      "K=C3=ADnh g=E1=BB=ADi S=E1=BB=9F Th=C3=B4ng tin v=C3=A0 Truy=E1=BB=81n th=C3=B4ng,=\n tr=C3=A2n tr=E1=BB=8Dng.\nA line ending in a soft break=\n\n")
write("04-base64-text", head(4, "Base64 text") + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: base64\n\n" +
      b64((VN + "\n").encode()) + "\n")
write("05-pdf-attachment", head(5, "Attachment") + 'Content-Type: multipart/mixed; boundary="b5"\n\n--b5\n'
      "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + VN + "\n--b5\n"
      'Content-Type: application/pdf; name="bao-cao.pdf"\nContent-Transfer-Encoding: base64\nContent-Disposition: attachment; filename="bao-cao.pdf"\n\n'
      + b64(PDF) + "\n--b5--\n")
write("06-mixed-alternative-related", head(6, "Nested") + 'Content-Type: multipart/mixed; boundary="outer"\n\n--outer\n'
      'Content-Type: multipart/alternative; boundary="alt"\n\n--alt\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n'
      + VN + '\n--alt\nContent-Type: multipart/related; boundary="rel"; type="text/html"\n\n--rel\n'
      'Content-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<html><body><p>Điện Biên</p><img src="cid:logo"></body></html>\n'
      '--rel\nContent-Type: image/png\nContent-ID: <logo>\nContent-Transfer-Encoding: base64\n\n' + b64(PNG) +
      '\n--rel--\n--alt--\n--outer\nContent-Type: text/csv; charset=utf-8\nContent-Disposition: attachment; filename="so-lieu.csv"\n\n'
      'huyện,số văn bản\nMường Lay,12\n--outer--\n')
write("07-message-rfc822", head(7, "Fwd") + 'Content-Type: multipart/mixed; boundary="fw"\n\n--fw\nContent-Type: text/plain\n\nForwarded below.\n'
      '--fw\nContent-Type: message/rfc822\n\n' + head(70, "Original") + "Content-Type: text/plain; charset=us-ascii\n\nThe original text.\n--fw--\n")
write("08-bare-lf", head(8, "Bare LF") + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + VN + "\n", lf=True)
write("09-no-mime-version", head(9, "No MIME-Version", mime=False) + "\nJust text, no MIME headers at all.\n")
write("10-missing-close-boundary", head(10, "Unclosed") + 'Content-Type: multipart/mixed; boundary="open"\n\n--open\n'
      "Content-Type: text/plain\n\nFirst part.\n--open\nContent-Type: text/plain\n\nSecond part, never closed.\n")
write("11-long-lines", head(11, "Long line") + "Content-Type: text/plain; charset=us-ascii\n\n" + ("word " * 300) + "\nshort\n")
write("12-from-lines", head(12, "From lines") + "Content-Type: text/plain\n\nFrom the office:\nFrom here on, nothing changes.\n>From quoted\n")
write("13-trailing-spaces", head(13, "Trailing") + "Content-Type: text/plain\n\nline with spaces   \nline with tab\t\nclean line\n")
binary = b"\x00\x01\x02binary\r\n\x00\xff\xfe" * 50
write("14-binary-part", data=crlf(head(14, "Binary") + 'Content-Type: multipart/mixed; boundary="bin"\n\n--bin\nContent-Type: text/plain\n\nSee attachment.\n--bin\n'
      'Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n').encode() + binary + b"\r\n--bin--\r\n")
write("15-preamble-epilogue", head(15, "Preamble") + 'Content-Type: multipart/mixed; boundary="pe"\n\nThis is the preamble.\nIt is ignored.\n'
      '--pe\nContent-Type: text/plain\n\nBody.\n--pe--\nThis is the epilogue.\n')
write("16-rfc2231-filename", head(16, "RFC 2231") + 'Content-Type: multipart/mixed; boundary="r1"\n\n--r1\nContent-Type: text/plain\n\nx\n--r1\n'
      "Content-Type: application/pdf; name*=utf-8''B%C3%A1o%20c%C3%A1o.pdf\nContent-Disposition: attachment;\n filename*=utf-8''B%C3%A1o%20c%C3%A1o.pdf\nContent-Transfer-Encoding: base64\n\n"
      + b64(PDF[:300]) + "\n--r1--\n")
write("17-rfc2231-continuations", head(17, "Continuations") + 'Content-Type: multipart/mixed; boundary="r2"\n\n--r2\nContent-Type: text/plain\n\nx\n--r2\n'
      "Content-Type: application/octet-stream\nContent-Disposition: attachment;\n filename*0*=utf-8''Quy%E1%BA%BFt%20%C4%91%E1%BB%8Bnh;\n filename*1=\" so 123\";\n filename*2*=%2Epdf\n"
      "Content-Transfer-Encoding: base64\n\n" + b64(b"data") + "\n--r2--\n")
write("18-encoded-words", "From: =?UTF-8?B?U+G7nyBUaMO0bmcgdGluIHbDoCBUcnV54buBbiB0aMO0bmc=?= <stttt@dienbien.gov.vn>\nTo: a@b.vn\n"
      "Subject: =?UTF-8?Q?B=C3=A1o_c=C3=A1o?= =?UTF-8?Q?_th=C3=A1ng?=\nMIME-Version: 1.0\nContent-Type: text/plain; charset=us-ascii\n\nEncoded words in headers.\n")
write("19-raw-utf8-filename", head(19, "Raw UTF-8 parameter") + 'Content-Type: multipart/mixed; boundary="r3"\n\n--r3\nContent-Type: text/plain\n\nx\n--r3\n'
      'Content-Type: application/pdf; name="Công văn số 5.pdf"\nContent-Disposition: attachment; filename="Công văn số 5.pdf"\nContent-Description: Công văn\n'
      "Content-Transfer-Encoding: base64\n\n" + b64(PDF[:200]) + "\n--r3--\n")
write("20-no-content-type", "From: a@dienbien.gov.vn\nSubject: bare\n\nNo Content-Type: text/plain us-ascii by default.\n")
write("21-empty-body", head(21, "Empty") + "Content-Type: text/plain\n\n")
write("22-headers-only", head(22, "Headers only").rstrip("\n"))
write("23-alternative-8bit-html", head(23, "HTML") + 'Content-Type: multipart/alternative; boundary="a23"\nContent-Transfer-Encoding: 8bit\n\n--a23\n'
      "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nChào anh.\n--a23\nContent-Type: text/html; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n<p>Chào <b>anh</b>.</p>\n--a23--\n")
write("24-transport-padding", head(24, "Padding") + 'Content-Type: multipart/mixed; boundary="pad"\n\n--pad   \nContent-Type: text/plain\n\nPadded delimiter.\n--pad--  \n')
write("25-special-boundary", head(25, "Boundary") + "Content-Type: multipart/mixed;\n boundary=\"=_a'b(c)+_,-./:=?\"\n\n--=_a'b(c)+_,-./:=?\nContent-Type: text/plain\n\nOdd boundary.\n--=_a'b(c)+_,-./:=?--\n")
write("26-rfc822-8bit", head(26, "Fwd 8bit") + 'Content-Type: multipart/mixed; boundary="f26"\n\n--f26\nContent-Type: text/plain\n\nSee below.\n--f26\n'
      "Content-Type: message/rfc822\nContent-Transfer-Encoding: 8bit\n\nFrom: x@y.vn\nSubject: Thư gốc\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n" + VN + "\n--f26--\n")
write("27-mixed-line-ends", data=(crlf(head(27, "Mixed ends")) + "Content-Type: text/plain\r\n\r\nCRLF line\r\nLF line\nCRLF again\r\n").encode())
write("28-windows-1252", data=crlf(head(28, "cp1252") + "Content-Type: text/plain; charset=windows-1252\nContent-Transfer-Encoding: 8bit\n\n").encode() + "Caf\xe9 \x80 r\xe9sum\xe9\r\n".encode("latin-1"))
write("29-already-signed", head(29, "Signed") + 'Content-Type: multipart/signed; protocol="application/pkcs7-signature"; micalg=sha-256; boundary="s29"\n\n'
      "--s29\nContent-Type: text/plain\n\nSigned text.\n--s29\nContent-Type: application/pkcs7-signature; name=smime.p7s\nContent-Transfer-Encoding: base64\n\n" + b64(b"\x30\x03\x02\x01\x01") + "\n--s29--\n")
write("30-opaque-signed", head(30, "Opaque") + 'Content-Type: application/pkcs7-mime; smime-type=signed-data; name="smime.p7m"\nContent-Transfer-Encoding: base64\n'
      'Content-Disposition: attachment; filename="smime.p7m"\n\n' + b64(b"\x30\x03\x02\x01\x01") + "\n")
write("31-signed-inside-mixed", head(31, "List footer") + 'Content-Type: multipart/mixed; boundary="m31"\n\n--m31\n'
      'Content-Type: multipart/signed; protocol="application/x-pkcs7-signature"; micalg=sha-256; boundary="s31"\n\n'
      "--s31\nContent-Type: text/plain\n\nSigned text.\n--s31\nContent-Type: application/x-pkcs7-signature\nContent-Transfer-Encoding: base64\n\n" + b64(b"\x30\x00") +
      "\n--s31--\n--m31\nContent-Type: text/plain\n\n-- \nmailing list footer\n--m31--\n")
deep = head(32, "Deep")
for level in range(10):
    deep += f'Content-Type: multipart/mixed; boundary="d{level}"\n\n--d{level}\n'
deep += "Content-Type: text/plain\n\nDeep inside.\n"
for level in reversed(range(10)):
    deep += f"--d{level}--\n"
write("32-deep-nesting", deep)
write("33-folded-headers", "From: Sở Thông tin\n\t<stttt@dienbien.gov.vn>\nSubject: a subject\n  folded over\n\tthree lines\nMIME-Version: 1.0\n"
      "Content-Type: text/plain;\n\tcharset=\"utf-8\";\n\tformat=flowed\nContent-Transfer-Encoding: 8bit\n\nFolded.\n")
write("34-calendar-8bit", head(34, "Họp") + 'Content-Type: text/calendar; charset=utf-8; method=REQUEST\nContent-Transfer-Encoding: 8bit\n\n'
      "BEGIN:VCALENDAR\nBEGIN:VEVENT\nSUMMARY:Họp giao ban\nEND:VEVENT\nEND:VCALENDAR\n")
write("35-bare-cr-binary", data=crlf(head(35, "Bare CR") + "Content-Type: application/octet-stream\nContent-Transfer-Encoding: binary\n\n").encode() + b"a\rb\rc\x00d")
write("36-8bit-no-cte", head(36, "8bit undeclared") + "Content-Type: text/plain; charset=utf-8\n\n" + VN + "\n")
write("37-no-final-newline", head(37, "No final newline") + "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\nKết thúc không xuống dòng")
# Malformed multiparts that signing must not change the shape of: a part with no header lines
# (two delimiter lines in a row, and a part whose first line is content), and an inner
# multipart that reuses its parent's boundary.
write("38-part-without-headers", head(38, "Part without headers") + 'Content-Type: multipart/mixed; boundary="p38"\n\n'
      "--p38\n--p38\nContent-Type: text/plain\n\nSecond part.\n--p38\nno header here, just text\n--p38--\n")
write("39-nested-same-boundary", head(39, "Nested, same boundary") + 'Content-Type: multipart/mixed; boundary="same"\n\n'
      '--same\nContent-Type: multipart/alternative; boundary="same"\n\n--same\nContent-Type: text/plain\n\nplain\n'
      "--same\nContent-Type: text/html\n\n<p>html</p>\n--same--\n--same\nContent-Type: text/plain\n\nafter\n--same--\n")
# More of the two malformed shapes real mail has, whose decoded contents signing must keep: a
# multipart whose close delimiter is missing (the last part without a final line break, with
# blank lines at its end, base64, and inside a closed multipart), and an inner multipart reusing
# its parent's boundary around 8-bit text that signing encodes.
write("40-unclosed-no-final-newline", head(40, "Unclosed, no final newline") + 'Content-Type: multipart/mixed; boundary="o40"\n\n'
      "--o40\nContent-Type: text/plain\n\nFirst.\n--o40\nContent-Type: text/plain\n\nLast line without a line break")
write("41-unclosed-trailing-blank-lines", head(41, "Unclosed, blank lines") + 'Content-Type: multipart/mixed; boundary="o41"\n\n'
      "--o41\nContent-Type: text/plain\n\nFirst.\n--o41\nContent-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: 8bit\n\n"
      + VN + "\n\n\n")
write("42-unclosed-base64", head(42, "Unclosed, base64") + 'Content-Type: multipart/mixed; boundary="o42"\n\n'
      "--o42\nContent-Type: text/plain\n\nSee attachment.\n--o42\nContent-Type: application/pdf; name=\"a.pdf\"\n"
      "Content-Transfer-Encoding: base64\n\n" + b64(PDF[:300]) + "\n")
write("43-unclosed-inside-mixed", head(43, "Unclosed inside") + 'Content-Type: multipart/mixed; boundary="out"\n\n'
      '--out\nContent-Type: multipart/alternative; boundary="in"\n\n--in\nContent-Type: text/plain\n\nplain\n'
      "--in\nContent-Type: text/html\n\n<p>html</p>\n\n--out\nContent-Type: text/plain\n\nafter\n--out--\n")
write("44-nested-same-boundary-8bit", head(44, "Nested, same boundary, 8-bit") + 'Content-Type: multipart/mixed; boundary="s44"\n\n'
      '--s44\nContent-Type: multipart/alternative; boundary="s44"\n\n--s44\nContent-Type: text/plain; charset=utf-8\n'
      "Content-Transfer-Encoding: 8bit\n\n" + VN + "\n--s44\nContent-Type: text/html\n\n<p>html</p>\n--s44--\n"
      "--s44\nContent-Type: text/plain\n\nafter\n--s44--\n")
