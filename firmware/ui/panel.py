# The meter's front panel: the one place for what the customer sees and
# does. It runs the "ui" task: the boot self-test, the query button's
# gestures (ui/keys.py), which screen shows (ui/screens.py), the long-press
# actions and their results, going home after 30 s idle, the backlight, the
# LCD refresh (ui/render.py) and the buzzer.
#
# Short press: the core's press (silences the alarm, confirms a waiting
# reconnection, clears a protection lockout: MeterCore.short_press), then
# the next screen. Long press, on the home and supply screens only, does
# what they offer (screens.offer): reconnect, silence the alarm, or ask to
# confirm emergency credit (a second long press takes it, a short press
# cancels). Every action ends on a result screen.
#
# The screens' timers (idle, backlight, result) run on meter time
# (board.mono_ms(): real time on a board, the sim can step it); the button's
# gestures on real time (a person holds it).
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
_SCREENS = const(0)
_CONFIRM = const(1)
_RESULT = const(2)


class Panel:
    def __init__(self, app):
        self.app = app
        self.board = app.board
        cfg = app.cfg
        r = self.r = render.Renderer()
        t = texts.table(cfg.get("language", "en"))
        # an unknown language is a config fault (E65, shown), never a blank screen
        self.lang_fault = t is None
        r.lang(t or texts.table("en"))
        self.v = screens.View(app.meter_id, cfg["currency"])
        self.key = keys.Key(self.board)
        self.screen = screens.HOME
        self.mode = _SCREENS
        self.res = 0
        self.why = None
        self.pressed_ms = 0
        self.light_ms = 0
        self.result_ms = 0
        self.seen = -1      # relay closed and warning level last seen (backlight)
        # the forecast's hook: a callable filling the view's forecast slots
        # (firmware/ui/screens.py header) before each frame; None: they show --
        self.forecast = None

    async def run(self):
        app = self.app
        b = self.board
        core = app.core
        app.sup.register("ui", 2000)
        for on in (1, 0):
            render.selftest(b, on)
            app.sup.checkin("ui")
            await asyncio.sleep_ms(_SELFTEST_MS)
        self.light(b.mono_ms())
        next_lcd = time.ticks_ms()
        while True:
            g = self.key.poll()
            now = b.mono_ms()
            if g:
                self.light(now)
                self.pressed_ms = now
                self.gesture(g, now)
                app.lcd_due = True
            self.timers(now)
            real = time.ticks_ms()
            if app.lcd_due or time.ticks_diff(real, next_lcd) >= 0:
                app.lcd_due = False
                self.frame()
                next_lcd = time.ticks_add(real, _LCD_EVERY_MS)
            b.buzzer(core.buzzer_on(real))
            app.sup.checkin("ui")
            await asyncio.sleep_ms(_POLL_MS)

    def light(self, now):
        self.light_ms = now
        self.board.backlight(True)

    def timers(self, now):
        self.v.news(self.app.core.engine)
        p = self.app.core.engine.policy
        seen = (2 if p.relay_closed and not self.app.core.fault else 0) | (p.level << 2)
        if seen != self.seen:
            # a relay change or a new warning: light up to show it
            if self.seen >= 0:
                self.light(now)
            self.seen = seen
        if self.light_ms is not None and now - self.light_ms >= _LIGHT_MS:
            self.light_ms = None
            self.board.backlight(False)
        if self.mode == _RESULT and now - self.result_ms >= _RESULT_MS:
            self.mode = _SCREENS
            self.app.lcd_due = True
        if (self.screen != screens.HOME or self.mode != _SCREENS) and now - self.pressed_ms >= _IDLE_MS:
            self.screen = screens.HOME
            self.mode = _SCREENS
            self.app.lcd_due = True

    def gesture(self, g, now):
        app = self.app
        core = app.core
        v = self.v
        screens.fill(v, app, self.lang_fault)
        if g == keys.SHORT:
            was_open = not core.relay_now()[0]
            if core.short_press():
                app.state_dirty = True
            if self.mode != _SCREENS:
                self.mode = _SCREENS     # a short press cancels or dismisses
            elif was_open and core.relay_now()[0]:
                self.done(screens.RES_RECONNECTED, None, now)
            else:
                self.screen = (self.screen + 1) % screens.N_SCREENS
            return
        # a long press
        if self.mode == _CONFIRM:
            why = core.engine.emergency_refusal()
            if why is None and core.long_press():
                app.state_dirty = True
                screens.fill(v, app, self.lang_fault)
                self.done(screens.RES_EC_TAKEN, None, now)
            else:
                self.done(screens.RES_REFUSED, why, now)
            return
        if self.mode != _SCREENS or (self.screen != screens.HOME and self.screen != screens.SUPPLY):
            return   # no action offered here
        a = screens.offer(v)
        if a == screens.A_EMERGENCY:
            self.mode = _CONFIRM
        elif a == screens.A_RECONNECT or a == screens.A_SILENCE:
            if core.short_press():
                app.state_dirty = True
            self.done(screens.RES_RECONNECTED if a == screens.A_RECONNECT else screens.RES_SILENCED,
                      None, now)

    def done(self, res, why, now):
        self.mode = _RESULT
        self.res = res
        self.why = why
        self.result_ms = now

    def frame(self):
        """Fill the view, compose the screen, push the frame. Allocates
        nothing (tests/test_ui_render.py)."""
        v = self.v
        r = self.r
        screens.fill(v, self.app, self.lang_fault)
        if self.forecast is not None:
            self.forecast(v.n)
        if self.mode == _CONFIRM:
            screens.confirm(r, v)
        elif self.mode == _RESULT:
            screens.result(r, v, self.res, self.why)
        else:
            screens.compose(r, v, self.screen)
        self.board.lcd_show(r.draw(), r.rows)
