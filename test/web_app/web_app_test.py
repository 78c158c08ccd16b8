"""The web example's failure paths, each against a web_app process of its own (with its embedded
emulator), over real TLS sockets.

usage: /usr/bin/python3 web_app_test.py WEB_APP_BINARY CASE
CASE is one of the functions in CASES below; ctest runs each as web_app_<CASE>.
"""
import http.client
import http.server
import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import threading
import time
import urllib.parse

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "browser"))
from web_app_process import WebApp  # noqa: E402


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    print("ok: %s" % what)


def wait_until(predicate, what, timeout=30):
    """Polls `predicate` (an observable of the process) until it holds; fails after `timeout`."""
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("timed out waiting until %s" % what)
        time.sleep(0.02)
    print("ok: %s" % what)


class Connection(http.client.HTTPSConnection):
    """HTTPS to 127.0.0.1:port verified as `host`, optionally from another loopback address (the
    app tells clients apart by address)."""

    def __init__(self, host, port, ca_file, source=None, timeout=30):
        super().__init__(host, port, timeout=timeout, context=ssl.create_default_context(cafile=ca_file),
                         source_address=(source, 0) if source else None)

    def connect(self):
        sock = socket.create_connection(("127.0.0.1", self.port), self.timeout, self.source_address)
        self.sock = self._context.wrap_socket(sock, server_hostname=self.host)


def fetch(app, url, method="GET", body=None, headers=None, source=None):
    """One request, redirects not followed; (status, headers, body)."""
    parts = urllib.parse.urlsplit(url if "://" in url else app.origin + url)
    conn = Connection(parts.hostname, parts.port, app.ca_file, source)
    try:
        target = parts.path + ("?" + parts.query if parts.query else "")
        conn.request(method, target, body=body, headers=headers or {})
        res = conn.getresponse()
        return res.status, res.headers, res.read().decode()
    finally:
        conn.close()


def post_tasks(app, account):
    return fetch(app, "/accounts/%s/tasks" % account, "POST", b'{"contact_ids":["a"]}',
                 {"Content-Type": "application/json"})


# --- cases --------------------------------------------------------------------------------------


class StatusServer:
    """An HTTPS server on 127.0.0.1 answering every request with `status` and a JSON body: an API
    whose answers the emulator cannot give (it writes an unregistered status as "000")."""

    def __init__(self, root, status):
        cert, key = os.path.join(root, "upstream.pem"), os.path.join(root, "upstream.key")
        subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                        "-keyout", key, "-out", cert, "-days", "2", "-subj", "/CN=127.0.0.1",
                        "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
        self.ca_file = cert

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def answer(self):
                self.rfile.read(int(self.headers.get("Content-Length", 0)))
                body = b'{"error":"origin unreachable"}'
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = answer

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(cert, key)
        self.server.socket = context.wrap_socket(self.server.socket, server_side=True)
        self.url = "https://127.0.0.1:%d" % self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def stop(self):
        self.server.shutdown()
        self.server.server_close()


def upstream_status(binary, root):
    """An upstream status is passed on as its number, also one Beast has no name for (Cloudflare's
    520); a status line that carries no status ("000") becomes 502."""
    app = WebApp(binary, os.path.join(root, "emulated"), "--auto-consent", "--demo-account",
                 "--emulator-fault", "api:status:520")
    account, store = app.demo_account, "file:" + app.token_dir
    try:
        status, _, _ = post_tasks(app, account)
        check(status == 502, "the emulator's \"000\" status (its 520) is answered as 502, got %s" % status)
        status, _, body = post_tasks(app, account)
        check(status == 200 and json.loads(body) == {"created": 1}, "the next request goes through")
    finally:
        check(app.stop() == 0, "web_app stopped cleanly")

    # The same account, its pair read from the first process's store, against an API that answers 520.
    upstream = StatusServer(root, 520)
    env = dict(os.environ, APOLLO_CLIENT_SECRET="not-used")
    app = WebApp(binary, os.path.join(root, "real"), "--client-id", "not-used", "--api-base", upstream.url,
                 "--token-url", upstream.url + "/token", "--ca-file", upstream.ca_file, store=store, emulator=False,
                 env=env)
    try:
        status, _, body = post_tasks(app, account)
        check(status == 520 and json.loads(body) == {"error": "origin unreachable"},
              "the API's 520 is answered as 520 with its body, got %s" % status)
    finally:
        check(app.stop() == 0, "web_app stopped cleanly")
        upstream.stop()


CASES = {f.__name__: f for f in (upstream_status,)}


def main():
    binary, case = sys.argv[1], sys.argv[2]
    root = tempfile.mkdtemp(prefix="web_app_%s_" % case)
    try:
        CASES[case](binary, root)
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
