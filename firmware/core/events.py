# What happened in the meter -> events for the head-end (docs/protocol.md,
# "Events"). The credit engine, the revenue source and the registers report
# outcomes in their own terms; this module names the wire event for each and
# queues it in the outbox, which gives it its seq. In the fault state nothing
# can be queued durably: events wait in `link_events`, which the app sends
# live and never stores.
from firmware.link.outbox import Outbox


class Events:
    def __init__(self, clock, durable):
        self.clock = clock
        self.durable = durable       # told when an event makes a snapshot due
        self.outbox = None           # open()
        self.seq = 0                 # seq of the newest event queued
        self.fault = None            # the store's fault code: events go live
        self.link_events = []        # events that could not be queued durably (fault state)
        # frozen records last seen (records held, ring head): watch()
        self.days_n = self.days_head = self.months_n = self.months_head = 0

    def open(self, path, meter_id, seq, fault):
        """The outbox, with events above `seq` (the durable state's) forgotten:
        a seq the server has seen is never reused after a cut."""
        self.seq = seq
        self.fault = fault
        self.outbox = Outbox(path, meter_id, seq_floor=seq)
        if not fault:
            # the snapshot's events the outbox file did not hold yet
            self.outbox.merge(self.durable.obt)
            self.outbox.forget_above(seq)
        self.durable.obt = None

    def add(self, kind, fields):
        """Queue one event; returns its seq (None when not queued)."""
        if self.fault:
            fields["kind"] = kind
            self.link_events.append(fields)
            return None
        # not saved here: the snapshot that the work commits holds it
        # (Durable.snapshot, "obt"), and Durable.tidy() writes the file
        seq = self.outbox.add(kind, fields, self.clock.utc_s(), False)
        if seq:
            self.seq = seq
        self.durable.dirty = True
        return seq

    def metering(self, kind, utc_s, value):
        """Revenue's on_event: metering_fault, reverse_energy, cover_open/closed."""
        self.add("fault" if kind == "metering_fault" else "tamper", {"code": kind, "value": value})

    def from_engine(self, engine):
        """The engine's outcomes since the last call (CreditEngine.pop_events:
        tuples, kind first, fields in the order their emitters document).
        Returns the seq of the top-up event among them, else None."""
        topup_seq = None
        for e in engine.pop_events():
            k = e[0]
            if k == "entry":     # credit/ledger.py
                _, _, entry, ref, amount_minor, balance_minor, reason, wh = e
                f = {"entry": entry, "amount_minor": amount_minor, "balance_minor": balance_minor,
                     "reason": reason, "wh": wh}
                if entry == "topup" and type(ref) is int:  # the head-end matches it to its order
                    f["order"] = ref
                    topup_seq = self.add("topup", f)
                else:   # an offline token's top-up (ref "tok<count>") is a ledger event
                    f["ref"] = str(ref)
                    self.add("ledger", f)
            elif k == "relay":   # credit/policy.py
                _, closed, reason, balance_minor = e
                self.add("relay", {"closed": closed, "reason": reason, "balance_minor": balance_minor})
            elif k == "warn":
                _, frm, level, balance_minor = e
                self.add("warning", {"from": frm, "level": level, "balance_minor": balance_minor})
            elif k in ("tariff", "tariff_pending"):   # credit/engine.py: versions, or version and when
                self.add("tariff", {"event": k, "a": e[1], "b": e[2]})
            elif k == "mode":
                self.add("mode", {"mode": e[1]})
            elif k in ("trip", "retry", "lockout", "prot_reset"):   # credit/protection.py
                self.add("protection", {"event": k, "what": str(e[1])})
            elif k == "remote":
                self.add("remote", {"action": e[1]})
        return topup_seq

    def watch(self, regs):
        """Start from the registers' frozen records as they are now."""
        self.days_n, self.days_head = regs.days_n, regs.days_head
        self.months_n, self.months_head = regs.months_n, regs.months_head

    def frozen(self, regs):
        """An event for each ring of frozen records that moved since the last
        call (ints compared, so a tick allocates nothing here)."""
        if regs.days_n != self.days_n or regs.days_head != self.days_head:
            rec = regs.last_daily()   # not all 62 built to take the last
            if rec:
                day, imp, exp, wh = rec
                self.add("frozen_daily", {"day": day, "obis_1_8_0": imp, "obis_2_8_0": exp, "wh": wh})
        if regs.months_n != self.months_n or regs.months_head != self.months_head:
            rec = regs.last_monthly()
            if rec:
                # [month, 1.8.0, 1.8.1..1.8.4, 2.8.0, month Wh, max demand W]
                self.add("frozen_monthly", {"month": rec[0], "obis_1_8_0": rec[1],
                                            "obis_2_8_0": rec[6], "wh": rec[7], "md_w": rec[8]})
        self.watch(regs)
