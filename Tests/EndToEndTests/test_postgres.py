"""Records of several mail servers in one PostgreSQL (EventDatabase postgresql://...), with a real
PostgreSQL 15 that the tests start with initdb and pg_ctl in a temporary directory on 127.0.0.1:
two daemons writing one database while mail flows through the milter protocol, PostgreSQL
stopped, hung and refusing, a daemon killed with records unsent; each record must arrive once,
mail must never wait, and the report of the database must equal the merge of the servers' files."""

import os
import pwd
import shutil
import signal
import sqlite3
import subprocess
import tempfile
import time
from pathlib import Path

import pytest
from miltertest import constants as c

from conftest import BINARY, Daemon, Session
from postfix_instance import free_port

PG_BIN = Path("/usr/lib/postgresql/15/bin")
PASSWORD = "records-secret"


class Postgres:
    """A PostgreSQL cluster of its own, run as the postgres user when the tests run as root
    (initdb refuses root); stopped by its PID."""

    def __init__(self, directory):
        assert (PG_BIN / "initdb").exists(), f"{PG_BIN}/initdb is missing: scripts/install-deps.sh test installs postgresql"
        self.directory = Path(directory)
        self.data = self.directory / "data"
        self.port = free_port()
        self.user = "postgres" if os.geteuid() == 0 else None
        if self.user:
            os.chown(self.directory, pwd.getpwnam(self.user).pw_uid, -1)
        self.run([PG_BIN / "initdb", "-D", self.data, "-U", "postgres", "--auth-local=trust",
                  "--auth-host=scram-sha-256", "-E", "UTF8", "--no-sync"])
        self.start()
        self.psql("CREATE ROLE smime LOGIN PASSWORD '%s'" % PASSWORD)

    def run(self, command, **kwargs):
        command = [str(part) for part in command]
        if self.user:
            command = ["runuser", "-u", self.user, "--"] + command
        return subprocess.run(command, check=True, capture_output=True, text=True, **kwargs)

    def start(self):
        self.run([PG_BIN / "pg_ctl", "-D", self.data, "-l", self.directory / "log", "-w", "-t", "30", "-o",
                  f"-p {self.port} -k {self.directory} -c listen_addresses=127.0.0.1 -c fsync=off", "start"])

    @property
    def pid(self):
        return int((self.data / "postmaster.pid").read_text().split("\n")[0])

    def processes(self):
        """The postmaster and its children: what a hung server is."""
        children = subprocess.run(["pgrep", "-P", str(self.pid)], capture_output=True, text=True).stdout.split()
        return [self.pid] + [int(p) for p in children]

    def stop(self):
        pid = self.pid
        os.kill(pid, signal.SIGINT)  # fast shutdown
        deadline = time.time() + 30
        while time.time() < deadline and (self.data / "postmaster.pid").exists():
            time.sleep(0.1)

    def psql(self, sql, database="postgres"):
        return subprocess.run(["psql", "-h", str(self.directory), "-p", str(self.port), "-U", "postgres", "-d", database,
                               "-X", "-A", "-t", "-v", "ON_ERROR_STOP=1", "-c", sql],
                              check=True, capture_output=True, text=True).stdout.strip()

    def database(self, name):
        self.psql(f"CREATE DATABASE {name} OWNER smime")
        return f"postgresql://smime@127.0.0.1:{self.port}/{name}"


@pytest.fixture(scope="module")
def postgres():
    # Not under pytest's own temporary directory: that is private to root, and the server runs
    # as the postgres user.
    server = Postgres(tempfile.mkdtemp(prefix="smime-milter-postgres-"))
    try:
        yield server
    finally:
        for pid in server.processes():
            try:
                os.kill(pid, signal.SIGCONT)
            except ProcessLookupError:
                pass
        if (server.data / "postmaster.pid").exists():
            server.stop()
        shutil.rmtree(server.directory, ignore_errors=True)


def password_file(directory, text=PASSWORD):
    path = Path(directory) / "records-password"
    path.write_text(text + "\n")
    path.chmod(0o600)
    return path


