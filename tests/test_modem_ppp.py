"""The modem link ends a data call's PPP through network.PPP's documented
API (disconnect), on the ESP32 board's real PPP path, against the fake of
the `network` module (tests/fakes/network.py)."""
import os

from mpy import run_mpy

FAKES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fakes")

SCRIPT = r"""
import asyncio, json, network
from firmware.link.modem import ModemLink

class Uart:   # what the PPP fake needs of its stream
    IRQ_RXIDLE = 1
    def irq(self, handler, trigger): pass
    def read(self, n=-1): return None
    def write(self, b): return len(b)
    def any(self): return 0

class Board:  # only what this path of ModemLink calls
    def __init__(self): self.u = Uart()
    def modem_uart(self): return self.u
    def modem_ppp(self, uart):
        p = network.PPP(uart)
        p.connect()
        return p

logged = []
link = ModemLink(Board(), "internet", log=lambda *a: logged.append(" ".join(a)))
link.ppp = link.board.modem_ppp(link.uart)
link.ppp.link_up()
ppp = link.ppp
before = ppp.isconnected()
link._carrier_lost = True     # the call already dropped: no AT hang-up to send
asyncio.run(link._leave_data())
print(json.dumps({"before": before, "after": ppp.isconnected(), "started": ppp._started,
                  "cleared": link.ppp is None, "logged": logged}))
"""


def test_leaving_a_data_call_disconnects_its_ppp_link():
    import json
    out = json.loads(run_mpy(SCRIPT, extra_path=(FAKES,)).strip().splitlines()[-1])
    assert out == {"before": True, "after": False, "started": False, "cleared": True, "logged": []}, out
