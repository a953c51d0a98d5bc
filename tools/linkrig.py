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

import children

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MICROPYTHON = os.environ.get("MICROPYTHON") or os.path.join(ROOT, ".venv", "bin", "micropython")


class MpyProc:
    """One unix-port MicroPython process running `script` with the firmware
    on its path and the ESP32-sized heap: 108wk, the board's 108 KB counted
    in words as the sim meters run (108k on the 64-bit host is half the
    board's, and the rig compiles the link's sources into it: the modem rig
    ran out at import, a few names from the edge)."""

    def __init__(self, script, args=(), heap="108wk", opts=None):
        env = dict(os.environ)
        if opts is not None:
            # options go in the environment: the unix port dies ("FATAL:
            # uncaught NLR") on a command-line argument longer than ~255 bytes
            env["LINK_OPTS"] = json.dumps(opts)
        env["MICROPYPATH"] = ":".join([ROOT, os.path.join(ROOT, "lib"), ".frozen"])
        self.proc = children.track(subprocess.Popen(
            [MICROPYTHON, "-X", "heapsize=" + heap, "-c", script] + list(args), stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, cwd=ROOT, env=env, text=True, bufsize=1))
        self.lines = []
        self.events = []
        self._q = queue.Queue()
        self._claimed = set()
        self._exited = False
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
        """The first not yet claimed event called `name` (with the given
        fields), waiting for it if need be; raises on timeout or exit."""
        deadline = time.monotonic() + timeout
        while True:
            for i, ev in enumerate(self.events):
                if i not in self._claimed and ev.get("ev") == name and \
                        all(ev.get(k) == v for k, v in match.items()):
                    self._claimed.add(i)
                    return ev
            if self._exited:
                raise RuntimeError("micropython exited; output tail:\n" + "\n".join(self.lines[-40:]))
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError("no %s %r within %ss; output tail:\n%s"
                                   % (name, match, timeout, "\n".join(self.lines[-30:])))
            try:
                if self._q.get(timeout=min(left, 0.5)) is None:
                    self._exited = True
            except queue.Empty:
                pass

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
        self.proc.wait(5)
        children.untrack(self.proc)
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


# How long the program itself held its asyncio loop, for the meter-side
# scripts (prepend it to a script). A task calls beat() each time it runs;
# held_ms is the longest gap between two beats minus the time this process
# spent runnable but waiting for a CPU in that gap (Linux schedstat's run
# delay). A link that blocks in a socket call or spins shows in held_ms; a
# loaded machine that merely runs the process late does not, so tests bound
# held_ms instead of the wall-clock gap.
LOOP_PROBE = r"""
import time as _t
def _run_delay_ms():
    try:
        with open("/proc/self/schedstat") as f:
            return int(f.read().split()[1]) // 1000000
    except (OSError, ValueError, IndexError):
        return 0
class LoopProbe:
    # net=False: the wall-clock gap only, without a schedstat read per beat
    # (the idle-CPU bench measures the link, not this probe's file reads)
    def __init__(self, net=True):
        self.net = net
        self.beats = 0
        self.gap_ms = 0      # the longest wall-clock gap (load included)
        self.held_ms = 0     # the longest gap the program itself caused
        self._at = _t.ticks_ms()
        self._rq = _run_delay_ms() if net else 0
    def beat(self):
        now, rq = _t.ticks_ms(), _run_delay_ms() if self.net else 0
        gap = _t.ticks_diff(now, self._at)
        self.beats += 1
        self.gap_ms = max(self.gap_ms, gap)
        self.held_ms = max(self.held_ms, gap - (rq - self._rq))
        self._at, self._rq = now, rq
"""

# The meter side of the link tests and the bench: a "metering" task counts
# every 100 ms (and reports its longest stall: LOOP_PROBE), the session runs beside it,
# optionally over the modem link. Every received message is echoed to
# meters/<id>/ack. $LINK_OPTS is a JSON dict of options (see meter()).
METER_SCRIPT = LOOP_PROBE + r"""
import os, json, time, asyncio
from firmware.link.session import Session
o = json.loads(os.getenv("LINK_OPTS"))
for k, v in o.get("session_attrs", {}).items():
    setattr(Session, k, v)
def ev(name, **kw):
    kw["ev"] = name
    kw["at_ms"] = time.ticks_ms()
    print("EV " + json.dumps(kw))
ctx = None
if o.get("ca"):
    import ssl
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    ctx.verify_mode = ssl.CERT_REQUIRED
    with open(o["ca"], "rb") as f:
        ctx.load_verify_locations(cadata=f.read())
net = None
if o.get("modem"):
    from firmware.boards.sim_uart import PtyUart, ModemLines
    from firmware.link.modem import ModemLink
    class Board:
        def __init__(self, path, port):
            self.uart = PtyUart(path)
            self.lines = ModemLines(port)
        def modem_uart(self): return self.uart
        def modem_pwrkey(self, level): self.lines.pwrkey(level)
        def modem_reset(self, level): self.lines.reset(level)
        def modem_power(self, on): self.lines.power(on)
    for k, v in o.get("modem_attrs", {}).items():
        setattr(ModemLink, k, v)
    net = ModemLink(Board(o["modem"][0], o["modem"][1]), "internet.test")
mid = o.get("id", "m1")
s = Session(mid, o.get("host", "127.0.0.1"), o["port"], o.get("user"), o.get("password"),
            o.get("keepalive", 2), ssl_ctx=ctx, status_topic=("meters/%s/status" % mid).encode(), net=net)
s.subscribe(o.get("sub", "meters/%s/cmd" % mid).encode(), 1)
ack = ("meters/%s/ack" % mid).encode()
probe = LoopProbe(o.get("probe_net", True))
def on_message(topic, payload):
    payload = bytes(payload)   # a view of the received packet (Session.run)
    ev("msg", topic=bytes(topic).decode(), payload=payload.decode())
    s.publish(ack, b"ack:" + payload, False, 1)
async def meter():
    while True:
        await asyncio.sleep_ms(100)
        probe.beat()
def loop():
    return {"ticks": probe.beats, "max_gap_ms": probe.gap_ms, "held_ms": probe.held_ms}
async def watch():
    was = False
    t_end = time.ticks_add(time.ticks_ms(), o.get("run_ms", 60000))
    watch_ms = o.get("watch_ms", 20)      # the bench watches slowly, to measure idle CPU
    tick_every = max(1, 1000 // watch_ms)
    n = 0
    while time.ticks_diff(t_end, time.ticks_ms()) > 0:
        if s.up != was:
            was = s.up
            ev("up" if was else "down", stats=s.stats(), **loop())
        n += 1
        if n % tick_every == 0:
            ev("tick", stats=s.stats(), **loop())
        await asyncio.sleep_ms(watch_ms)
    ev("done", stats=s.stats(), **loop())
async def main():
    asyncio.create_task(meter())
    if net is not None:
        asyncio.create_task(net.run())
    asyncio.create_task(s.run(on_message))
    await watch()
asyncio.run(main())
"""


def meter(port, **opts):
    """Start the meter-side script against `port`; see METER_SCRIPT."""
    opts["port"] = port
    return MpyProc(METER_SCRIPT, opts=opts)
