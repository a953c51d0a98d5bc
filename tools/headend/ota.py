"""Head-end side of over-the-air updates (docs/ota.md): serves a bundle's
frames to the meters that ask for them.

The offer itself is an ordinary signed command, kind "ota", whose
"manifest" is the bundle's (HeadEnd.send(meter, "ota", manifest=...)). The
meter then asks for what it lacks on meters/<id>/otareq (a message signed
with its key: {"kind": "otareq", "tag", "obj", "first", "n"}) and this
publisher answers on meters/<id>/ota, one frame per message, QoS 0: a lost
frame is asked for again. It keeps no state per meter, so any number of
meters, and a meter back after a cut, are served the same way.
"""
import json
import threading

import paho.mqtt.client as mqtt

import ota_bundle


class OtaPublisher:
    MAX_FRAMES = 8   # per request: a meter asks for one 4 KB chunk at a time

    def __init__(self, bundles, host="127.0.0.1", port=1883, user=None, password=None, keys=None):
        """bundles: (manifest, table, image) tuples; keys: meter id -> key
        bytes, to check each request's MAC (None: trust the broker's ACL)."""
        self.by_tag = {b[0]["sha"][:8]: b for b in bundles}
        self.keys = keys
        self.served = 0
        self.requests = []   # (meter, obj, first, n) of every request seen
        self.host, self.port = host, port
        self.client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, protocol=mqtt.MQTTv311, clean_session=True)
        if user:
            self.client.username_pw_set(user, password)
        self.client.on_connect = lambda c, u, f, rc, p: c.subscribe("meters/+/otareq", 0)
        self.client.on_message = self._on_message
        self.lock = threading.Lock()

    def start(self):
        self.client.connect(self.host, self.port, keepalive=30)
        self.client.loop_start()
        return self

    def stop(self):
        self.client.disconnect()
        self.client.loop_stop()

    def _on_message(self, client, userdata, msg):
        meter = msg.topic.split("/")[1]
        try:
            req = json.loads(msg.payload)
            if self.keys is not None:
                from headend import codec
                req = codec.verify(self.keys[meter], msg.payload)
            b = self.by_tag[req["tag"]]
            obj, first, n = int(req["obj"]), int(req["first"]), min(int(req["n"]), self.MAX_FRAMES)
        except (ValueError, KeyError, TypeError):
            return   # not a request of ours: nothing to serve
        with self.lock:
            self.requests.append((meter, obj, first, n))
        for i in range(first, first + n):
            p = ota_bundle.frame(*b, obj, i)
            if p is None:
                break
            client.publish("meters/%s/ota" % meter, p, qos=0)
            self.served += 1
