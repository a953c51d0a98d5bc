# Composition root: builds the meter from a board and its config, then runs
# the asyncio tasks (meter, ui, link, publish, supervisor, console, keypad) in their
# order. What the tasks do belongs to the objects they call: the meter core,
# the session and event delivery (link/), the front panel (ui/panel.py:
# screens, button, backlight, buzzer). The sim board's
# control socket is the board's (boards/sim.py, sim_control.py).
import asyncio
import gc
import time

from micropython import const

from firmware import config
from firmware.transient import make_room, once
from firmware.meter import MeterCore
from firmware.ui.panel import Panel
from firmware.watchdog import Supervisor

METER_EVERY_MS = 1000
ACK_DRAIN_MS = 2000   # a failed command's ack gets this long to leave before the restart
_LIVE_KEPT = const(8)  # live events kept for events() while no link can send them
# modules loaded at once at most: a modem meter (63) with a REPL session, a
# token's code and an update's loaded together (about 82), and room to spare
_MODULES_PEAK = const(90)


class App:
    # over-the-air update (docs/ota.md): True while a switch or a roll-back
    # waits to be reported once healthy (ota/health.py), the download's
    # agent (ota/agent.py) while one runs, else None. A class default: a
    # meter with nothing of an update going on has no such attribute (heap)
    ota = None

    def __init__(self, board):
        self.board = board
        # The command dispatcher's code first, before the store and the
        # outbox are read: its names take the interpreter past its sixth
        # pool of interned names, and the seventh is one 1280-entry block
        # (14 KB here, ~9 KB on the ESP32) that only a whole heap is sure to
        # have. Made later, at a command, it failed with MemoryError on a
        # heap fragmented by a power cut's recovery (docs/architecture.md,
        # "Heap"). Code as .mpy files in the heap may not fit: then later.
        # Every module this meter's tasks import later comes now too: where
        # the sixth pool fills depends on the path the boot takes (a soft
        # reset skips the self-test), and the seventh pool must come here,
        # on every path, while the heap holds little but code.
        gc.collect()   # the imports' garbage out of the way: the largest free block
        try:
            import firmware.link.commands  # noqa: F401
            import firmware.link.session  # noqa: F401
            import firmware.link.delivery  # noqa: F401
            if board.modem_uart() is not None:
                import firmware.link.modem  # noqa: F401
            if board.console:
                import firmware.console  # noqa: F401
        except MemoryError:
            print("[boot] command code deferred: no 14 KB block for its names")
        make_room(_MODULES_PEAK)
        # A provisioning the meter cannot use never stops the boot (that would
        # be a crash loop at every reset): it becomes a fault, (code, why),
        # shown as E6x (config.FAULT_LCD) on the LCD, the log and the console.
        self.config_fault = None
        try:
            prov = board.provisioning()
        except (OSError, ValueError) as e:
            # no file, or not JSON: not even the metering constant is known,
            # so the store's safe state (relay open, nothing written)
            prov, self.config_fault = {}, (config.read_fault(e), str(e))
        self.cfg = config.load(prov)
        self.cfg_unknown = config.unknown_keys(prov)
        self.meter_id = self.cfg["meter_id"]
        self.key = None
        if self.config_fault is None:
            # without its key the meter meters and enforces credit as usual,
            # but starts no link: it never signs with a made-up key
            self.key, self.config_fault = config.link_key(self.cfg)
        f = self.config_fault
        held = (f[0], config.FAULT_LCD[f[0]]) if f and f[0].startswith("config") else None
        self.core = MeterCore(board, self.cfg, held)
        self.sup = Supervisor(board)
        self.session = None
        self.state_dirty = True
        self.last_state_ms = 0
        self.lcd_due = True
        self.errors = 0
        self.modem = None
        self.log_hold = None   # log lines held back while the REPL is in raw mode
        self.tasks = {}    # task name -> its asyncio task, once run() started them
        self._failed_ctr = None  # a command that raised halfway: restart once its ack is out
        t = "meters/" + self.meter_id + "/"
        self.topic_state = (t + "state").encode()
        self.topic_cmd = (t + "cmd").encode()
        self.topic_ack = (t + "ack").encode()
        self.topic_status = (t + "status").encode()
        self.topic_evt = (t + "evt").encode()
        self.ui = Panel(self)   # the front panel, after the core: it reads the meter
    # --- tasks
    async def meter_task(self):
        self.sup.register("meter", 4000)
        while True:
            if self.core.tick():
                self.state_dirty = True
                self.lcd_due = True  # show a relay change at once, not at the next refresh
            live = self.core.events.link_events
            if self.key is None and len(live) > _LIVE_KEPT:
                # no link will ever send the fault state's live events: keep
                # the newest for the technician's events() (the fault and the
                # relay's opening), or the list grows while the fault lasts
                del live[:-_LIVE_KEPT]
            self.sup.checkin("meter")
            # Collect garbage while it is little, once a tick (~2 ms on an
            # ESP32), instead of when an allocation fails: short-lived
            # objects then keep reusing the low end of the heap, and the
            # long-lived ones do not end up scattered across it, which left
            # the ESP32-sized heap with no free block for a 300-byte file
            # handle after a few hundred commands.
            gc.collect()
            await asyncio.sleep_ms(METER_EVERY_MS)

    async def link_task(self):
        from firmware.link.session import Session
        c = self.cfg
        net = None
        if self.board.modem_uart() is not None:
            from firmware.link.modem import ModemLink
            self.modem = net = ModemLink(self.board, c.get("apn", "internet"),
                                         on_time=self._network_time, log=self.log)
            asyncio.create_task(self._guard(self.modem.run))
        self.session = Session(self.meter_id, c["broker_host"], c["broker_port"],
                               c["mqtt_user"], c["mqtt_password"], c["keepalive_s"],
                               ssl_ctx=once("firmware.link.tls").context(c.get("broker_ca_hex")), status_topic=self.topic_status,
                               clock=self.core.clock, log=self.log, net=net)
        self.session.subscribe(self.topic_cmd, 1)
        await self.session.run(self.on_message, self.on_oversized)

    def _network_time(self, utc_s):
        # the cell network's time (+CCLK) syncs the clock, as a server time command would
        self.core.clock.set_utc(utc_s, "modem")
        self.core.commlog.add("clk", "modem")

    async def publish_task(self):
        """Events (link/delivery.py: QoS 1, at least once) and the retained
        state snapshot (QoS 0, when it changed or every state_every_s)."""
        from firmware.link import protocol as P
        from firmware.link.delivery import EventDelivery
        self.sup.register("publish", 4000)
        signer = P.Signer(self.key)
        out = None
        while True:
            s = self.session
            if s:
                if out is None:
                    out = EventDelivery(s, self.core.events.outbox, self.topic_evt, signer,
                                        self.meter_id, self.core.clock)
                out.pump(self.core.durable.seq, self.core.events.link_events)
                now = time.ticks_ms()
                due = time.ticks_diff(now, self.last_state_ms) > self.cfg["state_every_s"] * 1000
                if s.up and (self.state_dirty or due):
                    if s.publish(self.topic_state, P.sign(signer, self.state_report()), True, 0):
                        self.state_dirty = False
                        self.last_state_ms = now
                        if self.ota is True:   # healthy: link up, a state published
                            self.ota = None
                            # (no local for the module: this coroutine's
                            # frame lives as long as the meter; settle()
                            # unloads the rest of the update's code)
                            once("firmware.ota.health").settle(self)
            self.sup.checkin("publish")
            # events waiting go out at once; an idle meter looks 5 times a second
            busy = self.state_dirty or (out and out.waiting())
            await asyncio.sleep_ms(20 if busy else 200)

    def state_report(self):
        s = self.state_body()
        s["v"] = 1
        s["meter"] = self.meter_id
        s["kind"] = "state"
        return s

    def state_body(self):
        """The state snapshot in its wire form (integers for flags, no
        nulls): the retained state message and the "query state" answer."""
        from firmware.link.protocol import wire
        s = wire(self.core.state())
        if self.session:
            s["link"] = {"connects": self.session.connects}
        if self.modem:
            h = self.modem.health()
            if h.get("rssi_dbm") is not None:
                s["signal_dbm"] = h["rssi_dbm"]
            s["modem"] = h["state"] if isinstance(h["state"], str) else str(h["state"])
        return s

    # --- commands from the server
    def on_message(self, topic, payload):
        if topic != self.topic_cmd:   # an update's frame (meters/<id>/ota)
            if self.ota not in (None, True):
                self.ota.on_message(payload)
            return
        # payload: a view of the session's receive buffer (Session.run),
        # read in place: a copy was up to 2 KB in one piece, late in a month
        ack = self.handle_command(payload)
        self._send_ack(ack)

    def on_oversized(self, topic, head, size):
        """A command too big to hold, read through and dropped by the
        session (docs/protocol.md, "Oversized commands")."""
        if topic != self.topic_cmd:
            # not this meter's command topic (or a topic too long to read):
            # nobody to answer; the communication log keeps it
            self.core.commlog.add("big", "%d ?" % size)
            return
        d = self._dispatcher()
        self._send_ack(d.oversized(head, size))

    def _send_ack(self, ack):
        s = self.session
        if s:
            s.publish(self.topic_ack, ack, False, 1)
            if self._failed_ctr is not None:
                # the command raised halfway: its ack (and the command's
                # PUBACK) go out first, then the meter restarts
                s.drain(ACK_DRAIN_MS)
        self.restart_after_failed()

    def restart_after_failed(self):
        """After a command that raised halfway (handle_command noted it),
        restart from the flash state now (failedcmd.py); else nothing."""
        if self._failed_ctr is not None:
            once("firmware.failedcmd").restart(self.board, self._failed_ctr)

    # --- views
    def fault_lcd(self):
        """E-number of the provisioning fault, else 0."""
        return config.FAULT_LCD[self.config_fault[0]] if self.config_fault else 0

    def log(self, *parts):
        h = self.log_hold
        if h is None:
            print("[%s]" % self.meter_id, *parts)
        elif len(h) < 32:
            # mpremote holds the REPL in raw mode: a line now would corrupt its
            # replies, so it waits (firmware/repl/session.py prints it after)
            h.append(parts)
        # link happenings also go to the communication log the head-end can query
        self.core.commlog.note_log(parts, self.session.connects if self.session else None)

    def handle_command(self, raw):
        """One command in, one signed ack out. The dispatcher is made at the
        first command and kept: loading and dropping its code for every
        command left the ESP32-sized heap too fragmented for a commit within
        a few dozen commands. Its state (the replay counter and the order
        record) is committed in the meter's snapshot."""
        if self.key is None:
            # no key to check the command's signature nor sign the ack with:
            # refused, unsigned, with the reason (the link is not started, so
            # only a local path such as the sim's control socket gets here),
            # and the counter and kind read as from an oversized one's head,
            # so the refusal names the command it answers
            import json
            from firmware.link.commands import head_ack
            ack = head_ack(self.meter_id, raw)
            ack["result"] = "rejected"
            ack["reason"] = "no_key"
            ack["fault"] = "E%d" % self.fault_lcd()
            return json.dumps(ack).encode()
        d = self._dispatcher()
        gc.collect()
        core = self.core
        core.begin()   # a power-fail now waits for the command's commit
        try:
            ack = d.handle(raw)
        finally:
            core.end()
        if d.last_error:
            self.log("command", "internal error", d.last_error)
            d.last_error = None
        if d.failed_ctr is not None:
            # its ack must leave before the restart (on_message, control)
            self._failed_ctr = d.failed_ctr
            d.failed_ctr = None
        self.state_dirty = self.lcd_due = True
        import sys
        if self.ota is None and "firmware.ota.offer" in sys.modules:
            # an "ota" command was taken (a refused one unloads the offer's
            # code, ota/offer.py): its download starts
            from firmware.ota import agent
            agent.start(self)   # at its end it unloads itself and the rest of the update's code
        return ack

    def _dispatcher(self):
        d = self.core.durable.dispatcher
        if d is None:
            from firmware.link.commands import Dispatcher
            d = Dispatcher(self.meter_id, self.key, self.core.facade, commlog=self.core.commlog,
                           outbox=self.core.events.outbox, state=self.state_body)
            d.poisoned_ctr = once("firmware.failedcmd").read(self.board.flash_root())
            self.core.durable.attach_dispatcher(d)
        return d

    async def run(self):
        self.log("boot", "reset_cause=" + self.board.reset_cause())
        self._report_config()
        # the sim's control socket for tests; a real board has none (returns None)
        await self.board.serve_control(self)
        if self.key is not None:
            # needed at the first command and kept for life (its code was
            # loaded first thing, see __init__); made now while the heap is
            # in one piece. A heap too small for it (code as .mpy files)
            # makes it at the first command.
            try:
                self._dispatcher()
            except MemoryError:
                self.log("boot", "dispatcher deferred: no heap for it at boot")
        if self.board.slots:
            _ota_at_boot(self)
        gc.collect()
        fns = [("meter", self.meter_task), ("ui", self.ui.run), ("supervisor", self.sup.run)]
        if self.key is not None:
            fns[2:2] = [("publish", self.publish_task), ("link", self.link_task)]
        if self.board.console:
            from firmware import console
            fns.append(("console", console.task(self)))
        if self.board.keypad_key:
            # offline tokens typed at the meter (firmware/tokens/keypad.py);
            # boards without a keypad never load it
            kp = once("firmware.tokens.keypad")
            fns.append(("keypad", lambda: kp.run(self)))
        for name, fn in fns:
            self.tasks[name] = asyncio.create_task(self._guard(fn))
        # the tasks never end; one cancelled (the sim's hang request) is
        # simply gone, and the supervisor sees it fall silent
        await asyncio.gather(*self.tasks.values(), return_exceptions=True)

    def _report_config(self):
        # to the console log and to the commlog (console `log`, head-end query)
        log = self.core.commlog
        for k in self.cfg_unknown:
            self.log("config", "unknown key", k, "(ignored; a typo?)")
            log.add("cfg", "unknown " + k)
        if self.config_fault:
            code, why = self.config_fault
            self.log("fault", "E%d" % self.fault_lcd(), code, "-", why, "- link not started")
            log.add("fault", "E%d %s" % (self.fault_lcd(), code))

    async def _guard(self, task_fn):
        # A bug in one task must not stop metering: log it and restart the
        # task. A task that keeps failing stops checking in, and the watchdog
        # then resets the board.
        while True:
            try:
                await task_fn()
            except Exception as e:
                self.errors += 1
                self.log("task", task_fn.__name__, "failed:", repr(e))
                import sys
                sys.print_exception(e)
            await asyncio.sleep_ms(1000)


def _ota_at_boot(app):
    # A switch or a roll-back to report (romslot said so at power-up:
    # boot.py's board.slots), or a download to go on with (its job file,
    # ota/offer.py): else no code of an update loads. Not in run(): what a
    # coroutine's frame touched (the OSError of a missing job) stays
    # reachable from it for as long as it runs, the meter's life.
    if app.board.slots[1]:
        app.ota = True
    import os
    try:
        os.stat(app.board.flash_root() + "/ota-job.json")
    except OSError:   # no job
        return
    if app.key is not None:
        from firmware.ota import agent
        agent.start(app)


def main(board=None):
    if board is None:
        from firmware.boards.select import make_board
        board = make_board()
    asyncio.run(App(board).run())
