"""The whole sim meter in steady state: CPU and heap.

- idle_cpu_pct: CPU of the meter process (all its tasks: metering every
  second, keys and LCD, the MQTT session with its keepalive, the outbox and
  state publisher) with the link up and a constant load, over 30 s of real
  time, from /proc utime+stime. Target <= 2 % of one core: no busy-waiting.
- heap_free_bytes / heap_free_pct: free heap after a collection, in the
  ESP32-sized heap (-X heapsize=108wk), the code running from its ROMFS
  image as on a production board (the image itself not counted).
"""
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from broker import Broker  # noqa: E402
from simmeter import SimMeter  # noqa: E402

TARGETS = {"idle_cpu_pct": ("<=", 2.0), "heap_free_pct": (">=", 25)}
WINDOW_S = 30


def _cpu_s(pid):
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run():
    # every start inside the try: an interrupt at any point stops what runs
    with tempfile.TemporaryDirectory(prefix="bench-fw-") as work:
        broker = Broker(os.path.join(work, "broker"))
        meter = SimMeter("bench-fw", work, broker_port=broker.port,
                         config={"initial_balance_minor": 10 ** 7})
        try:
            broker.start()
            meter.start()
            meter.control({"cmd": "load", "w": 1500})
            meter.wait_for(lambda s: s["meter"]["link_up"], timeout=60)   # a loaded machine: the broker may come up late and the backoff grows
            time.sleep(3)
            c0, t0 = _cpu_s(meter.proc.pid), time.time()
            time.sleep(WINDOW_S)
            c1, t1 = _cpu_s(meter.proc.pid), time.time()
            mem = meter.mem()
        finally:
            meter.stop()
            broker.stop()
    return {"idle_cpu_pct": round(100.0 * (c1 - c0) / (t1 - t0), 2),
            "heap_total_bytes": mem["total"], "heap_free_bytes": mem["free"],
            "heap_free_pct": round(100.0 * mem["free"] / mem["total"], 1)}


if __name__ == "__main__":
    print(run())