def records_daemon(pki, directory, url, server_name, password=PASSWORD, extra=()):
    """A daemon that signs with a PEM key (no token: these tests are about the records)."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    chain = f"{pki}/ca/chain.pem"
    (directory / "signing-table").write_text(
        f"*@dienbien.gov.vn {pki}/certs/vanphong.key cert={pki}/certs/vanphong.pem chain={chain}\n")
    return Daemon(directory, [
        f"SigningTable {directory}/signing-table", f"TrustAnchors {pki}/ca/root.pem", f"CRLDirectory {pki}/crl",
        f"EventDatabase {url}", f"EventDatabasePasswordFile {password_file(directory, password)}",
        f"ServerName {server_name}", *extra,
    ])


def message(sender, recipient):
    return (f"From: {sender}\r\nTo: {recipient}\r\nSubject: records\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\nKính gửi các đơn vị.\r\n").encode()


def send(daemon, queue_id, outgoing=True):
    """One message: signed on its way out, or arriving unsigned from outside. Returns its latency."""
    started = time.monotonic()
    session = Session(daemon, client="127.0.0.1" if outgoing else "203.0.113.7")
    if outgoing:
        result = session.send(message("ketoan@dienbien.gov.vn", "a@example.org"),
                              sender="<ketoan@dienbien.gov.vn>", recipients=("<a@example.org>",), queue_id=queue_id)
        assert result.body_replaced, "signed"
    else:
        result = session.send(message("someone@example.org", "vanthu@dienbien.gov.vn"), sender="<someone@example.org>",
                              recipients=("<vanthu@dienbien.gov.vn>",), queue_id=queue_id)
    session.close()
    assert result.reply[0] == c.SMFIR_CONTINUE, "mail flows"
    return time.monotonic() - started


def records(postgres, database):
    """(server, queue ID) -> how many records PostgreSQL has (none before the daemon made the tables)."""
    if postgres.psql("SELECT to_regclass('events') IS NOT NULL", database) != "t":
        return {}
    rows = postgres.psql("SELECT server, queue_id, count(*) FROM events GROUP BY 1, 2", database)
    return {(s, q): int(n) for s, q, n in (line.split("|") for line in rows.splitlines() if line)}


def wait_for(condition, timeout, what):
    deadline = time.time() + timeout
    while time.time() < deadline:
        value = condition()
        if value:
            return value
        time.sleep(0.2)
    raise AssertionError(f"not within {timeout} s: {what}")


def local(daemon):
    """(records, waiting) in the daemon's events.sqlite."""
    with sqlite3.connect(daemon.directory / "events.sqlite") as db:
        return db.execute("SELECT count(*), coalesce(sum(forwarded = 0), 0) FROM events").fetchone()


