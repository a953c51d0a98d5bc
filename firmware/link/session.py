# The meter's MQTT session: one asyncio task that connects, keeps the session
# alive through a cellular link, and reconnects by itself.
#
# umqtt.simple encodes and decodes the MQTT packets; this module owns the
# socket. umqtt's client is handed a Pipe instead of a socket: its writes
# queue bytes that we send with non-blocking writes, and its reads are served
# from one complete packet we already received. So umqtt never blocks: the
# loop is held up only by the few microseconds of encoding and decoding
# (and, once per connect, by the TLS handshake's public-key maths).
#
# Guarantees:
# - every network wait has a deadline (connect, CONNACK, PINGRESP, PUBACK,
#   a stalled send); on expiry the connection is dropped and redialled;
# - persistent session (clean_session=False) and client id = meter id, so
#   the broker keeps our subscriptions and queued commands while we are away;
# - retained "offline" last will, matched by a retained "online" on connect;
# - keepalive <= 240 s (cellular NATs forget idle flows after a few minutes);
# - reconnect with jittered exponential backoff;
# - a PUBLISH bigger than one command (protocol.MAX_CMD_BYTES) is read
#   through and dropped as it arrives, never held and never a reason to drop
#   the link; it is PUBACKed and handed to on_oversized (docs/link.md).
# States, timeouts and backoff are described in docs/link.md.
import asyncio
import random
import select
import socket
import time
from micropython import const

from umqtt import simple
from umqtt.simple import MQTTClient, MQTTException

from firmware.link.mqttwire import TOPIC_MAX, BigPublish, Drop, NeedMore, Pipe, packet_len
from firmware.link.protocol import MAX_CMD_BYTES

POLL_MS = const(50)          # socket poll period while up
_IPPROTO_TCP = const(6)
_TCP_NODELAY = const(1)
KEEPALIVE_MAX_S = const(240)
_TX_MAX = const(4096)         # queued bytes beyond which publish() says no
# Incoming PUBLISH packets are held whole only up to one command's worth: the
# protocol's payload limit plus the fixed header (<= 5), the topic (length
# and <= TOPIC_MAX bytes) and the packet id. A bigger one is read through and
# dropped as it arrives, never held (see BigPublish); other packets are tiny.
RX_MAX = MAX_CMD_BYTES + 5 + 2 + TOPIC_MAX + 2   # imported names are not const()
DISCARD_PER_PASS = const(4096)  # bytes of an oversized packet dropped per loop pass


