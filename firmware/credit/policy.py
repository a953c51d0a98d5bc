# Credit policy: when the relay opens and why, staged warnings, the buzzer
# request, and friendly-credit periods. Pure: it is handed the balance, the
# protection state and the time, and it appends events.
#
# Relay, highest priority first (docs/credit.md):
#   0. (above the policy: firmware/meter.py relay_now) a store fault -> open "store_fault"
#   1. a technician's manual open        -> open  "technician_open"
#   2. remote disconnect                 -> open  "remote_disconnect"
#   3. a protection trip or lockout      -> open  "over_power", "under_voltage_lockout", ...
#   4. a technician's manual close       -> closed "technician_close"
#   5. remote connect                    -> closed "remote_connect"
#   6. postpaid mode                     -> closed "postpaid"
#   7. prepaid: balance <= 0 outside a friendly period -> open "credit"; once
#      open for credit it stays open ("await_press") until the balance is above
#      0 (or a friendly period is in force) AND, in "press" reconnect mode, the
#      customer presses the button.
from firmware.localtime import day_number, seconds_of_day
from firmware.credit.calendar import DayCalendar

PREPAID = "prepaid"
POSTPAID = "postpaid"
REMOTE_AUTO = "auto"
REMOTE_CONNECT = "connect"
REMOTE_DISCONNECT = "disconnect"

# reason 0 above: the meter core (relay_now) reports it while the store has
# failed; named here with the others so that every reason has one home
STORE_FAULT = "store_fault"

# closed for as long as their condition holds (not for one action)
STANDING = ("remote_connect", "postpaid", "friendly", "technician_close")

# A technician's manual override (the REPL's relay(), firmware/repl/helpers.py):
# "auto" leaves the relay to the rules; "open" and "close" hold it (1 and 4
# above) until the technician sets "auto" again. Kept with the meter's state.
MANUAL = ("auto", "open", "close")

# The buzzer request (Policy.alarm). Defined here, once: ui/buzzer.py imports
# them to turn a request into a sound pattern.
QUIET = 0
BEEP_ONCE = 1   # one short beep, at most once per local day (level >= 1)
REPEAT = 2      # repeating beep until a button press silences it (level >= repeat_level),
                # for silence_s at most and until the level changes


class Friendly:
    """Friendly-credit periods: daily windows, weekend days and holidays."""

    def __init__(self, cfg):
        cfg = cfg or {}
        # windows: [[start_s, end_s], ...] seconds of day; start > end wraps midnight
        self.windows = tuple((int(w[0]), int(w[1])) for w in cfg.get("windows", ()))
        self.weekend = bool(cfg.get("weekend", False))
        self.calendar = DayCalendar(cfg.get("weekend_days", (5, 6)), cfg.get("holidays", ()))
        self.configured = bool(self.windows or self.weekend or self.calendar.holidays)
        self._day = None
        self._day_type = 0

    def in_force(self, local_s):
        day = day_number(local_s)
        if day != self._day:  # the calendar lookup allocates: once a day is enough
            self._day = day
            self._day_type = self.calendar.day_type(day)
        day_type = self._day_type
        if day_type == 2 or (day_type == 1 and self.weekend):
            return True
        sod = seconds_of_day(local_s)
        for start, end in self.windows:
            if start <= end:
                if start <= sod < end:
                    return True
            elif sod >= start or sod < end:
                return True
        return False


