# The technician's console on the serial port: one line in, a few lines out,
# while the meter keeps metering beside it (an asyncio task reading stdin).
# Read-only commands: it shows what the meter knows, it changes nothing.
# Each reply line starts with "> " so a script can tell it from the log.
import asyncio
import gc
import sys

HELP = ("commands: status  link  modem  mem  log  help",)


def _known(v):
    return "--" if v is None else str(v)


def _fmt(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


class Console:
    def __init__(self, app, stream=None):
        self.app = app
        self.stream = stream

    def reply(self, line):
        """Lines for one command (a list of strings)."""
        words = line.split()
        if not words:
            return []
        cmd = words[0]
        app = self.app
        core = app.core
        if cmd == "status":
            s = core.state()
            return ["meter %s  fw %s" % (app.meter_id, "1"),
                    "balance %d minor  owed %d  mode %s" % (s["balance_minor"], s["owed_minor"], s["mode"]),
                    "relay %s  reason %s" % ("closed" if s["relay_closed"] else "open", s["relay_reason"]),
                    "1.8.0 %d Wh  2.8.0 %d Wh  tariff v%d  warn L%d" % (
                        s["obis_1_8_0"], s["obis_2_8_0"], s["tariff_version"], s["level"]),
                    "price %d milli/kWh  load %s W  voltage %s V" % (
                        s["price_milli_per_kwh"], _known(core.meas.power_w), _known(core.meas.voltage_v)),
                    "seq %d  clock %s %d" % (s["seq"], "synced" if s["synced"] else "UNSYNCED", s["t"]),
                    "fault %s" % s.get("fault", "none")] + self._config_lines()
        if cmd == "link":
            sess = app.session
            if sess is None:
                return ["link not started"] + self._config_lines()
            st = sess.stats()
            return ["%s %s" % (k, _fmt(st[k])) for k in sorted(st)]
        if cmd == "modem":
            if app.modem is None:
                return ["no modem on this board (host network)"]
            h = app.modem.health()
            return ["%s %s" % (k, _fmt(h[k])) for k in sorted(h)]
        if cmd == "mem":
            gc.collect()
            return ["heap free %d  used %d" % (gc.mem_free(), gc.mem_alloc())]
        if cmd == "log":
            return ["%s %s %s" % tuple(e) for e in core.commlog.entries()]
        if cmd == "help":
            return list(HELP)
        return ["unknown command %r; try help" % cmd]

    def _config_lines(self):
        app = self.app
        out = []
        f = app.config_fault
        if f:
            out.append("config fault E%d %s: %s; link not started" % (app.fault_lcd(), f[0], f[1]))
        if app.cfg_unknown:
            out.append("config unknown keys (ignored): " + " ".join(app.cfg_unknown))
        return out

    async def run(self):
        reader = asyncio.StreamReader(self.stream or sys.stdin)
        while True:
            line = await reader.readline()
            if not line:
                await asyncio.sleep_ms(1000)  # no console attached
                continue
            try:
                out = self.reply(line.decode().strip())
            except Exception as e:  # a console bug must not touch metering
                out = ["error " + repr(e)]
            for text in out:
                print("> " + text)
            print(">.")
