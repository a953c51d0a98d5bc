"""A loopback TCP proxy between meter and broker that misbehaves on demand.

    p = FaultProxy(broker_port).start()     # meter connects to p.port
    p.set_mode("blackhole")   # accept, then forward nothing either way (a dead NAT)
    p.set_mode("drop")        # refuse new connections: accept and close at once
    p.set_mode("delay", 800)  # forward each chunk after 800 ms, in order
    p.set_mode("pass")
    p.reset_all()             # RST every open connection (SO_LINGER 0)
    p.stop()

Modes apply to open connections too: a blackholed link goes silent in both
directions without closing, as a cellular NAT that lost the flow would.
"""
import select
import socket
import struct
import threading
import time


class FaultProxy:
    def __init__(self, target_port, target_host="127.0.0.1", port=0):
        self.target = (target_host, target_port)
        self.lsock = socket.socket()
        self.lsock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.lsock.bind(("127.0.0.1", port))
        self.lsock.listen(16)
        self.port = self.lsock.getsockname()[1]
        self.mode = "pass"
        self.delay_s = 0.0
        self.lock = threading.Lock()
        self.pairs = []          # [client, upstream] sockets
        self.accepted = 0
        self.bytes_up = 0        # meter -> broker
        self.bytes_down = 0      # broker -> meter
        self._pending = []       # (due, dst, data) for delay mode
        self._running = False

    def start(self):
        self._running = True
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self._running = False
        self._thread.join(2)
        self.reset_all()
        self.lsock.close()

    def set_mode(self, mode, delay_ms=0):
        assert mode in ("pass", "blackhole", "drop", "delay")
        with self.lock:
            self.mode = mode
            self.delay_s = delay_ms / 1000.0

    def reset_all(self):
        """Abort every open connection with a TCP RST on both sides."""
        with self.lock:
            for pair in self.pairs:
                for s in pair:
                    self._rst(s)
            self.pairs = []
            self._pending = []

    def connections(self):
        with self.lock:
            return len(self.pairs)

    @staticmethod
    def _rst(s):
        try:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        except OSError:
            pass
        try:
            s.close()
        except OSError:
            pass

    def _close_pair(self, pair):
        for s in pair:
            try:
                s.close()
            except OSError:
                pass
        if pair in self.pairs:
            self.pairs.remove(pair)

    def _accept(self):
        c, _ = self.lsock.accept()
        self.accepted += 1
        if self.mode == "drop":
            c.close()
            return
        try:
            u = socket.create_connection(self.target, timeout=2)
        except OSError:
            self._rst(c)   # broker down: the meter sees its connect refused
            return
        for s in (c, u):
            # forward each packet as it comes: Nagle here would add its own
            # delays to every figure measured through the proxy
            s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            s.setblocking(False)
        self.pairs.append([c, u])

    def _loop(self):
        while self._running:
            with self.lock:
                socks = [self.lsock] + [s for pair in self.pairs for s in pair]
            try:
                r, _, _ = select.select(socks, [], [], 0.01)
            except (OSError, ValueError):
                r = []
            with self.lock:
                if self.lsock in r:
                    self._accept()
                for pair in list(self.pairs):
                    for i, s in enumerate(pair):
                        if s not in r or pair not in self.pairs:
                            continue
                        try:
                            data = s.recv(65536)
                        except (BlockingIOError, InterruptedError):
                            continue
                        except OSError:
                            data = b""
                        if not data:
                            self._close_pair(pair)
                            break
                        if self.mode == "blackhole":
                            continue     # swallowed
                        dst = pair[1 - i]
                        if i == 0:
                            self.bytes_up += len(data)
                        else:
                            self.bytes_down += len(data)
                        if self.mode == "delay":
                            self._pending.append((time.monotonic() + self.delay_s, dst, data))
                        elif any(p[1] is dst for p in self._pending):
                            # a slow link speeds up, but TCP never reorders:
                            # these bytes wait behind the delayed ones
                            self._pending.append((0.0, dst, data))
                        else:
                            self._send(dst, data)
                now = time.monotonic()
                while self._pending and self._pending[0][0] <= now:
                    _, dst, data = self._pending.pop(0)
                    self._send(dst, data)

    @staticmethod
    def _send(dst, data):
        try:
            dst.setblocking(True)
            dst.settimeout(1)
            dst.sendall(data)
            dst.setblocking(False)
        except OSError:
            pass
