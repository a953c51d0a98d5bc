"""`make run`: one simulated meter, a local broker and a head-end console.

The meter's side is what a person standing at the meter sees and hears: the
LCD's real 128x64 frame (half blocks in a terminal of 168 x 56 or more,
braille in 80 columns), the relay, the buzzer; the head-end's panel is what
the utility's server sees over MQTT.
Single keys drive it:

    space  short press of the query button (next screen, silence the buzzer)
    l      long press (emergency credit / confirm reconnection)
    + / -  load up / down by 500 W
    t      send a top-up of 10.00 from the head-end
    f / s  clock one step faster / slower: x1, x10, x100, x1000, x3600
    q      quit

The head-end is the reference one (tools/headend) with its database in the
demo's folder; build/demo.json tells `python -m headend --demo` (from tools/)
where it and the broker are, so its commands reach this meter too.
"""
import json
import os
import select
import shutil
import sys
import tempfile
import termios
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

import children  # noqa: E402
from broker import Broker  # noqa: E402
from headend.server import HeadEnd  # noqa: E402
import lcd_png  # noqa: E402
from simmeter import ROOT, SimMeter  # noqa: E402

METER_ID = "demo-0001"
DEMO_KEY = bytes(range(32))  # the demo meter's per-meter HMAC key
# where `python -m headend --demo` finds this demo (tools/headend/__main__.py)
DEMO_FILE = os.environ.get("METER_DEMO_FILE") or os.path.join(ROOT, "build", "demo.json")
# `f` and `s` walk this ladder one rung at a time, so `s` undoes `f` exactly
SPEEDS = (1, 10, 100, 1000, 3600)
# Commands stay valid for a year of meter time: at x3600 the meter's clock
# passes the head-end's usual hour in one real second.
TTL_S = 365 * 86400
# The help line sits inside the outer panel's border: 80 columns less 4.
HELP = "space: press  l: long press  +/-: load  t: top-up 10.00  f/s: clock  q: quit"
# 80 columns: help, the LCD in braille (16 rows and its border), then the
# meter's and the server's panels (19 rows). A terminal of WIDE_COLS x
# WIDE_ROWS or more shows the LCD in half blocks, a column per pixel.
SCREEN_ROWS = 40
WIDE_COLS = 168
WIDE_ROWS = 56
LOG_ROWS = 12        # what the server panel has room for below its table


def faster(scale):
    return SPEEDS[min(SPEEDS.index(scale) + 1, len(SPEEDS) - 1)]


def slower(scale):
    return SPEEDS[max(SPEEDS.index(scale) - 1, 0)]


def money(minor):
    return "%s%d.%02d" % ("-" if minor < 0 else "", abs(minor) // 100, abs(minor) % 100)


def _bal(body):
    return ", bal %s" % money(body["balance_minor"]) if isinstance(body.get("balance_minor"), int) else ""


def describe(leaf, body):
    """One message from the meter, in words (docs/protocol.md has the fields)."""
    if leaf == "status":
        return "meter online" if body == "online" else "meter %s (link lost)" % body
    if not isinstance(body, dict):
        return "%s: unreadable message" % leaf
    if leaf == "ack":
        kind, res = body.get("kind", "?"), body.get("result", "?")
        what = "order %s" % body.get("order") if kind == "topup" else "%s command" % kind
        if res == "rejected":
            return "%s rejected: %s" % (what, body.get("reason"))
        return "%s %s%s" % (what, res, _bal(body) if kind == "topup" else "")
    if leaf != "evt":
        return "%s message" % leaf
    k = body.get("kind")
    if k == "topup":
        return "top-up +%s%s" % (money(body.get("amount_minor", 0)), _bal(body))
    if k == "ledger":
        names = {"loan": "emergency credit taken", "repay": "emergency credit repaid", "adjust": "adjustment",
                 "charge": "charged"}
        return "%s %s%s" % (names.get(body.get("entry"), body.get("entry")), money(body.get("amount_minor", 0)),
                            _bal(body))
    if k == "relay":
        return "relay %s (%s)" % ("closed" if body.get("closed") else "opened", body.get("reason"))
    if k == "warning":
        if not body.get("level"):
            return "low-credit warning cleared"
        return "low credit L%s%s" % (body.get("level"), _bal(body))
    if k in ("fault", "tamper"):
        return "%s: %s" % (k, body.get("code"))
    if k == "tariff":
        return "tariff v%s %s" % (body.get("a"), "applied" if body.get("event") == "tariff" else "pending")
    if k == "mode":
        return "mode now %s" % body.get("mode")
    if k == "protection":
        return "protection %s (%s)" % (body.get("event"), body.get("what"))
    if k == "remote":
        return "remote %s" % body.get("action")
    if k == "frozen_daily":
        return "day closed: %.3f kWh" % (body.get("wh", 0) / 1000)
    if k == "frozen_monthly":
        return "month closed: %.3f kWh" % (body.get("wh", 0) / 1000)
    return "event %s" % k


class ServerView:
    """What arrived over MQTT, for the right panel. The top-ups go out
    through the reference head-end (`he`), as any other command would."""

    def __init__(self, port, he):
        self.he = he
        self.state, self.status, self.log = {}, "?", []
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="headend-demo-view")
        self.c.on_message = self.on_message
        self.c.connect("127.0.0.1", port)
        self.c.subscribe("meters/%s/#" % METER_ID, qos=1)
        self.c.loop_start()

    def stop(self):
        self.c.loop_stop()
        self.c.disconnect()

    def on_message(self, client, userdata, msg):
        leaf = msg.topic.rsplit("/", 1)[-1]
        try:
            body = json.loads(msg.payload)
        except ValueError:
            body = msg.payload.decode(errors="replace")
        if leaf == "state":   # shown in the table above; the log keeps the rest
            self.state = body
            return
        if leaf == "status":
            self.status = body
        elif leaf == "cmd":
            return            # our own commands: add() said what they were
        elif leaf == "ack" and isinstance(body, dict) and body.get("kind") == "query":
            return            # the head-end asking for missed events: housekeeping
        self.add(describe(leaf, body))

    def add(self, text):
        self.log.append("%s %s" % (time.strftime("%H:%M:%S"), text))
        del self.log[:-LOG_ROWS]

    def topup(self, amount_minor):
        oid = self.he.topup(METER_ID, amount_minor)
        self.add("sent order %d: top-up %s" % (self.he.order(oid)["order_no"], money(amount_minor)))


