#!/usr/bin/env python3
"""A certificate authority's web server for the tests, on 127.0.0.1: GET serves the files under
--root (CRLs, CA certificates); POST answers OCSP requests, either with `openssl ocsp` itself
run as the responder on each request (--ocsp-index, --ocsp-ca, --ocsp-signer, --ocsp-key;
`openssl ocsp -port` would listen on every interface) or with the bytes of --ocsp-file.
--delay makes every answer wait, as a slow CA does. Prints "ready" once it listens.
    ca_server.py --port PORT [--root DIR] [--delay SECONDS] [--ocsp-file FILE | --ocsp-index ...]"""

import argparse
import http.server
import os
import signal
import subprocess
import tempfile
import time

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, required=True)
parser.add_argument("--root", default="/nonexistent")
parser.add_argument("--delay", type=float, default=0)
parser.add_argument("--ocsp-file")
parser.add_argument("--ocsp-index")
parser.add_argument("--ocsp-ca")
parser.add_argument("--ocsp-signer")
parser.add_argument("--ocsp-key")
options = parser.parse_args()
# A test runner may block signals in the thread that starts this; stop must still work.
signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGTERM, signal.SIGINT})


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *arguments):
        pass

    def answer(self, body_path, content_type):
        time.sleep(options.delay)
        if body_path is None or not os.path.isfile(body_path):
            self.send_error(404)
            return
        size = os.path.getsize(body_path)
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(size))
        self.end_headers()
        with open(body_path, "rb") as body:
            while chunk := body.read(1 << 20):
                try:
                    self.wfile.write(chunk)
                except (BrokenPipeError, ConnectionResetError):
                    return

    def do_GET(self):
        path = os.path.normpath(os.path.join(options.root, self.path.lstrip("/")))
        if not path.startswith(os.path.abspath(options.root)):
            self.send_error(403)
            return
        self.answer(path, "application/pkix-crl")

    def do_POST(self):
        length = int(self.headers.get("Content-Length", "0"))
        request = self.rfile.read(length)
        if not options.ocsp_index:
            self.answer(options.ocsp_file, "application/ocsp-response")
            return
        with tempfile.TemporaryDirectory() as directory:
            with open(os.path.join(directory, "request.der"), "wb") as out:
                out.write(request)
            subprocess.run(
                ["openssl", "ocsp", "-index", options.ocsp_index, "-CA", options.ocsp_ca, "-rsigner",
                 options.ocsp_signer, "-rkey", options.ocsp_key, "-nmin", "10",
                 "-reqin", os.path.join(directory, "request.der"), "-respout", os.path.join(directory, "response.der")],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            self.answer(os.path.join(directory, "response.der"), "application/ocsp-response")


server = http.server.ThreadingHTTPServer(("127.0.0.1", options.port), Handler)
server.daemon_threads = True
print("ready", flush=True)
# The standard streams keep their descriptor open on close(): replace it, so that the reader
# of "ready" sees the end of the pipe.
os.dup2(os.open(os.devnull, os.O_WRONLY), 1)
server.serve_forever()
