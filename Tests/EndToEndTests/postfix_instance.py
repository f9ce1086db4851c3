"""A Postfix instance of its own (postfix -c DIR) on loopback, relaying to smtp-sink, for the
end-to-end tests and the benchmark. Everything lives in one directory; the instance and the
sink are stopped by what started them."""

import os
import random
import shutil
import signal
import socket
import subprocess
import time
from pathlib import Path


_handed_out = set()


def free_port():
    """A port no one listens on at 127.0.0.1, for a server about to start. Drawn at random below
    the kernel's range for outgoing connections (32768 and up: no client connection takes it
    meanwhile, as one can take a port the kernel chose), and never the same twice in a process.
    Another test run may still draw it at the same moment: servers started on it check that
    they are the ones listening (SmtpSink draws again)."""
    for _ in range(200):
        port = random.randrange(20000, 32000)
        if port in _handed_out:
            continue
        with socket.socket() as s:
            try:
                s.bind(("127.0.0.1", port))
            except OSError:
                continue
        _handed_out.add(port)
        return port
    raise RuntimeError("no free port on 127.0.0.1 in 20000-31999")


def stop_process(process, timeout):
    """Stops a process we started: SIGTERM, then SIGKILL if it has not exited within `timeout` seconds."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def wait_for_port(port, timeout=60, process=None):
    """Waits until something listens on `port`. Given the `process` that should, returns False
    if it exited instead (it could not bind), True once it listens."""
    deadline = time.time() + timeout
    while time.time() < deadline:
        if process is not None and process.poll() is not None:
            return False
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port}")


class SmtpSink:
    """Postfix's smtp-sink, writing each message it receives to a file in `directory`."""

    def __init__(self, directory, port=None, dump=True):
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        os.chmod(self.directory, 0o777)
        # No -c (a counter of about 60 octets per message on its output): into a pipe nobody
        # reads, it filled the pipe after about a thousand messages, and smtp-sink then blocked
        # and stopped answering Postfix's connections. What it says goes to a file beside the
        # directory (the directory holds only messages).
        arguments = ["smtp-sink", "-u", "postfix"]
        if dump:
            arguments += ["-d", f"{self.directory}/%H%M%S."]
        self.output = self.directory.with_name(self.directory.name + ".log")
        # A port someone else took between drawing and binding makes smtp-sink exit: draw again.
        for _ in range(5):
            self.port = port or free_port()
            with open(self.output, "wb") as output:
                self.process = subprocess.Popen(arguments + [f"127.0.0.1:{self.port}", "256"],
                                                stdout=output, stderr=subprocess.STDOUT)
            if wait_for_port(self.port, process=self.process):
                return
            if port:
                break
        raise RuntimeError(f"smtp-sink could not listen on 127.0.0.1:{self.port}: {self.output.read_text(errors='replace')}")

    def messages(self):
        """The messages received, without the envelope lines smtp-sink puts first."""
        result = []
        for path in sorted(self.directory.iterdir()):
            data = path.read_bytes()
            lines = data.split(b"\n")
            while lines and lines[0].startswith(b"X-") and b": " in lines[0] and (
                    lines[0].split(b":")[0] in (b"X-Client-Addr", b"X-Client-Proto", b"X-Helo-Args",
                                                b"X-Mail-Args", b"X-Rcpt-Args")):
                lines.pop(0)
            result.append(b"\n".join(lines))
        return result

    def clear(self):
        for path in self.directory.iterdir():
            path.unlink()

    def stop(self):
        stop_process(self.process, timeout=10)


class PostfixInstance:
    """A Postfix with its own configuration and queue directories, listening on 127.0.0.1:
    `smtp_port` (plain smtpd) and `submission_port` (smtpd with milter_macro_daemon_name =
    ORIGINATING), relaying everything to 127.0.0.1:`relay_port`. `milter` is the value of
    smtpd_milters / non_smtpd_milters, or None for no milter."""

    def __init__(self, directory, relay_port, milter=None, extra_main=""):
        self.directory = Path(directory)
        self.config = self.directory / "etc"
        self.queue = self.directory / "queue"
        self.data = self.directory / "data"
        for path in (self.config, self.queue, self.data):
            path.mkdir(parents=True, exist_ok=True)
        shutil.chown(self.data, "postfix")
        self.smtp_port = free_port()
        self.submission_port = free_port()
        self.maillog = self.directory / "maillog"
        milters = f"smtpd_milters = {milter}\nnon_smtpd_milters = {milter}\n" if milter else ""
        (self.config / "main.cf").write_text(f"""\
compatibility_level = 3.6
queue_directory = {self.queue}
data_directory = {self.data}
mail_owner = postfix
setgid_group = postdrop
maillog_file = {self.maillog}
maillog_file_prefixes = {self.directory}
inet_interfaces = 127.0.0.1
inet_protocols = ipv4
myhostname = mail.dienbien.gov.vn
mydomain = dienbien.gov.vn
myorigin = $mydomain
mydestination =
mynetworks = 127.0.0.0/8
relayhost = [127.0.0.1]:{relay_port}
relay_domains =
smtpd_relay_restrictions = permit_mynetworks, reject
alias_maps =
alias_database =
smtp_tls_security_level = none
smtpd_tls_security_level = none
smtp_dns_support_level = disabled
disable_dns_lookups = yes
smtpd_peername_lookup = no
message_size_limit = 100000000
default_destination_concurrency_limit = 20
smtp_destination_concurrency_limit = 20
in_flow_delay = 0
queue_run_delay = 300s
minimal_backoff_time = 300s
milter_default_action = tempfail
milter_protocol = 6
{milters}{extra_main}
""")
        (self.config / "master.cf").write_text(f"""\
127.0.0.1:{self.smtp_port} inet n - n - 100 smtpd
127.0.0.1:{self.submission_port} inet n - n - 100 smtpd
  -o milter_macro_daemon_name=ORIGINATING
postlog   unix-dgram n  -       n       -       1       postlogd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
tlsmgr    unix  -       -       n       1000?   1       tlsmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
""")

    def postfix(self, *arguments, check=True):
        return subprocess.run(["postfix", "-c", str(self.config), *arguments], capture_output=True, text=True,
                              check=check)

    def start(self):
        self.postfix("check", check=False)
        self.postfix("start")
        wait_for_port(self.smtp_port)
        wait_for_port(self.submission_port)
        return self

    def stop(self):
        self.postfix("stop", check=False)

    def log(self):
        return self.maillog.read_text(errors="replace") if self.maillog.exists() else ""

    def queue_ids(self):
        """Queue IDs of messages still in the queue (any queue), from postqueue -j."""
        result = subprocess.run(["postqueue", "-c", str(self.config), "-j"], capture_output=True, text=True)
        return [line for line in result.stdout.splitlines() if line.strip()]

    def sendmail(self, message: bytes, sender, recipient):
        """Local submission through the sendmail command (non_smtpd_milters)."""
        subprocess.run(["sendmail", "-C", str(self.config), "-f", sender, recipient], input=message, check=True)

    def kick(self):
        """Makes pickup scan the maildrop and qmgr run the queue now."""
        subprocess.run(["postkick", "-c", str(self.config), "public", "pickup", "W"], check=False)
        subprocess.run(["postqueue", "-c", str(self.config), "-f"], check=False)
