"""`make bench` figures for the 4G link (issue 6), measured on loopback with a
real mosquitto, the fault proxy and the meter side in unix-port MicroPython.

- reconnect_after_drop_s_p50/p99: from the end of a link fault (connection
  reset by the network, or broker restart) to a working session again, with
  the production timeouts and backoff. Faults are spaced a little more than
  STABLE_MS apart (shortened to 3 s here, 30 s in production) so each one is
  an isolated fault rather than a flapping link, which backs off further.
- idle_cpu_pct_link_rig: CPU of the meter-side process (session over TLS + a 100 ms
  metering task) in steady state with the link up, % of one core.
- keepalive_bytes_per_day: bytes a meter spends per day keeping an idle TLS
  session alive at the default keepalive (PINGREQ every 0.75 x 120 s): the
  measured TLS record bytes of one ping exchange, plus 40 bytes of IPv4+TCP
  header for each of the 4 segments (request, response, two ACKs).
"""
import os
import tempfile
import time

from broker import Broker, _free_port
from faultproxy import FaultProxy
from linkrig import make_test_ca, meter, secure_conf

TARGETS = {"idle_cpu_pct_link_rig": ("<=", 2.0), "reconnect_after_drop_s_p99": ("<=", 5.0)}
TRIALS = 12
KEEPALIVE_S = 120
TCPIP_HEADER_B = 40
# /proc counts CPU in 10 ms ticks: over 8 s one tick was 0.125 % of the 2 %
# target, and the figure flipped between 1.875 and 2.125 from run to run
CPU_WINDOW_S = 30


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _pct(values, p):
    v = sorted(values)
    return v[min(len(v) - 1, int(round(p / 100.0 * (len(v) - 1))))]


STABLE_MS = 3000


def reconnect_times(broker, proxy):
    m = meter(proxy.port, run_ms=600000, session_attrs={"STABLE_MS": STABLE_MS})
    times = []
    try:
        m.wait("up", timeout=20)
        for i in range(TRIALS):
            if i % 3 == 2:
                broker.restart()           # the broker goes away and comes back
            else:
                proxy.reset_all()          # the network resets the flow
            t_end = time.monotonic()
            m.wait("down", timeout=30)
            up = m.wait("up", timeout=60)
            times.append(up["t_host"] - t_end)
            time.sleep(STABLE_MS / 1000.0 + 0.3)
    finally:
        m.stop()
    return times


def _next_tick(m, after):
    """The first status event printed after host time `after`."""
    while True:
        ev = m.wait("tick", timeout=5)
        if ev["t_host"] >= after:
            return ev


def idle_cpu_and_keepalive(proxy, ca):
    """Idle TLS session with a 1 s keepalive: CPU over CPU_WINDOW_S, and the proxy's
    byte count between two status events (pings counted by the session)."""
    m = meter(proxy.port, ca=ca[1], user="m1", password="pw-m1", keepalive=1,
              run_ms=600000, watch_ms=1000, host="localhost", probe_net=False)
    try:
        m.wait("up", timeout=20)
        time.sleep(1.0)
        first = _next_tick(m, time.monotonic())
        b0 = proxy.bytes_up + proxy.bytes_down
        c0, t0 = _cpu_s(m.proc.pid), time.monotonic()
        time.sleep(CPU_WINDOW_S)
        c1, t1 = _cpu_s(m.proc.pid), time.monotonic()
        last = _next_tick(m, time.monotonic())
        b1 = proxy.bytes_up + proxy.bytes_down
    finally:
        m.stop()
    return 100.0 * (c1 - c0) / (t1 - t0), first, last, b1 - b0


def run():
    with tempfile.TemporaryDirectory(prefix="bench_link_") as work:
        return _run(work)


def _run(work):
    out = {}
    b = Broker(os.path.join(work, "plain"))
    p = None
    try:
        b.start()
        p = FaultProxy(b.port).start()
        t = reconnect_times(b, p)
    finally:
        if p:
            p.stop()
        b.stop()
    out["reconnect_after_drop_s_p50"] = round(_pct(t, 50), 3)
    out["reconnect_after_drop_s_p99"] = round(_pct(t, 99), 3)

    ca = make_test_ca(os.path.join(work, "ca"))
    tls_port = _free_port()
    d = os.path.join(work, "tls")
    os.makedirs(d)
    b = Broker(d, extra_conf=secure_conf(d, tls_port, {"m1": "pw-m1"}, ca))
    p = None
    try:
        b.start()
        p = FaultProxy(tls_port).start()
        cpu, first, last, tls_bytes = idle_cpu_and_keepalive(p, ca)
    finally:
        if p:
            p.stop()
        b.stop()
    out["idle_cpu_pct_link_rig"] = round(cpu, 3)
    pings = last["stats"]["pings"] - first["stats"]["pings"]
    wire = (last["stats"]["bytes_in"] + last["stats"]["bytes_out"]
            - first["stats"]["bytes_in"] - first["stats"]["bytes_out"])
    # session byte counters see MQTT bytes; the proxy saw TLS records
    per_ping_tls = tls_bytes / float(max(1, pings))
    pings_per_day = 86400.0 / (KEEPALIVE_S * 0.75)
    out["keepalive_bytes_per_day"] = int(pings_per_day * (per_ping_tls + 4 * TCPIP_HEADER_B))
    out["keepalive_mqtt_bytes_per_ping"] = round(wire / float(max(1, pings)), 1)
    out["keepalive_tls_bytes_per_ping"] = round(per_ping_tls, 1)
    return out


if __name__ == "__main__":
    import json
    print(json.dumps(run(), indent=1))
