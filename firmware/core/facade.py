# The meter as the command dispatcher sees it (firmware/link/commands.py has
# the contract in its header). Loaded at the first command, with the
# dispatcher: a meter nobody commands keeps this code's objects out of the
# heap. Each command changes the meter in RAM only, through the credit
# engine; the dispatcher's commit() then makes it durable in one snapshot.
from firmware.link.outbox import CRITICAL
from firmware.transient import drop_package

BILLING_PAGE = 31  # frozen records per billing reply (31 daily ones: ~1 KB)
FAILED = "store_failed"   # every change is refused while the store has failed


class Facade:
    def __init__(self, core):
        self.core = core

    def token(self, text, commit=True):
        """Enter an offline token: the result line "<code> <amount_minor>
        <balance_minor>[ #<count>]" (firmware/tokens/entry.py); the core's last_token
        holds (code, amount_minor, count, balance_minor) for the LCD.
        The token code is loaded for each token and dropped after it (a
        token comes every few days): its state is the snapshot's "tok"."""
        from firmware.tokens.entry import TokenEntry
        try:
            return TokenEntry(self.core).enter(text, commit)
        finally:
            drop_package("firmware.tokens")

    def topup(self, order_id, amount_minor):
        c = self.core
        e = c.engine
        if c.fault:
            return FAILED, None, None
        if not c.events.outbox.can_add(CRITICAL):  # full of undelivered credit events
            return "busy", e.balance_minor(), None
        r = e.topup(order_id, amount_minor)
        if r != "ok":
            return r, e.balance_minor(), None
        seq = c.events.from_engine(e)
        c.drive_relay()
        return "credited", e.balance_minor(), seq

    def tariff(self, version, activate_utc_s, tariff_dict):
        if self.core.fault:
            return FAILED
        d = dict(tariff_dict)
        d["version"] = version
        at = activate_utc_s + self.core.clock.utc_offset_s if activate_utc_s else None
        return self._done(self.core.engine.set_tariff(d, at))

    def relay(self, action):
        return self._done(self.core.engine.remote(action)) if not self.core.fault else FAILED

    def set_mode(self, mode):
        return self._done(self.core.engine.set_mode(mode)) if not self.core.fault else FAILED

    def configure(self, s):
        """The protocol's settings (commands.CONFIG) -> the engine's config
        keys, the clock's offset and the app's intervals."""
        c = self.core
        if c.fault:
            return FAILED
        ch = {}
        eng = c.engine
        pol = eng.policy
        w1 = s.get("warn1_minor", pol.warn_minor[0])
        w2 = s.get("warn2_minor", pol.warn_minor[1] if len(pol.warn_minor) > 1 else 0)
        if "warn1_minor" in s or "warn2_minor" in s:
            ch["warn_minor"] = (w1, w2)
        if "emergency_credit_minor" in s:
            ch["emergency_minor"] = s["emergency_credit_minor"]
        if "reconnect_needs_press" in s:
            ch["reconnect"] = "press" if s["reconnect_needs_press"] else "auto"
        f = dict(eng.cfg.get("friendly") or {})
        if "friendly_start_min" in s or "friendly_end_min" in s:
            w0 = (f.get("windows") or [[0, 0]])[0]
            start = s.get("friendly_start_min", w0[0] // 60) * 60
            end = s.get("friendly_end_min", w0[1] // 60) * 60
            f["windows"] = [[start, end]]
        if "friendly_weekends" in s:
            f["weekend"] = bool(s["friendly_weekends"])
        if "holidays" in s:
            f["holidays"] = ["%04d-%02d-%02d" % (h // 10000, h // 100 % 100, h % 100)
                             for h in s["holidays"]]
        if f:
            ch["friendly"] = f
        if "utc_offset_min" in s:
            c.clock.set_offset(s["utc_offset_min"] * 60)
        if "report_interval_s" in s:
            c.cfg["report_interval_s"] = s["report_interval_s"]
        if "state_interval_s" in s:  # the app's name for it
            c.cfg["state_every_s"] = s["state_interval_s"]
        return self._done(eng.configure(ch))

    def set_time(self, utc_s):
        c = self.core
        if c.fault:
            return FAILED
        step = c.clock.set_utc(utc_s, "server")
        c.commlog.add("clk", "step %d" % step)
        c.durable.dirty = True
        return None

    def ota(self, manifest):
        """An update offer (docs/ota.md): checked and kept by
        firmware/ota/offer.py, loaded only now; None or the reason."""
        from firmware.ota import offer
        c = self.core
        return offer.accept(c.board, c.cfg, manifest)

    def utc_now(self):
        clock = self.core.clock
        return clock.utc_s() if clock.synced else None

    def _done(self, r):
        if r != "ok":
            return r
        c = self.core
        c.events.from_engine(c.engine)
        c.drive_relay()
        c.durable.dirty = True
        return None

    def billing(self, since):
        """Daily frozen records of local days after `since` (a day number,
        days since 1970-01-01), oldest first, at most BILLING_PAGE: a reply
        must stay within the protocol's message size. Each is
        [day, obis_1_8_0, obis_2_8_0, day_wh]."""
        return _page(self.core.regs.daily_records(), since)

    def billing_monthly(self, since):
        """Monthly frozen records of months after `since` (year*12 + month-1),
        oldest first, at most BILLING_PAGE. Each is [month, obis_1_8_0,
        obis_1_8_1 .. obis_1_8_4, obis_2_8_0, month_wh, max_demand_w]."""
        return _page(self.core.regs.monthly_records(), since)

    def state(self):
        return self.core.state()

    def commit(self):
        self.core.durable.commit()


def _page(records, since):
    out = []
    for rec in records:
        if rec[0] > since and len(out) < BILLING_PAGE:
            out.append(rec)
    return out
