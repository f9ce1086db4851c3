"""Fixtures for the end-to-end tests: the test PKI and tokens, a running smime-milter, and an
MTA side of the milter protocol (the PyPI `miltertest` client) that applies what the milter
asks for, so that the result can be checked with openssl and gpgsm."""

import os
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
from miltertest import MilterConnection
from miltertest import constants as c
from postfix_instance import free_port, stop_process

REPO = Path(__file__).resolve().parents[2]
BINARY = Path(os.environ.get("SMIME_MILTER", REPO / ".build" / "debug" / "smime-milter"))


@pytest.fixture(scope="session", autouse=True)
def sanitized_binary():
    """Under `make test-asan` (SMIME_MILTER_SANITIZED set) the daemon under test is the one built
    with AddressSanitizer, named by SMIME_MILTER, or every test fails saying so."""
    if os.environ.get("SMIME_MILTER_SANITIZED"):
        assert os.environ.get("SMIME_MILTER"), "SMIME_MILTER_SANITIZED is set but SMIME_MILTER names no binary"
        sanitized = b"AddressSanitizer" in BINARY.read_bytes()
        assert sanitized, f"{BINARY} is not built with AddressSanitizer"


@pytest.fixture(scope="session")
def pki(tmp_path_factory):
    """The test CA, certificates and SoftHSM tokens of scripts/make-test-pki.sh."""
    directory = tmp_path_factory.mktemp("pki")
    # The CA web server and OCSP responder the certificates name listen on ports chosen now, so
    # that test runs beside each other never meet on a fixed port (ca_ports reads them back).
    crl_port, ocsp_port = free_port(), free_port()
    subprocess.run(["bash", str(REPO / "scripts" / "make-test-pki.sh"), str(directory)], check=True,
                   stdout=subprocess.DEVNULL,
                   env={**os.environ, "CRL_BASE_URL": f"http://127.0.0.1:{crl_port}/crl",
                        "CA_BASE_URL": f"http://127.0.0.1:{crl_port}/ca", "OCSP_URL": f"http://127.0.0.1:{ocsp_port}/"})
    os.environ["SOFTHSM2_CONF"] = str(directory / "softhsm2.conf")
    return directory


def ca_ports(pki):
    """The ports of the CA web server (CRLs, CA issuers) and OCSP responder the PKI's
    certificates name, from its env file."""
    settings = dict(line.split("=", 1) for line in (Path(pki) / "env").read_text().splitlines() if "=" in line)
    return (int(settings["CRL_BASE_URL"].split(":")[2].split("/")[0]),
            int(settings["OCSP_URL"].split(":")[2].split("/")[0]))


def key_uri(pki, token, obj):
    return f"pkcs11:token={token};object={obj};type=private?pin-source=file:{pki}/pins/{token}"


class Daemon:
    """smime-milter run, in its own directory, stopped by its PID. It listens on a unix socket
    in the directory, or on TCP at 127.0.0.1:`tcp_port` when one is given."""

    def __init__(self, directory, config_lines, env=None, tcp_port=None):
        self.env = env
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.socket = self.directory / "milter.sock"
        self.tcp_port = tcp_port
        self.config = self.directory / "smime-milter.conf"
        self.log = self.directory / "milter.log"
        listen = f"Socket inet:{tcp_port}@127.0.0.1" if tcp_port else f"Socket local:{self.socket}"
        base = [listen, "UserID root", "Syslog no", "LogLevel debug",
                f"StateDirectory {self.directory}", "AuthservID mail.dienbien.gov.vn"]
        self.config.write_text("\n".join(base + config_lines) + "\n")
        self.process = None

    def start(self):
        offset = self.log.stat().st_size if self.log.exists() else 0
        self.process = subprocess.Popen([str(BINARY), "run", "--config", str(self.config)],
                                        stdout=open(self.log, "ab"), stderr=subprocess.STDOUT,
                                        env={**os.environ, **(self.env or {})})
        deadline = time.time() + 20
        while time.time() < deadline:
            if b"listening" in self.log.read_bytes()[offset:]:
                return self
            if self.process.poll() is not None:
                raise RuntimeError(f"smime-milter exited: {self.log.read_text()}")
            time.sleep(0.05)
        raise RuntimeError(f"smime-milter did not start: {self.log.read_text()}")

    def alive(self):
        return self.process.poll() is None

    def stop(self):
        if self.process:
            stop_process(self.process, timeout=30)
            if os.environ.get("SMIME_MILTER_SANITIZED"):
                # Built with AddressSanitizer: its reports (leaks, memory errors) land in the log.
                assert "Sanitizer" not in self.log_text(), self.log_text()[-6000:]

    def log_text(self):
        return self.log.read_text(errors="replace")