def lcd_panel(frame_hex, wide):
    """The meter's real 128x64 frame (the sim's lcd_frame): every pixel, in
    half blocks (128 x 32 cells) when the terminal is wide enough, else in
    braille (64 x 16 cells, 2 x 4 pixels each) to fit 80 columns."""
    frame = frame_hex or lcd_png.blank_frame()
    if wide:
        return Panel(lcd_png.half_blocks(frame), title="LCD 128x64", width=lcd_png.WIDTH + 2,
                     height=lcd_png.HEIGHT // 2 + 2, padding=0)
    return Panel(lcd_png.braille(frame), title="LCD 128x64", width=lcd_png.WIDTH // 2 + 2,
                 height=lcd_png.HEIGHT // 4 + 2, padding=0)


def meter_panel(st, scale):
    m = st.get("meter", {})
    t = Table.grid(padding=(0, 1))
    t.add_row("relay", Text("CLOSED (supply on)" if st.get("relay_closed") else "OPEN (supply cut)",
                            style="green" if st.get("relay_closed") else "bold red"))
    t.add_row("buzzer", Text("BEEP" if st.get("buzzer") else "quiet", style="bold yellow" if st.get("buzzer") else ""))
    t.add_row("load", "%d W at %d V" % (st.get("load_w", 0), st.get("volts", 0)))
    t.add_row("balance", money(m.get("balance_minor", 0)))
    t.add_row("energy", "%.3f kWh" % (m.get("import_wh", 0) / 1000))
    t.add_row("clock", time.strftime("%m-%d %H:%M:%S", time.gmtime(st.get("rtc_s", 0))) + " x%d" % scale)
    t.add_row("light", "backlight on" if st.get("backlight") else "backlight off")
    return Panel(t, title="At the meter")


def server_panel(view, log_rows=LOG_ROWS):
    t = Table.grid(padding=(0, 1))
    s = view.state
    t.add_row("status", str(view.status))
    t.add_row("balance", money(s["balance_minor"]) if "balance_minor" in s else "-")
    t.add_row("relay", ("closed" if s.get("relay_closed") else "open") if s else "-")
    t.add_row("1.8.0", "%s Wh" % s.get("obis_1_8_0", "-"))
    t.add_row("meter seq", str(s.get("seq", "-")))
    # one row per line, cut at the panel's edge: wrapped lines would push
    # the newest ones out of the panel's bottom
    log = Text("\n".join(view.log[-log_rows:]), no_wrap=True, overflow="ellipsis")
    return Panel(Group(t, log), title="Head-end (server view)")


def is_wide(width, height):
    """Room for the half-block LCD at one character column per pixel."""
    return width >= WIDE_COLS and height >= WIDE_ROWS


def screen(st, view, scale, broker, width=80, height=SCREEN_ROWS):
    """The whole demo screen. `st` is the sim's state with the LCD frame's
    hex under "lcd_hex" (main() adds it)."""
    wide = is_wide(width, height)
    layout = Layout()
    lcd_rows = (lcd_png.HEIGHT // 2 if wide else lcd_png.HEIGHT // 4) + 2
    layout.split_column(Layout(Text(HELP, style="bold", no_wrap=True, overflow="ellipsis"), size=1),
                        Layout(name="lcd", size=lcd_rows), Layout(name="main"))
    lcd = lcd_panel(st.get("lcd_hex"), wide)
    if wide:
        # LCD and the meter's side by side, the server's view below, full width
        layout["lcd"].split_row(Layout(lcd, size=lcd_png.WIDTH + 2), Layout(meter_panel(st, scale)))
        layout["main"].update(server_panel(view))
        rows = WIDE_ROWS
    else:
        # 80 columns: the LCD on its own row, with the supply in words beside it
        supply = Text("SUPPLY\nON" if st.get("relay_closed") else "SUPPLY\nCUT",
                      style="bold green" if st.get("relay_closed") else "bold red")
        layout["lcd"].split_row(Layout(lcd, size=lcd_png.WIDTH // 2 + 2), Layout(supply))
        # the meter's side needs a fixed width (short rows); the log gets the rest
        layout["main"].split_row(Layout(meter_panel(st, scale), size=34), Layout(server_panel(view)))
        rows = SCREEN_ROWS
    return Panel(layout, title="meter %s, broker 127.0.0.1:%d" % (METER_ID, broker.port), height=rows)


def how_to_reach(work, broker):
    """What a second terminal needs to reach this meter (README.md, "Drive the
    demo meter from the head-end CLI")."""
    return ("make run: meter %s, broker 127.0.0.1:%d (%s)\n"
            "  head-end database (with the meter's key) %s\n"
            "  drive it from another terminal, in tools/:\n"
            "  ../.venv/bin/python -m headend --demo topup %s 500"
            % (METER_ID, broker.port, broker.kind, os.path.join(work, "headend.sqlite"), METER_ID))


def start(work, parts):
    """Start the broker, head-end and meter into `parts` (name -> object).
    Raises if one fails; what did start is in `parts` for stop()."""
    broker = parts["broker"] = Broker(os.path.join(work, "broker"))
    broker.start()
    he = parts["he"] = HeadEnd(os.path.join(work, "headend.sqlite"), port=broker.port, ttl_s=TTL_S,
                               client_id="headend-demo")
    he.provision(METER_ID, DEMO_KEY.hex())
    he.start(tick_s=1.0)
    view = parts["view"] = ServerView(broker.port, he)
    meter = parts["meter"] = SimMeter(METER_ID, work, broker_port=broker.port,
                                      config={"initial_balance_minor": 500, "state_every_s": 5,
                                              "key_hex": DEMO_KEY.hex(), "reconnect": "press"}, scale=1,
                                      epoch=int(time.time()))
    meter.start()
    meter.control({"cmd": "load", "w": 1000})


def stop(parts):
    for name in ("meter", "view", "he", "broker"):
        if name in parts:
            try:
                parts[name].stop()
            except Exception:   # clean-up goes on: the rest must stop too
                pass


def write_demo_file(work, broker):
    os.makedirs(os.path.dirname(DEMO_FILE), exist_ok=True)
    with open(DEMO_FILE, "w") as f:
        json.dump({"meter_id": METER_ID, "broker_port": broker.port, "db": os.path.join(work, "headend.sqlite"),
                   "ttl_s": TTL_S, "pid": os.getpid()}, f)


def remove_demo_file():
    try:
        with open(DEMO_FILE) as f:
            mine = json.load(f).get("pid") == os.getpid()
    except (OSError, ValueError):
        return
    if mine:   # a second demo started since owns it now
        os.remove(DEMO_FILE)


def main():
    children.exit_on_signals()
    work = tempfile.mkdtemp(prefix="meter-demo-")
    parts = {}
    try:
        start(work, parts)
    except BaseException as e:
        # a failed start leaves nothing: what started stops, the folder goes
        stop(parts)
        children.kill_all()
        shutil.rmtree(work, ignore_errors=True)
        if isinstance(e, KeyboardInterrupt):
            return 130
        print("make run: could not start: %s" % ((str(e).splitlines() or [repr(e)])[0].rstrip(":")),
              file=sys.stderr)
        tail = str(e).splitlines()[1:]
        if tail:
            print("\n".join(tail[-15:]), file=sys.stderr)
        return 1
    broker, meter, view = parts["broker"], parts["meter"], parts["view"]
    write_demo_file(work, broker)
    print(how_to_reach(work, broker), flush=True)
    scale = 1
    interactive = sys.stdin.isatty()
    if sys.stdout.isatty():
        # the terminal's own size, read at every refresh, decides the layout
        # (and what Live crops to): LINES and COLUMNS left in the environment
        # by whatever started us are stale the moment the window is resized
        os.environ.pop("LINES", None)
        os.environ.pop("COLUMNS", None)
    old = termios.tcgetattr(sys.stdin) if interactive else None
    try:
        if interactive:
            tty.setcbreak(sys.stdin.fileno())
        with Live(refresh_per_second=8, screen=False) as live:
            while True:
                st = meter.state()
                st["lcd_hex"] = meter.control({"cmd": "lcd_frame"})["hex"]
                size = live.console.size
                live.update(screen(st, view, scale, broker, size.width, size.height))
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
                    view.topup(1000)
                elif key in "fs":
                    scale = faster(scale) if key == "f" else slower(scale)
                    meter.control({"cmd": "scale", "scale": scale})
    except KeyboardInterrupt:
        pass
    finally:
        if old:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, old)
        remove_demo_file()
        stop(parts)
    print("meter and broker stopped; files in", work)
    return 0


if __name__ == "__main__":
    sys.exit(main())
