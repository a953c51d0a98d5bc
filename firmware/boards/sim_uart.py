# The sim board's modem UART and modem control lines (unix port).
#
# PtyUart opens the pty of tools/fake_modem.py and behaves like machine.UART
# for the modem driver: read(n) returns what is there (None when nothing),
# any() says whether bytes wait, write() never blocks for long. The pty is put
# in raw mode with VMIN=0/VTIME=0 so a read returns at once with what it has.
#
# ModemLines stands in for the PWRKEY, RESET and power pins: each change is a
# UDP datagram ("pwrkey 1") to the fake modem on loopback.
import select
import socket
import termios

_VTIME = 5  # indexes into termios cc on Linux
_VMIN = 6


class PtyUart:
    def __init__(self, path):
        self.f = open(path, "r+b")
        fd = self.f.fileno()
        termios.setraw(fd)
        attrs = termios.tcgetattr(fd)
        attrs[6][_VMIN] = 0
        attrs[6][_VTIME] = 0
        termios.tcsetattr(fd, termios.TCSANOW, attrs)
        self.poller = select.poll()
        self.poller.register(self.f, select.POLLIN)

    def any(self):
        # the pty cannot say how many bytes wait: report a chunk's worth, as
        # read(n) returns early with whatever is there
        return 64 if self.poller.poll(0) else 0

    def read(self, n=256):
        data = self.f.read(n)
        return data or None

    def write(self, data):
        return self.f.write(data)

    def close(self):
        self.f.close()


class ModemLines:
    def __init__(self, port, host="127.0.0.1"):
        self.addr = socket.getaddrinfo(host, port)[0][-1]
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)

    def _send(self, name, level):
        try:
            self.sock.sendto(b"%s %d" % (name, 1 if level else 0), self.addr)
        except OSError:
            pass  # no modem listening: like a pin on an unpopulated footprint

    def pwrkey(self, level):
        self._send(b"pwrkey", level)

    def reset(self, level):
        self._send(b"reset", level)

    def power(self, on):
        self._send(b"power", on)
