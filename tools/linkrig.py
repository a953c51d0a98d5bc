"""Test rig for the 4G link: a MicroPython process you can watch line by line,
a throw-away certificate authority, and a TLS/password mosquitto config.

Used by tests/test_modem*.py, tests/test_session*.py, tests/test_link_faults*.py
and tools/bench_link.py. Meter-side scripts print one event per line as
`EV {"ev": ..., ...}`; MpyProc collects them while the test drives faults.
"""
import json
import os
import queue
import subprocess
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")


class MpyProc:
    """One unix-port MicroPython process running `script` with the firmware
    on its path and the ESP32-sized heap."""

    def __init__(self, script, args=(), heap="108k"):
        env = dict(os.environ)
        env["MICROPYPATH"] = ":".join([ROOT, os.path.join(ROOT, "lib"), ".frozen"])
        self.proc = subprocess.Popen([MICROPYTHON, "-X", "heapsize=" + heap, "-c", script] + list(args),
                                     stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT,
                                     env=env, text=True, bufsize=1)
        self.lines = []
        self.events = []
        self._q = queue.Queue()
        self._t = threading.Thread(target=self._reader, daemon=True)
        self._t.start()

    def _reader(self):
        for line in self.proc.stdout:
            line = line.rstrip("\n")
            self.lines.append(line)
            if line.startswith("EV "):
                try:
                    ev = json.loads(line[3:])
                except ValueError:
                    continue
                ev["t_host"] = time.monotonic()
                self.events.append(ev)
                self._q.put(ev)
        self._q.put(None)

    def wait(self, name, timeout=20, **match):
        """Next event called `name` (with the given fields); raises on timeout."""
        deadline = time.monotonic() + timeout
        while True:
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s %r within %ss; output tail:\n%s"
                                   % (name, match, timeout, "\n".join(self.lines[-30:])))
            try:
                ev = self._q.get(timeout=left)
            except queue.Empty:
                continue
            if ev is None:
                raise RuntimeError("micropython exited; output tail:\n" + "\n".join(self.lines[-40:]))
            if ev.get("ev") == name and all(ev.get(k) == v for k, v in match.items()):
                return ev

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        self._t.join(2)
        return self.lines


def make_test_ca(d, host="localhost"):
    """A fresh CA and a server certificate for 127.0.0.1/localhost, made with
    the openssl CLI. Returns paths (ca_crt, ca_der, srv_crt, srv_key, rogue_der):
    rogue_der is a second CA the server was *not* signed by."""
    os.makedirs(d, exist_ok=True)

    def ssl(*args):
        subprocess.run(["openssl"] + list(args), cwd=d, check=True, capture_output=True)

    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1", "-nodes"]
    ssl("req", "-x509", *ec, "-keyout", "ca.key", "-out", "ca.crt", "-days", "2", "-subj", "/CN=meter-test-ca")
    ssl("req", *ec, "-keyout", "srv.key", "-out", "srv.csr", "-subj", "/CN=" + host)
    with open(os.path.join(d, "ext.cnf"), "w") as f:
        f.write("subjectAltName=IP:127.0.0.1,DNS:%s\n" % host)
    ssl("x509", "-req", "-in", "srv.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", "srv.crt", "-days", "2", "-extfile", "ext.cnf")
    ssl("x509", "-in", "ca.crt", "-outform", "DER", "-out", "ca.der")
    ssl("req", "-x509", *ec, "-keyout", "rogue.key", "-out", "rogue.crt", "-days", "2", "-subj", "/CN=rogue-ca")
    ssl("x509", "-in", "rogue.crt", "-outform", "DER", "-out", "rogue.der")
    for name in os.listdir(d):
        os.chmod(os.path.join(d, name), 0o644)
    j = lambda n: os.path.join(d, n)
    return j("ca.crt"), j("ca.der"), j("srv.crt"), j("srv.key"), j("rogue.der")


def secure_conf(d, tls_port, users, ca):
    """mosquitto config lines: a TLS listener and per-meter passwords/ACL.
    `users` maps user -> password; each user may only touch meters/<user>/#."""
    ca_crt, _, srv_crt, srv_key, _ = ca
    pw = os.path.join(d, "passwd")
    open(pw, "w").close()
    for user, password in users.items():
        subprocess.run(["mosquitto_passwd", "-b", pw, user, password], check=True, capture_output=True)
    acl = os.path.join(d, "acl")
    with open(acl, "w") as f:
        f.write("pattern readwrite meters/%u/#\n")
    for p in (pw, acl):
        os.chmod(p, 0o644)
    # running as root, mosquitto would drop to a user that cannot read tmp dirs
    user = "user root\n" if os.geteuid() == 0 else ""
    return ("%sallow_anonymous false\npassword_file %s\nacl_file %s\n"
            "listener %d 127.0.0.1\ncafile %s\ncertfile %s\nkeyfile %s\n"
            % (user, pw, acl, tls_port, ca_crt, srv_crt, srv_key))
