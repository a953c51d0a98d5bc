"""The heap figures the hubs issue holds the firmware to, on the running sim
meter at the board's heap (108wk) with its code from ROMFS:

- host network, link up, metering 1.5 kW, state published: free after gc;
- 4G modem (the fake modem on a pty), after three top-ups: free after gc;
- the same modem meter after an offline token too (relayed by the token
  command: the token code loaded for it and dropped, docs/tokens.md).
- the same modem meter with a technician's REPL session open (status(),
  screens(), selftest() and a token typed at it): free after gc (issue 15:
  at least 40 KB).

Also lists the modules each meter has loaded and its pools of interned names,
which is where a regression is found (docs/benchmarks.md, "Memory").
Run: .venv/bin/python tools/heap_figures.py [--modules]
"""
import json
import os
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from broker import Broker            # noqa: E402
from fake_modem import FakeModem     # noqa: E402
from simmeter import SimMeter, ensure_compiled  # noqa: E402
import signed                        # noqa: E402


def _figures(meter):
    mem = meter.mem()
    mods = meter.control({"cmd": "modules"})["modules"]
    return {"free": mem["free"], "total": mem["total"], "pools": meter.qstr_pools(), "modules": mods}


def host_network(work, broker):
    m = SimMeter("heap-host", work, broker_port=broker.port, config={"initial_balance_minor": 500})
    try:
        m.start()
        m.control({"cmd": "load", "w": 1500})
        m.wait_for(lambda s: s["meter"]["link_up"] and s["meter"]["import_wh"] > 0, timeout=30)
        return _figures(m)
    finally:
        m.stop()


TOKEN_KEY_HEX = "5a" * 16


def modem_after_topups(work, broker, token=False, repl=False):
    modem = FakeModem(boot_ms=150, reg_ms=200, powered=False, clock_utc=lambda: 1790000000).start()
    m = SimMeter("heap-mdm" + ("-tok" if token else "") + ("-repl" if repl else ""), work,
                 broker_port=broker.port,
                 config={"initial_balance_minor": 5000, "key_hex": signed.KEY_HEX,
                         "token_key_hex": TOKEN_KEY_HEX},
                 extra_args=["--modem", modem.path, "--modem-pins", str(modem.pin_port)])
    try:
        m.start()
        m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
        for order in (1, 2, 3):
            raw = signed.command(m.meter_id, "topup", order=order, amount_minor=10).decode()
            r = m.control({"cmd": "command", "raw": raw})
            assert r.get("reply", {}).get("result") == "credited", r
        if token:
            import openpaygo
            _, tok = openpaygo.generate_token(secret_key=TOKEN_KEY_HEX, count=1, value=5)
            raw = signed.command(m.meter_id, "token", token=tok).decode()
            r = m.control({"cmd": "command", "raw": raw})
            assert r.get("reply", {}).get("data", {}).get("result") == "add", r
        if repl:
            # a technician's REPL session, open and used (firmware/repl/),
            # with an offline token entered at it
            import openpaygo
            _, tok = openpaygo.generate_token(secret_key=TOKEN_KEY_HEX, count=1, value=5)
            m.console("status()")
            m.console("screens()")
            m.console("selftest()", timeout=30)
            line = m.console("token(%r)" % str(tok))[0]
            assert line.startswith("add "), line
            # the token's state publish and event delivery settle first, as
            # after the token command (the figure is the steady heap)
            import time
            time.sleep(2)
        return _figures(m)
    finally:
        m.stop()
        modem.stop()


def main():
    ensure_compiled()
    with tempfile.TemporaryDirectory(prefix="heap-") as work:
        broker = Broker(os.path.join(work, "broker"))
        broker.start()
        try:
            out = {"host_network": host_network(work, broker),
                   "modem_3_topups": modem_after_topups(work, broker),
                   "modem_and_token": modem_after_topups(work, broker, token=True),
                   "modem_repl_token": modem_after_topups(work, broker, repl=True)}
        finally:
            broker.stop()
    for name, f in out.items():
        print("%-16s free %7d of %7d  pools %s  modules %d"
              % (name, f["free"], f["total"], f["pools"], len(f["modules"])))
        if "--modules" in sys.argv:
            print("   ", " ".join(f["modules"]))
    if "--json" in sys.argv:
        print(json.dumps(out))


if __name__ == "__main__":
    main()
