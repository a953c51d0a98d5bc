# A fake of MicroPython's `network` module, class PPP only
# (docs.micropython.org: library/network.PPP): PPP(stream), connect(security,
# user, key), disconnect, isconnected, status, config, ipconfig, ifconfig,
# poll, and the SEC_* constants. connect() hooks the stream's RXIDLE IRQ as
# documented. Test side: last_ppp, PPP.link_up() (the peer finished IPCP).

last_ppp = None


def reset_fakes():
    global last_ppp
    last_ppp = None


class PPP:
    SEC_NONE = 0
    SEC_PAP = 1
    SEC_CHAP = 2

    def __init__(self, stream):
        global last_ppp
        if not hasattr(stream, "irq") or not hasattr(stream, "IRQ_RXIDLE"):
            raise TypeError("stream needs irq() and IRQ_RXIDLE")
        self.stream = stream
        self.connects = []
        self._connected = False
        self._started = False
        last_ppp = self

    def connect(self, security=SEC_NONE, user=None, key=None):
        if security not in (PPP.SEC_NONE, PPP.SEC_PAP, PPP.SEC_CHAP):
            raise ValueError("security")
        self.connects.append((security, user, key))
        self._started = True
        self.stream.irq(self.poll, self.stream.IRQ_RXIDLE)

    def disconnect(self):
        self._started = False
        self._connected = False

    def isconnected(self):
        return self._connected

    def status(self):
        return 1 if self._started else 0

    def config(self, *args, **kw):
        if args or kw:
            raise ValueError("unknown config param")

    def ipconfig(self, *args, **kw):
        if args and args[0] == "addr4":
            return ("10.64.0.2", "255.255.255.255") if self._connected else ("0.0.0.0", "0.0.0.0")
        return None

    def ifconfig(self, cfg=None):
        return ("10.64.0.2", "255.255.255.255", "10.64.0.1", "8.8.8.8")

    def poll(self, *args):
        return None

    # --- test side
    def link_up(self):
        if self._started:
            self._connected = True
