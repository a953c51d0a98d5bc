"""`make run`: one simulated meter, a local broker and a head-end console.

The left panel is what a person standing at the meter sees and hears (LCD,
relay, buzzer); the right panel is what the utility's server sees over MQTT.
Single keys drive it:

    space  short press of the query button (next screen, silence the buzzer)
    l      long press (emergency credit / confirm reconnection)
    + / -  load up / down by 500 W
    t      send a top-up of 10.00 from the head-end
    f      speed the clock up x10 (up to a simulated hour per second); s slows it down
    q      quit
"""
import itertools
import json
import os
import select
import sys
import tempfile
import termios
import threading
import time
import tty

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import paho.mqtt.client as mqtt  # noqa: E402
from rich.console import Group  # noqa: E402
from rich.layout import Layout  # noqa: E402
from rich.live import Live  # noqa: E402
from rich.panel import Panel  # noqa: E402
from rich.table import Table  # noqa: E402
from rich.text import Text  # noqa: E402

from broker import Broker  # noqa: E402
from headend import codec  # noqa: E402
from simmeter import SimMeter  # noqa: E402

METER_ID = "demo-0001"
DEMO_KEY = bytes(range(32))  # the demo meter's per-meter HMAC key


class HeadEnd:
    """The server's side: what arrived over MQTT, and the top-ups it sends."""

    def __init__(self, port):
        self.state, self.status, self.acks, self.log = {}, "?", [], []
        self.orders = itertools.count(1)
        self.ctr = int(time.time() * 1000)  # command counters only ever increase
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="headend-demo")
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("meters/%s/#" % METER_ID, qos=1)
        self.c.loop_start()

    def on_message(self, client, userdata, msg):
        kind = msg.topic.rsplit("/", 1)[-1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload.decode(errors="replace")
        if kind == "state":
            self.state = body
        elif kind == "status":
            self.status = body
        elif kind == "ack":
            self.acks.append(body)
        if kind != "state":  # the state is shown above; the log keeps the rest
            if isinstance(body, dict):
                body = {k: v for k, v in body.items() if k not in ("mac", "v", "meter")}
            self.log.append("%s %s %s" % (time.strftime("%H:%M:%S"), kind, str(body)[:90]))
            del self.log[:-10]

    def topup(self, amount_minor):
        order = next(self.orders)
        self.ctr += 1
        cmd = codec.command(METER_ID, DEMO_KEY, self.ctr, int(time.time()) + 3600, "topup",
                            order=order, amount_minor=amount_minor)
        self.c.publish("meters/%s/cmd" % METER_ID, cmd, qos=1)
        self.log.append("%s sent signed top-up order %d (%s)" % (time.strftime("%H:%M:%S"), order,
                                                                 money(amount_minor)))


def money(minor):
    return "%s%d.%02d" % ("-" if minor < 0 else "", abs(minor) // 100, abs(minor) % 100)


def meter_panel(st, scale):
    lcd = Text("\n".join((line[:16]).ljust(16) for line in (st.get("lcd") or []) + [""] * 8)[:16 * 8 + 7],
               style="bold black on green3")
    m = st.get("meter", {})
    t = Table.grid(padding=(0, 1))
    t.add_row("relay", Text("CLOSED (supply on)" if st.get("relay_closed") else "OPEN (supply cut)",
                            style="green" if st.get("relay_closed") else "bold red"))
    t.add_row("buzzer", Text("BEEP" if st.get("buzzer") else "quiet", style="bold yellow" if st.get("buzzer") else ""))
    t.add_row("load", "%d W at %d V" % (st.get("load_w", 0), st.get("volts", 0)))
    t.add_row("balance", money(m.get("balance_minor", 0)))
    t.add_row("energy", "%.3f kWh" % (m.get("import_wh", 0) / 1000))
    t.add_row("meter time", time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(st.get("rtc_s", 0))) + "  x%d" % scale)
    return Panel(Group(Panel(lcd, title="LCD", width=20), t), title="At the meter")


def server_panel(he):
    t = Table.grid(padding=(0, 1))
    s = he.state
    t.add_row("status", str(he.status))
    t.add_row("balance", money(s["balance_minor"]) if "balance_minor" in s else "-")
    t.add_row("relay", ("closed" if s.get("relay_closed") else "open") if s else "-")
    t.add_row("1.8.0", "%s Wh" % s.get("obis_1_8_0", "-"))
    t.add_row("meter seq", str(s.get("seq", "-")))
    return Panel(Group(t, Text("\n".join(he.log))), title="Head-end (server view)")


def main():
    work = tempfile.mkdtemp(prefix="meter-demo-")
    broker = Broker(os.path.join(work, "broker")).start()
    meter = SimMeter(METER_ID, work, broker_port=broker.port,
                     config={"initial_balance_minor": 500, "state_every_s": 5,
                             "key_hex": DEMO_KEY.hex(), "reconnect": "press"}, scale=1,
                     epoch=int(time.time())).start()
    he = HeadEnd(broker.port)
    scale = 1
    meter.control({"cmd": "load", "w": 1000})
    help_text = Text("space: press button   l: long press   +/-: load   t: top-up 10.00   "
                     "f/s: clock faster/slower   q: quit", style="bold")
    interactive = sys.stdin.isatty()
    old = termios.tcgetattr(sys.stdin) if interactive else None
    try:
        if interactive:
            tty.setcbreak(sys.stdin.fileno())
        with Live(refresh_per_second=8, screen=False) as live:
            while True:
                st = meter.state()
                layout = Layout()
                layout.split_column(Layout(help_text, size=1), Layout(name="main"))
                layout["main"].split_row(Layout(meter_panel(st, scale)), Layout(server_panel(he)))
                live.update(Panel(layout, title="prepaid meter simulator: %s (broker %s:%d)"
                                  % (METER_ID, broker.kind, broker.port), height=24))
                if not interactive:
                    time.sleep(0.25)
                    continue
                ready, _, _ = select.select([sys.stdin], [], [], 0.2)
                if not ready:
                    continue
                key = sys.stdin.read(1)
                if key == "q":
                    break
                if key == " ":
                    meter.control({"cmd": "press", "ms": 150})
                elif key == "l":
                    meter.control({"cmd": "press", "ms": 2000})
                elif key in "+=":
                    meter.control({"cmd": "load", "w": st.get("load_w", 0) + 500})
                elif key == "-":
                    meter.control({"cmd": "load", "w": max(0, st.get("load_w", 0) - 500)})
                elif key == "t":
                    he.topup(1000)
                elif key == "f":
                    scale = min(scale * 10, 3600)
                    meter.control({"cmd": "scale", "scale": scale})
                elif key == "s":
                    scale = max(scale // 10, 1)
                    meter.control({"cmd": "scale", "scale": scale})
    except KeyboardInterrupt:
        pass
    finally:
        if old:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
        meter.stop()
        broker.stop()
    print("meter and broker stopped; files in", work)


if __name__ == "__main__":
    main()
