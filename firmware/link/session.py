# MQTT session for the meter over micropython-lib's umqtt.simple.
# Foundation version: connect, subscribe, publish, poll, reconnect with backoff.
# Every socket operation is bounded by a socket timeout so a dead broker
# delays the loop by at most SOCK_TIMEOUT_S, never forever.
import asyncio
import time

from umqtt.simple import MQTTClient

SOCK_TIMEOUT_S = 1


class _Client(MQTTClient):
    def _bound(self):
        self.sock.settimeout(SOCK_TIMEOUT_S)

    def connect(self, clean_session=True):
        # Foundation: loopback connects are quick; the bound applies from the
        # CONNACK on. The link issue replaces this with non-blocking connects.
        r = super().connect(clean_session)
        self._bound()
        return r

    def check_msg(self):
        # umqtt leaves the socket blocking after a message; restore the bound
        try:
            return super().check_msg()
        finally:
            self._bound()


class Session:
    BACKOFF_MIN_MS = 500
    BACKOFF_MAX_MS = 60000

    def __init__(self, client_id, host, port, user=None, password=None, keepalive_s=120,
                 ssl_ctx=None, status_topic=None, clock=None, log=None):
        self.client = _Client(client_id, host, port, user, password, keepalive_s)
        self.keepalive_s = keepalive_s
        self.status_topic = status_topic
        if status_topic:
            self.client.set_last_will(status_topic, b"offline", retain=True, qos=1)
        self.subs = []
        self.up = False
        self.log = log or (lambda *a: None)
        self._stats = {"connects": 0, "drops": 0, "last_error": None}
        self._last_tx_ms = 0

    def subscribe(self, topic, qos=1):
        self.subs.append((topic, qos))

    def publish(self, topic, payload, retain=False, qos=0):
        if not self.up:
            return False
        try:
            self.client.publish(topic, payload, retain, qos)
            self._last_tx_ms = time.ticks_ms()
            return True
        except Exception as e:
            self._drop(e)
            return False

    def stats(self):
        return dict(self._stats)

    def _drop(self, err):
        if self.up:
            self._stats["drops"] += 1
        self.up = False
        self._stats["last_error"] = repr(err)
        try:
            self.client.sock.close()
        except Exception:
            pass

    def _connect(self):
        self.client.connect(clean_session=False)
        for topic, qos in self.subs:
            self.client.subscribe(topic, qos)
        if self.status_topic:
            self.client.publish(self.status_topic, b"online", True, 1)
        self.up = True
        self._stats["connects"] += 1
        self._last_tx_ms = time.ticks_ms()

    async def run(self, on_message):
        self.client.set_callback(on_message)
        backoff = self.BACKOFF_MIN_MS
        while True:
            try:
                self._connect()
                self.log("link", "up")
                backoff = self.BACKOFF_MIN_MS
                while True:
                    while self.client.check_msg() is not None:
                        pass
                    if time.ticks_diff(time.ticks_ms(), self._last_tx_ms) > self.keepalive_s * 500:
                        self.client.ping()
                        self._last_tx_ms = time.ticks_ms()
                    if not self.up:
                        break
                    await asyncio.sleep_ms(50)
            except Exception as e:
                self._drop(e)
                self.log("link", "down", repr(e))
            await asyncio.sleep_ms(backoff)
            backoff = min(backoff * 2, self.BACKOFF_MAX_MS)