@pytest.fixture(scope="module")
def daemon(pki, tmp_path_factory):
    """A daemon with the signing table of the province's test units, verifying against the test root."""
    directory = tmp_path_factory.mktemp("milter")
    chain = f"{pki}/ca/chain.pem"
    (directory / "signing-table").write_text("\n".join([
        f"vanthu.stttt@dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'vanthu')} chain={chain}",
        f"*@stttt.dienbien.gov.vn {key_uri(pki, 'STTTT-DienBien', 'unit-seal')} chain={chain}",
        f"*@absent.dienbien.gov.vn pkcs11:token=Absent-Token;object=seal;type=private?pin-source=file:{pki}/pins/PIN-Test",
        f"*@dienbien.gov.vn {pki}/certs/vanphong.key cert={pki}/certs/vanphong.pem chain={chain}",
    ]) + "\n")
    (directory / "authorized-signers").write_text("vanthu *@stttt.dienbien.gov.vn, vanthu.stttt@dienbien.gov.vn\n")
    started = Daemon(directory, [
        f"SigningTable {directory}/signing-table",
        f"AuthorizedSigners {directory}/authorized-signers",
        "PKCS11Module /usr/lib/softhsm/libsofthsm2.so",
        f"TrustAnchors {pki}/ca/root.pem",
        f"CRLDirectory {pki}/crl",
        "InternalHosts 127.0.0.1, ::1, 10.20.0.0/16",
        "MTA ORIGINATING",
        "SpoolThreshold 1M",
    ]).start()
    yield started
    started.stop()


# MARK: the MTA side

def split_message(message: bytes):
    """Header fields as (name, value-with-leading-space, folding as LF) and the body in CRLF form."""
    message = message.replace(b"\r\n", b"\n")
    head, _, body = message.partition(b"\n\n")
    fields = []
    for line in head.decode().split("\n"):
        if line[:1] in (" ", "\t") and fields:
            fields[-1][1] += "\n" + line
        else:
            name, _, value = line.partition(":")
            fields.append([name, value])
    return fields, body.replace(b"\n", b"\r\n")


class Result:
    def __init__(self, headers, body, replies):
        self.replies = replies
        self.reply = replies[-1]
        self.headers = headers
        self.body = body
        self.body_replaced = any(r[0] == c.SMFIR_REPLBODY for r in replies)

    def header(self, name):
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def message(self):
        head = "".join(f"{n}:{v}\n" for n, v in self.headers)
        return head.replace("\n", "\r\n").encode() + b"\r\n" + self.body

    @property
    def smtp_reply(self):
        return self.reply[1].get("smtpcode", "") + " " + self.reply[1].get("text", "") if self.reply[0] == c.SMFIR_REPLYCODE else ""


