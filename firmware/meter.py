# The meter core: one object that turns pulses into Wh, Wh into charges, and
# charges into relay decisions, and keeps all of it durable. It is the facade
# the UI, the link and the technician console talk to. The maths lives in the
# pure layers (metering/, credit/); this file only sequences them.
import json
import os
import time

from firmware.ui import buzzer

CHECKPOINT_WH = 10       # energy at risk between checkpoints ...
CHECKPOINT_MS = 60000    # ... or this much meter time, whichever comes first


class MeterCore:
    def __init__(self, board, cfg):
        self.board = board
        self.cfg = cfg
        self.path = board.flash_root() + "/state.json"
        self.imp_per_kwh = cfg["imp_per_kwh"]
        self.price = cfg["price_milli_per_kwh"]
        st = self._load()
        self.import_wh = st.get("import_wh", 0)
        self.rem_pulses = st.get("rem_pulses", 0)
        self.balance_minor = st.get("balance_minor", cfg["initial_balance_minor"])
        self.charge_rem = st.get("charge_rem", 0)   # thousandths of a minor unit per kWh * Wh, carried
        self.orders = st.get("orders", {})
        self.seq = st.get("seq", 0)
        self.relay_reason = st.get("relay_reason", "")
        self.last_pulses = board.pulse_count()
        self.saved_wh = self.import_wh
        self.saved_ms = board.mono_ms()
        self.silenced_until = 0
        self.last_w = 0
        self._decide_relay()

    # --- persistence (foundation: one JSON record, written then renamed)
    def _load(self):
        try:
            with open(self.path) as f:
                return json.load(f)
        except OSError:
            return {}

    def save(self):
        tmp = self.path + ".tmp"
        with open(tmp, "w") as f:
            json.dump({"import_wh": self.import_wh, "rem_pulses": self.rem_pulses,
                       "balance_minor": self.balance_minor, "charge_rem": self.charge_rem,
                       "orders": self.orders, "seq": self.seq,
                       "relay_reason": self.relay_reason}, f)
        os.rename(tmp, self.path)
        self.saved_wh = self.import_wh
        self.saved_ms = self.board.mono_ms()

    # --- the metering tick
    def tick(self):
        """Meter what arrived since the last tick. Returns True if state changed."""
        total = self.board.pulse_count()
        delta = total - self.last_pulses
        self.last_pulses = total
        changed = False
        if delta > 0:
            pulses = self.rem_pulses + delta * 1000
            wh = pulses // self.imp_per_kwh
            self.rem_pulses = pulses - wh * self.imp_per_kwh
            if wh:
                self.import_wh += wh
                self._charge(wh)
                changed = True
        v, w = self.board.measured() if hasattr(self.board, "measured") else (0, 0)
        self.last_w = w
        if self._decide_relay():
            changed = True
        if (self.import_wh - self.saved_wh >= CHECKPOINT_WH
                or self.board.mono_ms() - self.saved_ms >= CHECKPOINT_MS and changed):
            self.save()
        return changed

    def _charge(self, wh):
        # price is thousandths of a minor unit per kWh: cost = wh * price / 1e6 minor
        owed = self.charge_rem + wh * self.price
        minor = owed // 1000000
        self.charge_rem = owed - minor * 1000000
        self.balance_minor -= minor

    def _decide_relay(self):
        want_closed = self.balance_minor > 0
        if want_closed == self.board.relay_closed():
            return False
        self.board.relay_set(want_closed)
        self.relay_reason = "" if want_closed else "credit"
        self.seq += 1
        self.save()
        return True

    # --- commands
    def command(self, cmd):
        kind = cmd.get("type")
        if kind == "topup":
            return self.topup(str(cmd["order"]), int(cmd["amount_minor"]))
        return {"result": "rejected", "reason": "unknown_command"}

    def topup(self, order, amount_minor):
        if order in self.orders:
            return {"order": order, "result": "duplicate", "balance_minor": self.balance_minor,
                    "seq": self.orders[order]}
        if amount_minor <= 0:
            return {"order": order, "result": "rejected", "reason": "out_of_range"}
        self.balance_minor += amount_minor
        self.seq += 1
        seq = self.orders[order] = self.seq
        self._decide_relay()
        self.save()  # durable before the ack leaves
        return {"order": order, "result": "credited", "balance_minor": self.balance_minor,
                "seq": seq}

    def long_press(self):
        return False

    def silence_buzzer(self, now_ms):
        self.silenced_until = time.ticks_add(now_ms, 3600000)

    def buzzer_on(self, now_ms):
        if self.balance_minor > 0 or time.ticks_diff(self.silenced_until, now_ms) > 0:
            return False
        return buzzer.should_sound(buzzer.REPEAT, now_ms % 2000)

    # --- views
    def snapshot(self):
        return {"balance_minor": self.balance_minor, "import_wh": self.import_wh,
                "relay_closed": self.board.relay_closed(), "relay_reason": self.relay_reason,
                "load_w": self.last_w, "seq": self.seq, "decimals": self.cfg["decimals"],
                "currency": self.cfg["currency"],
                "price_minor_per_kwh_x1000": self.price}

    def state_report(self):
        s = self.snapshot()
        s["t"] = self.board.rtc_get()
        s["1.8.0"] = self.import_wh
        return s