class Policy:
    def __init__(self, cfg):
        self.configure(cfg)
        self.mode = PREPAID
        self.remote = REMOTE_AUTO
        self.manual = "auto"
        self.credit_open = False   # latched: opened for credit, not yet reconnected
        self.relay_closed = True
        self.relay_reason = "boot"
        self.level = 0
        self.alarm = QUIET
        self.beeps = 0             # count of one-off beeps asked for (the UI chirps on change)
        self.beep_day = -1
        self.silenced_until_s = 0
        # the days-left forecast in tenths of a day (credit/forecast.py
        # days()), set by the engine when warn_days is configured; None:
        # no forecast. ("days", a name the heap already holds.)
        self.days = None

    def configure(self, cfg):
        self.warn_minor = tuple(cfg.get("warn_minor", (5000, 1000)))
        # "about N days left": the days-left forecast at or below warn_days
        # is a warning of level 1 at least (none without the key)
        self.warn_days = cfg.get("warn_days")
        self.repeat_level = cfg.get("repeat_level", 2)
        self.silence_s = cfg.get("silence_s", 3600)
        self.auto_reconnect = cfg.get("reconnect", "press") == "auto"

    def warn_level(self, balance_minor):
        if self.mode != PREPAID:
            return 0
        n = 0
        for t in self.warn_minor:
            if balance_minor <= t:
                n += 1
        d = self.days
        if n == 0 and self.warn_days and d is not None and d <= self.warn_days * 10:
            n = 1
        return n

    def press(self, now_s, balance_minor, friendly):
        """A customer's button press: silences the buzzer's repeating warning
        (for silence_s at most, and only until the level changes) and
        confirms a reconnection."""
        self.silenced_until_s = now_s + self.silence_s
        self.beep_day = day_number(now_s)   # nor the once-a-day beep in its place
        if self.credit_open and (balance_minor > 0 or friendly):
            self.credit_open = False

    def settle(self, balance_minor, friendly, prot_reason, why, now_s, events):
        """Re-decide relay, warning level and buzzer after anything changed."""
        if self.manual == "open":
            closed, reason = False, "technician_open"
        elif self.remote == REMOTE_DISCONNECT:
            closed, reason = False, "remote_disconnect"
        elif prot_reason:
            closed, reason = False, prot_reason
        elif self.manual == "close":
            closed, reason = True, "technician_close"
        elif self.remote == REMOTE_CONNECT:
            closed, reason = True, "remote_connect"
        elif self.mode == POSTPAID:
            closed, reason = True, "postpaid"
        elif balance_minor <= 0 and not friendly:
            self.credit_open = True
            closed, reason = False, "credit"
        elif self.credit_open and not self.auto_reconnect:
            closed, reason = False, "await_press"
        else:
            self.credit_open = False
            closed = True
            reason = "friendly" if balance_minor <= 0 else why
        # The reason always says why the relay is where it is now, and every
        # change of it is a relay event, so the LCD, the state, the events
        # and the console give one answer. Open: any new reason (credit ->
        # await_press, over_power -> over_power_lockout). Closed: a standing
        # reason (remote_connect, postpaid, friendly) that starts or ends;
        # otherwise the reason stays the action that closed it ("topup").
        if closed != self.relay_closed or (reason != self.relay_reason and (
                not closed or reason in STANDING or self.relay_reason in STANDING)):
            events.append(("relay", 1 if closed else 0, reason, balance_minor))
            self.relay_closed = closed
            self.relay_reason = reason

        level = self.warn_level(balance_minor)
        if level != self.level:
            events.append(("warn", self.level, level, balance_minor))
            self.level = level
            self.silenced_until_s = 0   # a press silenced the level before this one

        day = day_number(now_s)
        if level >= self.repeat_level and now_s >= self.silenced_until_s:
            self.alarm = REPEAT
        elif level >= 1 and day != self.beep_day:
            self.alarm = BEEP_ONCE
            self.beep_day = day
            self.beeps += 1
        else:
            self.alarm = QUIET

    _STATE = ("mode", "remote", "manual", "credit_open", "relay_closed", "relay_reason", "level",
              "alarm", "beeps", "beep_day", "silenced_until_s")

    def to_dict(self):
        d = {}
        for k in self._STATE:
            d[k] = getattr(self, k)
        return d

    def load(self, d):
        for k in self._STATE:
            if k in d:
                setattr(self, k, d[k])