class Session:
    CONNECT_TIMEOUT_MS = 15000   # TCP + TLS + CONNACK over a slow cell
    PINGRESP_TIMEOUT_MS = 15000
    PUBACK_TIMEOUT_MS = 20000
    SEND_STALL_MS = 15000        # bytes queued and none accepted for this long
    BACKOFF_MIN_MS = 1000
    BACKOFF_MAX_MS = 120000
    STABLE_MS = 30000            # a session this old resets the backoff
    FLAP_ATTEMPTS = 2            # after a shorter one, retry as if at attempt 3 at most
    NET_POLL_MS = 250            # how often to look at a down modem link
    FAIL_LOG_MS = 600000         # at most one "connect failed" line per 10 min of outage

    def __init__(self, client_id, host, port, user=None, password=None, keepalive_s=120,
                 ssl_ctx=None, status_topic=None, clock=None, log=None, net=None):
        if isinstance(client_id, str):
            client_id = client_id.encode()
        if keepalive_s <= 0 or keepalive_s > KEEPALIVE_MAX_S:
            keepalive_s = KEEPALIVE_MAX_S
        self.host = host
        self.port = port
        self.ssl_ctx = ssl_ctx
        self.keepalive_s = keepalive_s
        self.status_topic = status_topic
        self.clock = clock
        self.log = log or (lambda *a: None)
        self.net = net           # anything with .up (the modem link); None = always up
        self.client = MQTTClient(client_id, host, port, user, password, keepalive_s)
        if status_topic:
            self.client.set_last_will(status_topic, b"offline", retain=True, qos=1)
        self.client.set_callback(self._decoded)
        self.pipe = Pipe()
        self.client.sock = self.pipe
        self.subs = []
        self.up = False
        self.state = "idle"
        self.heard_s = 0         # UTC of the last packet from the broker (_dispatch)
        self._on_message = None
        self._sock = None
        self._addr = None
        # Every packet is read into this one buffer, made at boot while the
        # heap is in one piece: a buffer per packet, late in a month, found
        # no hole for a 1 KB update frame (docs/benchmarks.md, "Memory
        # budget"). A packet handed on is a view of it, valid until the next
        # read; whoever keeps a payload copies it.
        self._rx = bytearray(RX_MAX)
        self._have = 0           # bytes of the packet in _rx
        self._total = 0          # its length, once its fixed header is in
        self._big = None         # the oversized PUBLISH being read through
        self._got = None         # (topic, payload) umqtt decoded from the last PUBLISH
        self._on_oversized = None
        self._sent = 0           # bytes of pipe.tx already on the wire
        self._stall_since = 0
        self._last_tx = 0
        self._ping_at = None     # ticks when the outstanding PINGREQ went out
        self._inflight = {}      # QoS 1 pid -> ticks sent
        self._attempts = 0
        self._broken = None
        self._fails = 0          # failed connects not yet in the log
        self._fail_logged = None  # ticks of the last "connect failed" line; None: none this outage
        self._last_reason = None
        self._stats = {"connects": 0, "drops": 0, "last_error": None, "rtt_ms": None,
                       "bytes_in": 0, "bytes_out": 0, "pings": 0, "backoff_ms": 0,
                       "connect_ms": None, "session_present": None, "oversized": 0}

    # --- the application's side
    def subscribe(self, topic, qos=1):
        """Remember a subscription; it is (re)made on every connect."""
        self.subs.append((topic, min(qos, 1)))
        if self.up:
            self._subscribe(topic, qos)

    def publish(self, topic, payload, retain=False, qos=0):
        """Queue one PUBLISH. Once it is handed to the socket: at QoS 1 its
        packet id (1-65535; acked(pid) tells when the broker has it, and a
        missing PUBACK drops the connection), at QoS 0 True. False when the
        link is down or backed up: the caller keeps the message."""
        if not self.up or len(self.pipe.tx) > _TX_MAX:
            return False
        try:
            pid = self._publish(topic, payload, retain, qos)
            self._flush()
            return pid if qos else True
        except Exception as e:
            self._fail(e)
            self._broken = e   # the run task drops the connection
            return False

    def acked(self, pid):
        """True once the broker has acknowledged QoS 1 packet `pid` (PUBACK).
        Valid for a pid of the current connection only: after a drop (the
        `drops` count moved on) its PUBACK will never come, and what was not
        acknowledged before it is the caller's to send again."""
        return pid not in self._inflight

    @property
    def drops(self):
        """Connections lost so far (established sessions that ended)."""
        return self._stats["drops"]

    @property
    def connects(self):
        """Sessions established so far."""
        return self._stats["connects"]

    def stats(self):
        s = dict(self._stats)
        s["state"] = self.state
        s["inflight"] = len(self._inflight)
        return s

    def drain(self, ms):
        """Send what is queued, waiting for the socket up to `ms`, without
        yielding to other tasks: for the last words before a restart.
        True when all of it went."""
        deadline = time.ticks_add(time.ticks_ms(), ms)
        try:
            while self.up and self._sent < len(self.pipe.tx):
                self._flush()
                if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
                    return False
                if self._sent < len(self.pipe.tx):
                    time.sleep_ms(5)
        except Exception as e:
            self._fail(e)
            self._broken = e
        return self._sent >= len(self.pipe.tx) or not self.pipe.tx

    async def run(self, on_message, on_oversized=None):
        """Forever: connect, serve, and after any failure back off and retry.
        on_message(topic, payload) gets every PUBLISH up to one command's
        size, the payload as a memoryview of the session's receive buffer:
        valid until the session reads again, so whoever keeps it copies it;
        on_oversized(topic, head, size) one read through and dropped
        (topic None when too long to keep, head its first HEAD_BYTES), after
        the session has acknowledged it to the broker (QoS 1 PUBACK)."""
        self._on_message = on_message
        self._on_oversized = on_oversized
        while True:
            if self.net is not None and not self.net.up:
                self.state = "waiting for network"
                await asyncio.sleep_ms(self.NET_POLL_MS)
                continue
            since = None
            try:
                await self._open()
                since = time.ticks_ms()
                self.up = True
                self.state = "up"
                self._stats["connects"] += 1
                self._fail_logged = None
                self.log("link", "up")
                await self._serve()
            except Exception as e:
                self._fail(e)
            if since is not None:
                self._stats["drops"] += 1
                self.log("link", "down", self._stats["last_error"])
            else:
                self._connect_failed()
            self.up = False
            self._close()
            if since is not None:
                # a session was established: the network works. Start the
                # backoff again from the bottom after a long session, from a
                # few seconds after a short one (a flapping link must not
                # hammer the broker, nor wait minutes for its next chance)
                lived = time.ticks_diff(time.ticks_ms(), since)
                self._attempts = 0 if lived >= self.STABLE_MS else min(self._attempts, self.FLAP_ATTEMPTS)
            self._attempts += 1
            delay = self.backoff_ms(self._attempts)
            self._stats["backoff_ms"] = delay
            self.state = "backoff"
            await asyncio.sleep_ms(delay)

    def _connect_failed(self):
        # The first failure of an outage is logged at once, with the address
        # and the reason; then one line per FAIL_LOG_MS with the tries since,
        # so a broker gone for a week does not flood the log.
        self._fails += 1
        now = time.ticks_ms()
        last = self._fail_logged
        if last is not None:
            d = time.ticks_diff(now, last)
            if 0 <= d < self.FAIL_LOG_MS:
                return
        self.log("link", "connect failed", "%s:%d" % (self.host, self.port),
                 self._last_reason, "tries %d" % self._fails)
        self._fail_logged = now
        self._fails = 0

    def backoff_ms(self, attempt):
        """Delay before retry `attempt` (1, 2, ...): doubling from the minimum
        up to the maximum, the upper half drawn at random so a fleet that lost
        the broker together does not come back together."""
        base = min(self.BACKOFF_MAX_MS, self.BACKOFF_MIN_MS << min(attempt - 1, 16))
        return base // 2 + (random.getrandbits(16) * (base - base // 2)) // 65536

    # --- connection life cycle
    async def _open(self):
        self.state = "connecting"
        t0 = time.ticks_ms()
        deadline = time.ticks_add(t0, self.CONNECT_TIMEOUT_MS)
        self._reset_io()
        if self._addr is None:
            # blocking DNS: an IP literal costs nothing; a name is resolved
            # once and kept (a failed connect forgets it)
            self._addr = socket.getaddrinfo(self.host, self.port)[0][-1]
        s = socket.socket()
        self._sock = s
        s.setblocking(False)
        try:
            # an ack goes out now, not after Nagle waits for the broker's
            # delayed ACK (~40 ms); lwIP and Linux share the numbers
            s.setsockopt(_IPPROTO_TCP, _TCP_NODELAY, 1)
        except (OSError, AttributeError):
            pass
        try:
            s.connect(self._addr)
        except OSError as e:
            if e.args[0] not in (115, 119):  # EINPROGRESS (unix, lwIP)
                raise
        poller = select.poll()
        poller.register(s, select.POLLOUT)
        while True:
            ev = poller.poll(0)
            if ev:
                if ev[0][1] & (select.POLLERR | select.POLLHUP):
                    raise Drop("connect refused")
                break
            self._check_deadline(deadline, "connect timeout")
            await asyncio.sleep_ms(20)
        if self.ssl_ctx is not None:
            self._sock = self.ssl_ctx.wrap_socket(s, server_hostname=self.host,
                                                  do_handshake_on_connect=False)
        # let umqtt encode CONNECT into the pipe (its own socket calls are
        # pointed at the pipe for the length of this synchronous call)
        saved = simple.socket
        simple.socket = self.pipe
        try:
            self.client.connect(clean_session=False)
        except NeedMore:
            pass
        finally:
            simple.socket = saved
        self.client.sock = self.pipe
        while True:
            self._flush()
            pkt = self._read_packet()
            if pkt is not None:
                break
            self._check_deadline(deadline, "no connack")
            await asyncio.sleep_ms(20)
        if isinstance(pkt, BigPublish) or pkt[0] != 0x20 or len(pkt) < 4:
            raise Drop("not a connack")
        if pkt[3] != 0:
            raise MQTTException(pkt[3])  # 4 bad credentials, 5 not authorised
        self._stats["session_present"] = pkt[2] & 1
        self._stats["connect_ms"] = time.ticks_diff(time.ticks_ms(), t0)
        for topic, qos in self.subs:
            self._subscribe(topic, qos)
        if self.status_topic:
            self._publish(self.status_topic, b"online", True, 1)
        self._flush()

    async def _idle(self, ms):
        # Sleep until the socket has bytes for us, or `ms` at most: a command
        # is answered as it arrives, while the loop still wakes every `ms`
        # for keepalive and for what other tasks queued to send.
        if self._sock is None:
            await asyncio.sleep_ms(ms)
            return
        try:
            await asyncio.wait_for_ms(_readable(self._sock), ms)
        except asyncio.TimeoutError:
            pass

    async def _serve(self):
        while True:
            if self.net is not None and not self.net.up:
                raise Drop("network down")
            if self._broken is not None:
                raise self._broken
            while True:
                pkt = self._read_packet()
                if pkt is None:
                    break
                self._dispatch(pkt)
                if isinstance(pkt, BigPublish):
                    break   # one oversized message per pass: the others wait their turn
            self._flush()
            self._keepalive()
            await self._idle(POLL_MS)

    def _reset_io(self):
        self._broken = None
        self.pipe.tx = bytearray()
        self.pipe.load(b"")
        self._have = self._total = 0
        self._big = None
        self._sent = 0
        self._ping_at = None
        self._inflight = {}
        self._last_tx = time.ticks_ms()
        self._stall_since = self._last_tx

    def _close(self):
        if self._sock is not None:
            try:
                self._sock.close()
            except Exception:
                pass
        self._sock = None

    def _fail(self, err):
        self._stats["last_error"] = repr(err)
        self._last_reason = _reason(err)
        if not isinstance(err, (Drop, MQTTException)):
            self._addr = None  # resolve again next time: the address may have moved
        self.up = False

    @staticmethod
    def _check_deadline(deadline, what):
        if time.ticks_diff(deadline, time.ticks_ms()) <= 0:
            raise Drop(what)

    # --- bytes in and out, never waiting
    def _flush(self):
        tx = self.pipe.tx
        if self._sent >= len(tx):
            return
        n = self._sock.write(memoryview(tx)[self._sent:])
        now = time.ticks_ms()
        if n:
            self._sent += n
            self._stats["bytes_out"] += n
            self._stall_since = now
            self._last_tx = now
            if self._sent >= len(tx):
                self.pipe.tx = bytearray()
                self._sent = 0
        elif time.ticks_diff(now, self._stall_since) > self.SEND_STALL_MS:
            raise Drop("send stalled")

    def _read_packet(self):
        """One complete packet from the socket (a memoryview of _rx), a
        BigPublish once an oversized PUBLISH has been read through, or None
        if not all here yet. No byte past the packet's end is read, so the
        next packet starts at _rx[0]. Reads at most DISCARD_PER_PASS bytes
        of a BigPublish per call: the loop yields between calls, so metering
        never waits."""
        if self._big is not None:
            return self._discard()
        rx = memoryview(self._rx)
        while not self._total:
            # the fixed header a byte at a time (2-5 bytes): its length
            # says how much more is this packet's
            if self._have >= 2:
                total, hdr = packet_len(rx[:self._have])
                if total:
                    if total > RX_MAX:
                        return self._oversized(total, hdr)
                    self._total = total
                    break
            if not self._recv(rx[self._have:self._have + 1]):
                return None
        while self._have < self._total:
            if not self._recv(rx[self._have:self._total]):
                return None
        n = self._total
        self._have = self._total = 0
        return rx[:n]

    def _recv(self, mv):
        # into mv what the socket has of it; False when nothing came
        n = self._sock.readinto(mv)
        if n == 0:
            raise Drop("closed by peer")
        if not n:
            return False
        self._stats["bytes_in"] += n
        self._have += n
        return True

    def _oversized(self, total, hdr):
        if self._rx[0] & 0xF0 != 0x30:
            raise Drop("packet too big")   # only a PUBLISH may be long
        self._big = big = BigPublish(self._rx[0], total, hdr)
        big.take(memoryview(self._rx)[:self._have])
        self._have = 0
        return self._discard()

    def _discard(self):
        # the rest of a BigPublish, read into _rx as scratch and dropped
        big = self._big
        rx = memoryview(self._rx)
        budget = DISCARD_PER_PASS
        while big.left and budget > 0:
            n = self._sock.readinto(rx[:min(len(rx), big.left)])
            if n == 0:
                raise Drop("closed by peer")
            if not n:
                return None    # the rest is still on its way
            self._stats["bytes_in"] += n
            budget -= n
            big.take(rx[:n])
        if big.left:
            return None
        self._big = None
        return big

    def _dispatch(self, pkt):
        if self.clock:
            # any packet from the broker is a successful exchange: the LCD's
            # link screen shows when the last one came (how fresh the app is)
            self.heard_s = self.clock.utc_s()
        if isinstance(pkt, BigPublish):
            self._dropped(pkt)
            return
        kind = pkt[0] & 0xF0
        if kind == 0x30:                       # PUBLISH: umqtt decodes and acks
            self.pipe.load(pkt)
            self._got = None
            self.client.wait_msg()
            got = self._got
            self._got = None
            if got is not None:
                # after umqtt queued the PUBACK: the application's answer
                # and the PUBACK then leave together
                self._deliver(got[0], got[1])
        elif kind == 0xD0:                     # PINGRESP
            if self._ping_at is not None:
                self._stats["rtt_ms"] = time.ticks_diff(time.ticks_ms(), self._ping_at)
            self._ping_at = None
        elif kind == 0x40 and len(pkt) >= 4:   # PUBACK
            self._inflight.pop(pkt[2] << 8 | pkt[3], None)
        elif kind == 0x90 and len(pkt) >= 5:   # SUBACK
            if pkt[4] == 0x80:
                self._stats["last_error"] = "subscribe refused"
                self.log("link", "subscribe refused")

    def _dropped(self, big):
        # An oversized PUBLISH, now read through. Acknowledge it, so the
        # broker does not deliver it again (a QoS 1 one it would re-send on
        # every connect), then tell the application, which refuses it.
        self._stats["oversized"] += 1
        if big.qos == 1:
            self.pipe.write(bytes((0x40, 2, big.pid >> 8, big.pid & 0xFF)))
        self.log("link", "oversized", big.size())
        if self._on_oversized is not None:
            try:
                self._on_oversized(big.topic(), big.head(), big.size())
            except Exception as e:
                self.log("link", "on_oversized failed", repr(e))

    def _keepalive(self):
        now = time.ticks_ms()
        if self._ping_at is not None:
            if time.ticks_diff(now, self._ping_at) > self.PINGRESP_TIMEOUT_MS:
                raise Drop("no pingresp")
        elif time.ticks_diff(now, self._last_tx) >= self.keepalive_s * 750:
            # three quarters of the keepalive: a lost ping is still noticed
            # before the broker gives up on us at one and a half
            self.client.ping()
            self._ping_at = now
            self._stats["pings"] += 1
            self._flush()
        for pid in self._inflight:
            if time.ticks_diff(now, self._inflight[pid]) > self.PUBACK_TIMEOUT_MS:
                raise Drop("no puback")

    # --- packets out, through umqtt's encoders
    def _next_pid(self):
        if self.client.pid >= 65535:
            self.client.pid = 0   # umqtt counts up forever; MQTT ids are 16-bit
        return self.client.pid + 1

    def _publish(self, topic, payload, retain, qos):
        # the packet id umqtt gives a QoS 1 PUBLISH (a QoS 0 one has none)
        pid = self._next_pid()
        try:
            self.client.publish(topic, payload, retain, qos)
        except NeedMore:
            self._inflight[pid] = time.ticks_ms()  # QoS 1: PUBACK comes later
        return pid

    def _subscribe(self, topic, qos):
        self._next_pid()
        try:
            self.client.subscribe(topic, qos)
        except NeedMore:
            pass   # SUBACK is checked by _dispatch

    def _decoded(self, topic, payload):
        # umqtt's callback, inside wait_msg(): held until it has acked
        self._got = (topic, payload)

    def _deliver(self, topic, payload):
        # an application bug must not take the link down with it
        try:
            self._on_message(topic, payload)
        except Exception as e:
            self.log("link", "on_message failed", repr(e))


def _reason(err):
    # a failure in words for the log: "connect refused", "errno 113"
    a = err.args
    if a and isinstance(err, Drop):
        return str(a[0])
    if a and isinstance(err, OSError):
        return "errno %s" % a[0]
    if a and isinstance(err, MQTTException):
        return "connack rc %s" % a[0]   # 4 bad credentials, 5 not authorised
    return repr(err)


async def _readable(sock):
    # asyncio's own wait for a readable stream (what asyncio.Stream.read
    # does before reading), without taking the bytes: the session reads them
    yield asyncio.core._io_queue.queue_read(sock)
