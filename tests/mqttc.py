"""A small paho-mqtt client for tests: subscribe, collect, wait, publish."""
import json
import threading
import time

import paho.mqtt.client as mqtt


class Watcher:
    def __init__(self, port, topics=("meters/#",), client_id=None):
        self.msgs = []
        self.cond = threading.Condition()
        self.c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id or "")
        self.c.on_message = self._on_message
        self.c.connect("127.0.0.1", port)
        for t in topics:
            self.c.subscribe(t, qos=1)
        self.c.loop_start()

    def _on_message(self, client, userdata, msg):
        with self.cond:
            self.msgs.append((msg.topic, msg.payload, msg.retain))
            self.cond.notify_all()

    def publish(self, topic, payload, qos=1, retain=False):
        if not isinstance(payload, (bytes, str)):
            payload = json.dumps(payload)
        self.c.publish(topic, payload, qos=qos, retain=retain).wait_for_publish(5)

    def wait(self, predicate, timeout=10):
        """Wait for a message (topic, payload) matching predicate; return its JSON or bytes."""
        deadline = time.time() + timeout
        seen = 0
        with self.cond:
            while True:
                for topic, payload, _ in self.msgs[seen:]:
                    try:
                        body = json.loads(payload)
                    except ValueError:
                        body = payload
                    if predicate(topic, body):
                        return body
                seen = len(self.msgs)
                left = deadline - time.time()
                if left <= 0:
                    raise TimeoutError("no matching message; got %r" % self.msgs[-5:])
                self.cond.wait(left)

    def close(self):
        self.c.loop_stop()
        self.c.disconnect()
