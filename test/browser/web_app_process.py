"""Starts examples/web_app for the browser and load tests, and stops it.

Shared by test/browser and test/load (which imports it from here) (run with Debian's /usr/bin/python3)."""
import http.client
import os
import signal
import ssl
import subprocess
import urllib.request


class WebApp:
    """web_app (--emulator unless told otherwise) on a free port (or `port`); origin, CA file and the
    lines it printed."""

    def __init__(self, binary, workdir, *extra_args, store=None, emulator=True, env=None, preexec_fn=None, port=0):
        os.makedirs(workdir, exist_ok=True)
        self.ca_file = os.path.join(workdir, "trusted_cas.pem")
        self.token_dir = os.path.join(workdir, "tokens")
        self.lines = []
        self.process = subprocess.Popen(
            [binary, *(["--emulator"] if emulator else []), "--port", str(port), "--store",
             store or "file:" + self.token_dir, "--write-ca", self.ca_file, *extra_args],
            stdout=subprocess.PIPE, text=True, env=env, preexec_fn=preexec_fn)
        self.origin = None
        self.demo_account = None
        # The app prints "web_app: open <origin>/" once it serves; reading its output is the
        # synchronisation (no sleep).
        for line in self.process.stdout:
            self.lines.append(line.rstrip())
            if line.startswith("web_app: demo account "):
                self.demo_account = line.split()[3]
            if line.startswith("web_app: open "):
                self.origin = line.split()[2].rstrip("/")
                break
        if self.origin is None:
            self.process.wait()
            raise RuntimeError("web_app exited with %s before serving: %s" % (self.process.returncode, self.lines))

    def ca_certificates(self):
        """The PEM certificates a client must trust (the app's CA, the emulator's CA)."""
        with open(self.ca_file) as f:
            text = f.read()
        end = "-----END CERTIFICATE-----"
        return [part.strip() + "\n" + end + "\n" for part in text.split(end) if part.strip()]

    def get(self, path):
        """GET over TLS verified against the CA file; (status, body)."""
        return self.request(path)

    def new_session(self):
        """A browser session's cookie, "__Host-session=<id>": GET /connect (not followed) makes one."""
        context = ssl.create_default_context(cafile=self.ca_file)
        connection = http.client.HTTPSConnection("localhost", self.port, context=context, timeout=30)
        try:
            connection.request("GET", "/connect")
            res = connection.getresponse()
            res.read()
            assert res.status == 302, res.status
            return res.getheader("Set-Cookie").split(";")[0]
        finally:
            connection.close()

    def request(self, path, method="GET", body=None, content_type=None, cookie=None):
        """A request over TLS verified against the CA file, with `cookie` ("name=value") when given;
        (status, body)."""
        context = ssl.create_default_context(cafile=self.ca_file)
        req = urllib.request.Request(self.origin + path, data=body, method=method)
        if content_type:
            req.add_header("Content-Type", content_type)
        if cookie:
            req.add_header("Cookie", cookie)
        try:
            with urllib.request.urlopen(req, context=context, timeout=30) as res:
                return res.status, res.read().decode()
        except urllib.error.HTTPError as e:
            return e.code, e.read().decode()

    def metrics(self):
        status, body = self.get("/metrics")
        assert status == 200, status
        values = {}
        for line in body.splitlines():
            if line and not line.startswith("#") and "{" not in line:
                name, value = line.split()
                values[name] = float(value)
        return values

    @property
    def port(self):
        return int(self.origin.rsplit(":", 1)[1])

    def stop(self, timeout=30):
        """SIGTERM; the app must shut down cleanly (exit status 0) even with connections open. What
        it printed after its start-up lines is appended to `lines`."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.lines.extend(line.rstrip() for line in self.process.stdout)
        self.process.stdout.close()
        return self.process.returncode