def report(config, *arguments):
    done = subprocess.run([str(BINARY), "report", "--config", str(config), "--format", "csv", *arguments],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


def count_lines(daemon, text):
    return sum(1 for line in daemon.log_text().splitlines() if text in line)


def test_two_daemons_write_one_database_and_its_report_equals_the_merged_files(pki, postgres, tmp_path):
    url = postgres.database("province")
    first = records_daemon(pki, tmp_path / "mx1", url, "mx1").start()
    second = records_daemon(pki, tmp_path / "mx2", url, "mx2").start()
    try:
        sent = set()
        for n in range(12):
            for daemon, name in ((first, "mx1"), (second, "mx2")):
                queue_id = f"{name.upper()}Q{n:03d}"
                send(daemon, queue_id, outgoing=n % 3 != 2)
                sent.add((name, queue_id))
        wait_for(lambda: set(records(postgres, "province")) == sent, 20, "every record in PostgreSQL")
        assert set(records(postgres, "province").values()) == {1}, "each once"
        time.sleep(1.5)
        assert records(postgres, "province").keys() == sent, "and nothing more"
        daily = postgres.psql("SELECT sum(count) FROM daily", "province")
        assert daily == str(len(sent)), "daily counts match the records"
    finally:
        first.stop()
        second.stop()
    files = ["--database", str(first.directory / "events.sqlite"), "--database", str(second.directory / "events.sqlite")]
    shared = report(first.config, "--database", url)
    assert shared == report(first.config, *files)
    # 8 signed and 4 incoming per server.
    assert ",dienbien.gov.vn,16,16,0,0," in shared.replace('"', "")
    assert report(first.config, "--server", "mx1") == report(first.config, "--database", str(first.directory / "events.sqlite"))
    assert report(first.config, "--by", "month") == report(first.config, "--by", "month", *files)
    # check-config reaches the database and says so.
    checked = subprocess.run([str(BINARY), "check-config", "--no-tokens", "--config", str(first.config)],
                             capture_output=True, text=True).stdout
    assert f"ok: EventDatabase {url}: connected, records schema 2, 24 records from 2 servers" in checked


def test_postgres_stopped_for_a_while_gets_every_record_once_when_it_is_back(pki, postgres, tmp_path):
    url = postgres.database("stopped")
    daemon = records_daemon(pki, tmp_path, url, "mx1").start()
    try:
        for n in range(5):
            send(daemon, f"BEFORE{n}")
        wait_for(lambda: len(records(postgres, "stopped")) == 5, 15, "the first records")
        postgres.stop()
        # PostgreSQL down for 10 s while mail flows (the principle of the 30 s).
        stopped = time.time()
        n = 0
        while time.time() - stopped < 10:
            send(daemon, f"DURING{n}", outgoing=n % 2 == 0)
            n += 1
            time.sleep(0.3)
        wait_for(lambda: local(daemon)[1] == n, 5, "the records waiting in the file")
        postgres.start()
        wait_for(lambda: len(records(postgres, "stopped")) == 5 + n, 30, "the waiting records forwarded")
        got = records(postgres, "stopped")
        assert set(got.values()) == {1}
        assert set(got) == {("mx1", f"BEFORE{i}") for i in range(5)} | {("mx1", f"DURING{i}") for i in range(n)}
        order = postgres.psql("SELECT queue_id FROM events WHERE queue_id LIKE 'DURING%' ORDER BY id", "stopped")
        assert order.split() == [f"DURING{i}" for i in range(n)], "forwarded in order"
        assert local(daemon)[1] == 0
        assert count_lines(daemon, "answers again") == 1
        failures = [line for line in daemon.log_text().splitlines() if "forwarded when it answers" in line]
        assert 1 <= len(failures) <= 2, failures  # refused, and perhaps the shutdown's own error first
    finally:
        daemon.stop()
        if not (postgres.data / "postmaster.pid").exists():
            postgres.start()


def test_a_hung_postgres_does_not_slow_mail(pki, postgres, tmp_path):
    url = postgres.database("hung")
    daemon = records_daemon(pki, tmp_path, url, "mx1").start()
    hung = []
    try:
        for n in range(3):
            send(daemon, f"WARM{n}")
        before = sorted(send(daemon, f"BEFORE{n}") for n in range(10))
        wait_for(lambda: len(records(postgres, "hung")) == 13, 15, "the first records")
        hung = postgres.processes()
        for pid in hung:
            os.kill(pid, signal.SIGSTOP)
        during = []
        started = time.time()
        n = 0
        while time.time() - started < 12:
            during.append(send(daemon, f"HUNG{n}"))
            n += 1
            time.sleep(0.2)
        during.sort()
        median_before, median_during = before[len(before) // 2], during[len(during) // 2]
        print(f"latency median before {median_before * 1000:.1f} ms, while hung {median_during * 1000:.1f} ms, "
              f"max while hung {during[-1] * 1000:.1f} ms")
        # A message that waited for the hung database would take seconds (the forwarder waits 10 s
        # for an answer), not a slower median: the median depends on the machine's load, this does not.
        assert during[-1] < 1.0, "no message waited for the database"
        assert local(daemon)[1] == n or wait_for(lambda: local(daemon)[1] == n, 5, "records kept in the file")
        assert count_lines(daemon, "no answer for 10 s") == 1
        for pid in hung:
            os.kill(pid, signal.SIGCONT)
        hung = []
        wait_for(lambda: len(records(postgres, "hung")) == 13 + n, 40, "the records forwarded once it answers")
        assert set(records(postgres, "hung").values()) == {1}
    finally:
        for pid in hung:
            os.kill(pid, signal.SIGCONT)
        daemon.stop()


def test_records_unsent_at_kill_9_are_forwarded_after_the_restart_and_none_twice(pki, postgres, tmp_path):
    url = postgres.database("killed")
    daemon = records_daemon(pki, tmp_path, url, "mx1").start()
    try:
        for n in range(4):
            send(daemon, f"SENT{n}")
        wait_for(lambda: len(records(postgres, "killed")) == 4, 15, "the first records")
        postgres.stop()
        for n in range(6):
            send(daemon, f"UNSENT{n}")
        wait_for(lambda: local(daemon) == (10, 6), 5, "six records waiting in the file")
        daemon.process.kill()
        daemon.process.wait()
        # As if the daemon had died after PostgreSQL committed two records but before it marked
        # them in the file: they are sent again, and must not count twice.
        with sqlite3.connect(tmp_path / "events.sqlite") as db:
            db.execute("UPDATE events SET forwarded = 0 WHERE queue_id IN ('SENT2', 'SENT3')")
        postgres.start()
        daemon.start()
        wait_for(lambda: len(records(postgres, "killed")) == 10, 20, "the unsent records forwarded after the restart")
        time.sleep(1.5)
        assert set(records(postgres, "killed").values()) == {1}, "none twice"
        assert postgres.psql("SELECT sum(count) FROM daily", "killed") == "10", "nor counted twice"
        assert local(daemon) == (10, 0)
    finally:
        daemon.stop()
        if not (postgres.data / "postmaster.pid").exists():
            postgres.start()


@pytest.mark.parametrize("problem", ["wrong password", "missing database", "newer schema"])
def test_a_refusing_database_gets_one_clear_line_and_mail_flows(pki, postgres, tmp_path, problem):
    name = "refusing_" + problem.replace(" ", "_")
    password = PASSWORD
    if problem == "wrong password":
        url = postgres.database(name)
        password = "not-the-password"
        expected = 'password authentication failed for user "smime"; check EventDatabasePasswordFile'
    elif problem == "missing database":
        url = f"postgresql://smime@127.0.0.1:{postgres.port}/{name}"
        expected = f'database "{name}" does not exist; create it'
    else:
        url = postgres.database(name)
        postgres.psql("CREATE TABLE smime_milter_schema (version integer NOT NULL); INSERT INTO smime_milter_schema VALUES (99);"
                      " ALTER TABLE smime_milter_schema OWNER TO smime", name)
        expected = "has records schema 99, newer than this smime-milter knows (2); upgrade smime-milter on this server"
    daemon = records_daemon(pki, tmp_path, url, "mx1", password=password).start()
    try:
        for n in range(4):
            send(daemon, f"Q{n}", outgoing=n % 2 == 0)
        # Longer than the retry interval: tried again, logged once.
        time.sleep(7)
        lines = [line for line in daemon.log_text().splitlines() if expected in line]
        assert len(lines) == 1, daemon.log_text()[-3000:]
        assert "records kept in" in lines[0] and "mail is not affected" in lines[0]
        assert PASSWORD not in daemon.log_text() and "not-the-password" not in daemon.log_text()
        assert local(daemon) == (4, 4), "records kept locally"
        checked = subprocess.run([str(BINARY), "check-config", "--no-tokens", "--config", str(daemon.config)],
                                 capture_output=True, text=True)
        assert expected in checked.stdout and "warning: EventDatabase" in checked.stdout
        assert "configuration would run" in checked.stdout
    finally:
        daemon.stop()


def test_records_migrate_moves_a_servers_history_once(pki, postgres, tmp_path):
    # A server's history kept in SQLite, as before PostgreSQL.
    daemon = Daemon(tmp_path / "old", [f"TrustAnchors {pki}/ca/root.pem", "Mode v"]).start()
    try:
        for n in range(5):
            send(daemon, f"OLD{n}", outgoing=False)
    finally:
        daemon.stop()
    history = tmp_path / "old" / "events.sqlite"
    url = postgres.database("migrated")
    config = tmp_path / "migrate.conf"
    config.write_text(f"TrustAnchors {pki}/ca/root.pem\nServerName old-mx\nEventDatabase {url}\n"
                      f"EventDatabasePasswordFile {password_file(tmp_path)}\n")
    migrate = [str(BINARY), "records", "migrate", "--config", str(config), "--from", str(history), "--server", "old-mx"]
    done = subprocess.run(migrate, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert "5 records sent" in done.stdout and "5 new" in done.stdout
    again = subprocess.run(migrate, capture_output=True, text=True)
    assert "0 records sent" in again.stdout
    # Marks lost (a copy of the file from before): sent again, stored once.
    with sqlite3.connect(history) as db:
        db.execute("UPDATE events SET forwarded = 0")
    third = subprocess.run(migrate, capture_output=True, text=True)
    assert "5 records sent" in third.stdout and "0 new, 5 already there" in third.stdout
    assert records(postgres, "migrated") == {("old-mx", f"OLD{n}"): 1 for n in range(5)}
    assert report(config) == report(config, "--database", str(history))
    # A password on the command line is refused.
    refused = subprocess.run(migrate + ["--to", f"postgresql://smime:{PASSWORD}@127.0.0.1:{postgres.port}/migrated"],
                             capture_output=True, text=True)
    assert refused.returncode != 0 and "holds a password" in refused.stderr


def test_tls_with_verify_full_is_used_and_a_wrong_certificate_refused(pki, postgres, tmp_path):
    # A CA of its own and a server certificate for 127.0.0.1, as a province's database would have.
    tls = Path(tempfile.mkdtemp(prefix="smime-milter-postgres-tls-"))
    try:
        def openssl(*arguments):
            subprocess.run(["openssl", *arguments], check=True, capture_output=True, cwd=tls)
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "ca.key",
                "-out", "ca.pem", "-days", "2", "-subj", "/CN=records test CA")
        openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "server.key",
                "-out", "server.csr", "-subj", "/CN=127.0.0.1")
        (tls / "san.ext").write_text("subjectAltName=IP:127.0.0.1\n")
        openssl("x509", "-req", "-in", "server.csr", "-CA", "ca.pem", "-CAkey", "ca.key", "-CAcreateserial",
                "-out", "server.pem", "-days", "2", "-extfile", "san.ext")
        openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes", "-keyout", "other.key",
                "-out", "other.pem", "-days", "2", "-subj", "/CN=another CA")
        if postgres.user:
            entry = pwd.getpwnam(postgres.user)
            for name in ("server.key", "server.pem"):
                os.chown(tls / name, entry.pw_uid, entry.pw_gid)
            os.chown(tls, entry.pw_uid, entry.pw_gid)
        (tls / "server.key").chmod(0o600)
        postgres.psql(f"ALTER SYSTEM SET ssl_cert_file = '{tls}/server.pem'")
        postgres.psql(f"ALTER SYSTEM SET ssl_key_file = '{tls}/server.key'")
        postgres.psql("ALTER SYSTEM SET ssl = on")
        postgres.psql("SELECT pg_reload_conf()")
        wait_for(lambda: postgres.psql("SHOW ssl") == "on", 10, "TLS on")
        name = "tls"
        base = postgres.database(name)
        url = f"{base}?sslmode=verify-full&sslrootcert={tls}/ca.pem"
        daemon = records_daemon(pki, tmp_path / "good", url, "mx1").start()
        try:
            send(daemon, "TLS1")
            wait_for(lambda: len(records(postgres, name)) == 1, 15, "the record over TLS")
            used = postgres.psql("SELECT count(*) FROM pg_stat_ssl JOIN pg_stat_activity USING (pid) "
                                 "WHERE ssl AND application_name = 'smime-milter'")
            assert used == "1", "the daemon's connection is encrypted"
        finally:
            daemon.stop()
        wrong = records_daemon(pki, tmp_path / "wrong", f"{base}?sslmode=verify-full&sslrootcert={tls}/other.pem", "mx2").start()
        try:
            send(wrong, "TLS2")
            wait_for(lambda: count_lines(wrong, "certificate verify failed") == 1, 10, "the refusal logged")
            wait_for(lambda: local(wrong) == (1, 1), 5, "the record kept locally")
        finally:
            wrong.stop()
    finally:
        postgres.psql("ALTER SYSTEM RESET ssl")
        postgres.psql("SELECT pg_reload_conf()")
        shutil.rmtree(tls, ignore_errors=True)