class Session:
    """One MTA connection to the milter, as Postfix's smtpd would hold it."""

    def __init__(self, daemon, client="127.0.0.1", daemon_name="smtpd"):
        if daemon.tcp_port:
            self.sock = socket.create_connection(("127.0.0.1", daemon.tcp_port), timeout=60)
        else:
            self.sock = socket.socket(socket.AF_UNIX)
            self.sock.settimeout(60)
            self.sock.connect(str(daemon.socket))
        self.conn = MilterConnection(self.sock)
        self.conn.optneg_mta()
        self.conn.send_macro(c.SMFIC_CONNECT, **{"{daemon_name}": daemon_name, "j": "mail.dienbien.gov.vn"})
        self.step(c.SMFIC_CONNECT, c.SMFIP_NR_CONN, hostname="client.example", family=c.SMFIA_INET, port=40000,
                  address=client)

    def step(self, command, no_reply_flag, **args):
        if self.conn.protocol_flags & no_reply_flag:
            self.conn._send(command, **args)
            return None
        return self.conn.send_ar(command, **args)

    def send(self, message: bytes, sender="<sender@example.org>", recipients=("<stttt@stttt.dienbien.gov.vn>",),
             login=None, queue_id="4ABCDEF"):
        macros = {"i": queue_id}
        if login:
            macros.update({"{auth_type}": "PLAIN", "{auth_authen}": login})
        self.conn.send_macro(c.SMFIC_MAIL, **macros)
        reply = self.conn.send_ar(c.SMFIC_MAIL, args=[sender])
        assert reply[0] == c.SMFIR_CONTINUE, reply
        for recipient in recipients:
            self.step(c.SMFIC_RCPT, c.SMFIP_NR_RCPT, args=[recipient])
        fields, body = split_message(message)
        for name, value in fields:
            self.step(c.SMFIC_HEADER, c.SMFIP_NR_HDR, name=name, value=value)
        self.step(c.SMFIC_EOH, c.SMFIP_NR_EOH)
        for start in range(0, len(body), c.MILTER_CHUNK_SIZE):
            # Raw bytes: miltertest's encoder takes text, and a chunk may end inside a UTF-8 character.
            chunk = body[start:start + c.MILTER_CHUNK_SIZE]
            self.sock.sendall(struct.pack("!Lc", len(chunk) + 1, c.SMFIC_BODY.encode()) + chunk)
            if not self.conn.protocol_flags & c.SMFIP_NR_BODY:
                assert self.conn.recv()[0] == c.SMFIR_CONTINUE
        self.conn.send_macro(c.SMFIC_BODYEOB, i=queue_id)
        replies = self.conn.send_eom()
        return Result(*apply(fields, body, replies), replies)

    def abort(self):
        self.conn._send(c.SMFIC_ABORT)

    def close(self):
        self.conn._send(c.SMFIC_QUIT)
        self.sock.close()


def apply(fields, body, replies):
    """What the MTA does with the milter's modifications."""
    headers = [list(f) for f in fields]
    new_body = b""
    replaced = False
    for command, args in replies:
        if command == c.SMFIR_ADDHEADER:
            headers.append([args["name"], args["value"]])
        elif command == c.SMFIR_INSHEADER:
            headers.insert(args["index"], [args["name"], args["value"]])
        elif command == c.SMFIR_CHGHEADER:
            seen = 0
            for position, (name, _) in enumerate(headers):
                if name.lower() == args["name"].lower():
                    seen += 1
                    if seen == args["index"]:
                        if args["value"]:
                            headers[position][1] = args["value"]
                        else:
                            del headers[position]
                        break
        elif command == c.SMFIR_REPLBODY:
            new_body += args["buf"].encode()
            replaced = True
    return headers, (new_body if replaced else body)


def signed_by_provincial_office(pki, message: bytes) -> bytes:
    """The message signed elsewhere in the province (the office's PEM key), by `smime-milter sign`."""
    return subprocess.run(
        [str(BINARY), "sign", "--key", f"{pki}/certs/vanphong.key", "--cert", f"{pki}/certs/vanphong.pem",
         "--chain", f"{pki}/ca/chain.pem"], input=message, capture_output=True, check=True).stdout


def openssl_verify(pki, message: bytes, tmp_path):
    path = tmp_path / "signed.eml"
    path.write_bytes(message)
    return subprocess.run(["openssl", "cms", "-verify", "-in", str(path), "-CAfile", f"{pki}/ca/root.pem",
                           "-out", "/dev/null"], capture_output=True, text=True)


def reload(daemon, outcome):
    """Sends SIGHUP and waits (up to a minute: a busy machine is slow, not wrong) for the log
    line of this reload, `outcome`, to follow it."""
    offset = len(daemon.log_text())
    daemon.process.send_signal(signal.SIGHUP)
    deadline = time.time() + 60
    while outcome not in daemon.log_text()[offset:]:
        assert time.time() < deadline, f"no '{outcome}' after SIGHUP: {daemon.log_text()[offset:][-2000:]}"
        time.sleep(0.05)
