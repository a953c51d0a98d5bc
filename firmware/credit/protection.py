# Protection trips: over-power, over-voltage and under-voltage.
#
# Each trip is the same small state machine (compare Tasmota's MaxPower,
# MaxPowerHold, MaxPowerWindow):
#   armed   -- value beyond `limit` for `hold_s` meter seconds --> tripped (relay opens)
#   tripped -- after `retry_s` --> armed again (relay closes), or locked out if
#              this was trip number `tries`
#   locked  -- stays open until reset() (customer's button press or remote connect)
#              sets it armed with a fresh trip count
# The trip count goes back to 0 after `clear_s` seconds back in range.
# Times are meter seconds accumulated from the tick spans, never wall time.
# A value the meter cannot measure is None (a pulse-only board knows no
# voltage: metering/instruments.py): an armed trip never acts on it, so an
# unknown voltage is never taken for a low one.
ARMED = 0
TRIPPED = 1
LOCKED = 2

KINDS = ("over_power", "over_voltage", "under_voltage")
_LOCK_REASONS = ("over_power_lockout", "over_voltage_lockout", "under_voltage_lockout")
_DEFAULTS = {"hold_s": 5, "retry_s": 60, "tries": 3, "clear_s": 600}


class Trip:
    def __init__(self, index, cfg):
        self.index = index
        self.kind = KINDS[index]
        self.limit = cfg["limit"]
        self.hold_s = cfg.get("hold_s", _DEFAULTS["hold_s"])
        self.retry_s = cfg.get("retry_s", _DEFAULTS["retry_s"])
        self.max_tries = cfg.get("tries", _DEFAULTS["tries"])
        self.clear_s = cfg.get("clear_s", _DEFAULTS["clear_s"])
        self.phase = ARMED
        self.tries = 0
        self.bad_s = 0    # seconds beyond the limit, while armed
        self.good_s = 0   # seconds in range, while armed
        self.open_s = 0   # seconds tripped

    def beyond(self, value):
        if self.index == 2:
            return value < self.limit
        return value > self.limit

    def update(self, span_s, value, events):
        """Advance by one tick; returns True if the trip changed phase."""
        if self.phase == ARMED:
            if value is None:
                return False
            if self.beyond(value):
                self.bad_s += span_s
                self.good_s = 0
                if self.bad_s >= self.hold_s:
                    self.phase = TRIPPED
                    self.tries += 1
                    self.bad_s = 0
                    self.open_s = 0
                    events.append(("trip", self.kind, self.tries, value))
                    return True
            else:
                self.bad_s = 0
                self.good_s += span_s
                if self.tries and self.good_s >= self.clear_s:
                    self.tries = 0
            return False
        if self.phase == TRIPPED:
            self.open_s += span_s
            if self.open_s >= self.retry_s:
                if self.tries >= self.max_tries:
                    self.phase = LOCKED
                    events.append(("lockout", self.kind, self.tries))
                else:
                    self.phase = ARMED
                    self.good_s = 0
                    events.append(("retry", self.kind, self.tries))
                return True
        return False

    def reset(self, events):
        """Clear a lockout (a person has looked at the load); a trip still
        waiting for its retry is left alone."""
        if self.phase == LOCKED:
            events.append(("prot_reset", self.kind))
            self.phase = ARMED
            self.tries = 0
            self.bad_s = 0
            self.good_s = 0
            self.open_s = 0

    def open_reason(self):
        if self.phase == TRIPPED:
            return self.kind
        if self.phase == LOCKED:
            return _LOCK_REASONS[self.index]
        return None

    def to_list(self):
        return [self.phase, self.tries, self.bad_s, self.good_s, self.open_s]

    def load(self, row):
        self.phase, self.tries, self.bad_s, self.good_s, self.open_s = row


class Protection:
    def __init__(self, cfg):
        """cfg: {"over_power": {"limit": W, ...}, "over_voltage": {"limit": V, ...}, ...};
        a missing kind is not checked."""
        self.trips = []
        for i in range(3):
            c = (cfg or {}).get(KINDS[i])
            self.trips.append(Trip(i, c) if c else None)

    def update(self, span_s, power_w, voltage_v, events):
        changed = False
        t = self.trips
        if t[0] and t[0].update(span_s, power_w, events):
            changed = True
        if t[1] and t[1].update(span_s, voltage_v, events):
            changed = True
        if t[2] and t[2].update(span_s, voltage_v, events):
            changed = True
        return changed

    def open_reason(self):
        for t in self.trips:
            if t:
                r = t.open_reason()
                if r:
                    return r
        return None

    def reset(self, events):
        for t in self.trips:
            if t:
                t.reset(events)

    def to_list(self):
        return [t.to_list() if t else None for t in self.trips]

    def load(self, rows):
        for t, row in zip(self.trips, rows or ()):
            if t and row:
                t.load(row)
