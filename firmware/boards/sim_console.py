# The sim board's console guard (SimBoard.console_guard): while a
# technician's statement runs on the loop, a thread watches it. It reads the
# console input the REPL cannot read meanwhile (the statement holds the
# loop): a Ctrl-C there, or the statement outliving its budget, raises
# KeyboardInterrupt in the main thread, which is running that statement.
# On the unix port the one way to do that from Python is SIGINT to the
# process (a background `kill`, as system() ignores SIGINT while it waits):
# the interpreter's handler turns it into a KeyboardInterrupt in the main
# thread (it stays installed: kbd_intr(3)). Bytes typed meanwhile
# are kept for the REPL (typed). The ESP32's guard is a timer and the
# UART's own Ctrl-C (boards/esp32.py).
import os
import select
import sys
import time
import _thread
import micropython


class Guard:
    def __init__(self, budget_ms):
        self.budget_ms = budget_ms
        self.lock = _thread.allocate_lock()
        self.armed_at = None
        self.fired = False
        self.why = None
        self.typed = bytearray()
        self.pid = open("/proc/self/stat").read().split()[0]
        # the thread sleeps on this lock between statements (arm releases it)
        self.go = _thread.allocate_lock()
        self.go.acquire()
        self.kick = False
        micropython.kbd_intr(3)
        _thread.start_new_thread(self._watch, ())

    def arm(self):
        with self.lock:
            self.fired = False
            self.why = None
            self.armed_at = time.ticks_ms()
        if not self.kick:
            self.kick = True
            self.go.release()

    def disarm(self):
        """Stop watching; True if the guard fired (an interrupt is on its way)."""
        with self.lock:
            self.armed_at = None
            return self.fired

    def _watch(self):
        p = select.poll()
        p.register(sys.stdin, select.POLLIN)
        while True:
            self.go.acquire()   # asleep until a statement starts (arm)
            self.kick = False
            while True:
                ready = p.poll(10)
                with self.lock:
                    if self.armed_at is None:
                        break   # the statement is over
                    if self.fired:
                        continue
                    why = None
                    if ready:
                        # read(n) waits for all n bytes: one at a time, while poll says so
                        data = b""
                        while len(data) < 256 and p.poll(0):
                            b = sys.stdin.buffer.read(1)
                            if not b:
                                break
                            data += b
                        i = data.find(b"\x03")
                        if i >= 0:
                            data = data[:i] + data[i + 1:]
                            why = "ctrl-c"
                        self.typed.extend(data)
                    if why is None and time.ticks_diff(time.ticks_ms(), self.armed_at) > self.budget_ms:
                        why = "budget"
                    if why:
                        self.fired = True
                        self.why = why
                        # system() ignores SIGINT in the caller until the command
                        # is done, so the kill runs in the background, a moment
                        # after system() returns
                        os.system("(sleep 0.005; kill -INT %s) &" % self.pid)
