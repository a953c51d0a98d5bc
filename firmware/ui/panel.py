# The meter's front panel: the one place for what the customer sees and
# does. It runs the "ui" task: the boot self-test, the query button's
# gestures (ui/keys.py), which screen shows (ui/screens.py), the long-press
# actions and their results, going home after 30 s idle, the backlight, the
# LCD refresh (ui/render.py) and the buzzer.
#
# Short press: the core's press (silences the alarm, confirms a waiting
# reconnection, clears a protection lockout: MeterCore.short_press), then
# the next screen (or, when it reconnected the supply, that result). Long
# press, on the home and supply screens only, does what they offer
# (screens.fill's answer): reconnect, silence the alarm, or ask to confirm
# emergency credit (a second long press takes it, a short press cancels).
# Every action ends on a result screen.
#
# The screens' timers (idle, backlight, result) run on meter time
# (board.mono_ms(): real time on a board; the sim can step it), the
# button's gestures on real time (a person holds it).
import asyncio
import time
from micropython import const

from firmware.ui import keys, render, screens, texts

_POLL_MS = const(40)
_LCD_EVERY_MS = const(1000)
_IDLE_MS = const(30000)     # back home after this long without a press
_LIGHT_MS = const(20000)    # backlight off after this long without news
_RESULT_MS = const(4000)    # an action's result stays this long
_SELFTEST_MS = const(800)   # each self-test frame (all on, then all off)
_SUPPLY = const(7)          # the supply screen (screens.draw)
_N_SCREENS = const(12)
# modes (self.mode) as screens.draw takes them
_SCREENS = const(0)
_CONFIRM = const(1)
_RESULT = const(2)
# screens.fill's long-press actions
_A_RECONNECT = const(1)
_A_EMERGENCY = const(2)
_A_SILENCE = const(3)
# self.ms: meter ms of the last press, of the backlight going on (-1: off),
# of the result shown
_PRESSED = const(0)
_LIT = const(1)
_SHOWN = const(2)


class Panel:
    def __init__(self, app):
        self.app = app
        self.board = app.board
        cfg = app.cfg
        t = texts.get(cfg.get("language") or b"en")
        # an unknown language is a config fault (E65, shown), never a blank screen
        self.fault = t is None
        self.r = render.Renderer(t or texts.get(b"en"))
        self.v = screens.view(app.meter_id, cfg["currency"])
        self.key = keys.Key(self.board)
        self.screen = 0
        self.mode = _SCREENS
        self.result = 0     # the action a result screen shows (0: refused)
        self.why = None     # the refusal's reason
        self.ms = [0, 0, 0]
        self.seen = -1      # relay and warning level last seen (backlight)

    async def run(self):
        app = self.app
        b = self.board
        core = app.core
        app.sup.register("ui", 2000)
        self.ms[_LIT] = b.mono_ms()
        b.backlight(True)
        # the self-test first: all pixels on, then off; the button is read
        # from the start all the same (a press during it is timed from its start)
        render.selftest(b, 1)
        next_lcd = time.ticks_add(time.ticks_ms(), _SELFTEST_MS)
        test = 2
        while True:
            g = self.key.poll()
            t = b.mono_ms()
            if g:
                self.ms[_PRESSED] = t
                self.ms[_LIT] = t
                b.backlight(True)
                self.press(g, t)
                app.lcd_due = True
            self.poll(t)
            real = time.ticks_ms()
            if test:
                # 2: all on showing, 1: all off showing; 0: the screens
                if time.ticks_diff(real, next_lcd) >= 0:
                    test -= 1
                    if test:
                        render.selftest(b, 0)
                    next_lcd = time.ticks_add(real, _SELFTEST_MS if test else 0)
            elif app.lcd_due or time.ticks_diff(real, next_lcd) >= 0:
                app.lcd_due = False
                self.draw()
                next_lcd = time.ticks_add(real, _LCD_EVERY_MS)
            b.buzzer(core.buzzer_on(real))
            app.sup.checkin("ui")
            await asyncio.sleep_ms(_POLL_MS)

    def poll(self, t):
        """The timers at meter time t, and the texts that changed."""
        app = self.app
        e = app.core.engine
        v = self.v
        if e.last_topup is not v[4]:
            # a new top-up: its order reference made into bytes once, here
            # (it allocates), not in the frame
            v[4] = e.last_topup
            v[3] = str(v[4][0]).encode() if v[4] else b""
        p = e.policy
        seen = (2 if p.relay_closed and not app.core.fault else 0) | (p.level << 2)
        if seen != self.seen:
            # a relay change or a new warning: light up to show it
            if self.seen >= 0:
                self.ms[_LIT] = t
                self.board.backlight(True)
            self.seen = seen
        ms = self.ms
        if ms[_LIT] >= 0 and t - ms[_LIT] >= _LIGHT_MS:
            ms[_LIT] = -1
            self.board.backlight(False)
        if self.mode == _RESULT and t - ms[_SHOWN] >= _RESULT_MS:
            self.mode = _SCREENS
            app.lcd_due = True
        if (self.screen or self.mode != _SCREENS) and t - ms[_PRESSED] >= _IDLE_MS:
            self.screen = 0
            self.mode = _SCREENS
            app.lcd_due = True

    def press(self, g, t):
        """A gesture (keys.SHORT or keys.LONG) at meter time t."""
        app = self.app
        core = app.core
        offer = screens.fill(self.v, app, self.fault)
        if g == keys.SHORT:
            was_open = not core.relay_now()[0]
            if core.short_press():
                app.state_dirty = True
            if self.mode != _SCREENS:
                self.mode = _SCREENS     # a short press cancels or dismisses
            elif was_open and core.relay_now()[0]:
                self.done(_A_RECONNECT, None, t)
            else:
                self.screen = (self.screen + 1) % _N_SCREENS
            return
        if self.mode == _CONFIRM:
            why = core.engine.emergency_refusal()
            if why is None and core.long_press():
                app.state_dirty = True
                self.done(_A_EMERGENCY, None, t)
            else:
                self.done(0, why, t)
            return
        if self.mode != _SCREENS or (self.screen and self.screen != _SUPPLY):
            return   # no action offered here
        if offer == _A_EMERGENCY:
            self.mode = _CONFIRM
        elif offer:
            if core.short_press():   # reconnects, or silences the alarm
                app.state_dirty = True
            self.done(offer, None, t)

    def done(self, action, why, t):
        self.mode = _RESULT
        self.result = action
        self.why = why
        self.ms[_SHOWN] = t

    def draw(self):
        """Fill the view, write the screen, push the frame. Allocates
        nothing (tests/test_ui_render.py)."""
        v = self.v
        r = self.r
        screens.fill(v, self.app, self.fault)
        screens.draw(r, v, self.screen, self.mode, self.result, self.why)
        self.board.lcd_show(r.draw(), r.rows)
