"""Start a local MQTT broker on a free loopback port: mosquitto, else amqtt.

    with Broker(tmpdir) as b:
        b.port
"""
import os
import shutil
import socket
import subprocess
import sys
import time

import children


def _free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def mosquitto_path():
    return shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if os.path.exists("/usr/sbin/mosquitto") else None)


class Broker:
    def __init__(self, workdir, port=None, extra_conf=""):
        self.dir = workdir
        os.makedirs(workdir, exist_ok=True)
        self.port = port or _free_port()
        self.extra_conf = extra_conf
        self.proc = None
        self.kind = "mosquitto" if mosquitto_path() else "amqtt"

    def start(self):
        if self.kind == "mosquitto":
            conf = os.path.join(self.dir, "mosquitto.conf")
            with open(conf, "w") as f:
                # set_tcp_nodelay: small MQTT packets go out at once instead of
                # waiting out Nagle against delayed ACKs (~40 ms a hop)
                f.write("listener %d 127.0.0.1\nallow_anonymous true\npersistence false\nset_tcp_nodelay true\n"
                        "log_dest stderr\nlog_type error\n%s\n" % (self.port, self.extra_conf))
            argv = [mosquitto_path(), "-c", conf]
        else:
            conf = os.path.join(self.dir, "amqtt.yaml")
            with open(conf, "w") as f:
                f.write("listeners:\n  default:\n    type: tcp\n    bind: 127.0.0.1:%d\n"
                        "auth:\n  allow-anonymous: true\n" % self.port)
            argv = [os.path.join(os.path.dirname(sys.executable), "amqtt"), "-c", conf]
        self.log = open(os.path.join(self.dir, "broker.log"), "a")
        self.proc = children.track(subprocess.Popen(argv, stdout=self.log, stderr=subprocess.STDOUT))
        deadline = time.time() + 10
        while time.time() < deadline:
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=1).close()
                return self
            except OSError:
                if self.proc.poll() is not None:
                    raise RuntimeError("broker exited; see %s" % self.log.name)
                time.sleep(0.05)
        raise TimeoutError("broker did not open port %d" % self.port)

    def stop(self):
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        if self.proc:
            children.untrack(self.proc)

    def restart(self):
        self.stop()
        return self.start()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
