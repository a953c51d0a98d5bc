# Validate and dispatch head-end commands to the meter facade; build the ack.
# Every payload gets exactly one ack. A rejected command changes nothing: not
# the counter, not the order record, and the facade is not called.
#
# The facade is firmware/core/facade.py, on top of the meter core and its
# credit engine.
# Methods and return values (reason = None on success, else a short string):
#   topup(order_id, amount_minor) -> (result, balance_after_minor, seq)
#       result "credited" or a reason; seq = the "topup" event's seq.
#       Applies in RAM only; commit() makes it durable (see below).
#   tariff(version, activate_utc_s, tariff_dict) -> reason   (0 = activate now)
#   relay(action) -> reason                 action "connect" | "disconnect"
#   set_mode(mode) -> reason                mode "prepaid" | "postpaid"
#   configure(settings_dict) -> reason      keys/ranges checked here (CONFIG)
#   set_time(utc_s) -> reason
#   utc_now() -> utc seconds, or None while the clock is unsynced
#   state() -> dict                         the state snapshot (docs/protocol.md)
#   billing(since) -> list of lists         daily frozen records, day > since
#   billing_monthly(since) -> list of lists monthly frozen records, month > since
#   token(text, commit) -> "<code> <amount_minor> <balance_minor>[ #<count>]"
#                                           an offline token relayed by the server
#                                           (firmware/tokens/entry.py); commit=False:
#                                           the dispatcher commits
#   commit()                                persist ledger + dump() of this
#                                           dispatcher in ONE atomic record;
#                                           raise if that fails
# Facade reasons in use: "bad_tariff", "not_permitted", "store_failed", "limit",
# "busy" (the outbox is full of undelivered credit events: try again later).
#
# Order of checks (docs/protocol.md): size, JSON, version, meter id, MAC, fields;
# then a top-up already in the order record is answered "duplicate" with its
# original balance and seq even when its counter is stale (QoS 1 redelivery),
# and one outside the record "order_forgotten" or "order_too_old" alike
# (firmware/link/orders.py); then counter (firmware/link/replay.py), expiry;
# then the facade.
import sys

from micropython import const

from firmware.link import protocol as P
from firmware.link.orders import OrderBook, MAX_ORDER
from firmware.link.replay import CounterWindow

_MAX_TOPUP_MINOR = const(100000000)   # 1,000,000.00 in a 2-decimal currency
# Larger than a 31-bit small int, so plain ints rather than const().
MAX_CTR = 0xFFFFFFFFFFFF             # 2**48 - 1: room for millisecond counters
MAX_UTC = 0xFFFFFFFF
_MIN_TIME_UTC = const(1577836800)     # 2020-01-01: a time sync earlier than this is wrong
MAX_INT31 = 0x7FFFFFFF
INTERNAL = "internal"                # the facade raised: a bug, logged by the app

_COMMON = ("v", "meter", "ctr", "exp", "kind", "mac")

# kind -> ((field, lo, hi) for ints | (field, choices tuple) | (field, dict)), optional fields
_OBJ = dict
KINDS = {
    "topup": ((("order", 1, MAX_ORDER), ("amount_minor", 1, _MAX_TOPUP_MINOR)), ()),
    "tariff": ((("version", 1, MAX_INT31), ("activate_utc_s", 0, MAX_UTC), ("tariff", _OBJ)), ()),
    "relay": ((("action", ("connect", "disconnect")),), ()),
    "mode": ((("mode", ("prepaid", "postpaid")),), ()),
    "config": ((("settings", _OBJ),), ()),
    "time": ((("utc_s", _MIN_TIME_UTC, MAX_UTC),), ()),
    "query": ((("what", ("state", "commlog", "billing", "billing_monthly", "events")),), (("since", 0, MAX_CTR),)),
    "token": ((("token", str),), ()),
    "ota": ((("manifest", _OBJ),), ()),   # an update offer: firmware/ota/offer.py checks the manifest
}
# Reserved for a later issue, refused as unknown_kind today: "update".
# (Over-the-air updates are the "ota" kind: docs/ota.md.)
_MAX_TOKEN_CHARS = const(32)   # 12 digits with room for spaces and dashes

# config settings: name -> (lo, hi); "holidays" is a list of YYYYMMDD ints.
CONFIG = {
    "warn1_minor": (0, _MAX_TOPUP_MINOR),
    "warn2_minor": (0, _MAX_TOPUP_MINOR),
    "emergency_credit_minor": (0, _MAX_TOPUP_MINOR),
    "report_interval_s": (60, 86400),
    "state_interval_s": (10, 86400),
    "friendly_start_min": (0, 1439),
    "friendly_end_min": (0, 1439),
    "friendly_weekends": (0, 1),
    "reconnect_needs_press": (0, 1),
    "utc_offset_min": (-720, 840),
    "holidays": (19700101, 99991231),
}
_MAX_HOLIDAYS = const(32)


def _int_in(v, lo, hi):
    return type(v) is int and lo <= v <= hi


def _check_field(spec, v):
    if len(spec) == 3:
        return _int_in(v, spec[1], spec[2])
    want = spec[1]
    if want is _OBJ:
        return type(v) is dict
    if want is str:
        return type(v) is str and 0 < len(v) <= _MAX_TOKEN_CHARS
    return type(v) is str and v in want


def _check_settings(s):
    if not s:
        return P.MISSING_FIELD
    for k in s:
        lim = CONFIG.get(k)
        if lim is None:
            return P.UNKNOWN_FIELD
        v = s[k]
        if k == "holidays":
            if type(v) is not list or len(v) > _MAX_HOLIDAYS:
                return P.BAD_FIELD
            for d in v:
                if not _int_in(d, lim[0], lim[1]):
                    return P.BAD_FIELD
        elif not _int_in(v, lim[0], lim[1]):
            return P.BAD_FIELD
    return None


def validate(obj):
    """Field check of an authentic command. Returns (kind, reason)."""
    kind = obj.get("kind")
    if type(kind) is not str:
        return None, P.MISSING_FIELD if kind is None else P.BAD_FIELD
    spec = KINDS.get(kind)
    if spec is None:
        return kind, P.UNKNOWN_KIND
    if "ctr" not in obj or "exp" not in obj:
        return kind, P.MISSING_FIELD
    if not _int_in(obj["ctr"], 1, MAX_CTR) or not _int_in(obj["exp"], 0, MAX_UTC):
        return kind, P.BAD_FIELD
    required, optional = spec
    for f in required:
        if f[0] not in obj:
            return kind, P.MISSING_FIELD
        if not _check_field(f, obj[f[0]]):
            return kind, P.BAD_FIELD
    for f in optional:
        if f[0] in obj and not _check_field(f, obj[f[0]]):
            return kind, P.BAD_FIELD
    n_known = len(_COMMON) + len(required)
    for f in optional:
        if f[0] in obj:
            n_known += 1
    if len(obj) != n_known:
        return kind, P.UNKNOWN_FIELD
    if kind == "config":
        return kind, _check_settings(obj["settings"])
    return kind, None


def head_ack(meter_id, raw):
    """The start of an ack for a command read only from its first
    HEAD_BYTES (docs/protocol.md, "Oversized commands"): `ctr` and a known
    `kind`, as they stand there, unauthenticated; `ctr` 0 when unreadable."""
    head = bytes(raw[:P.HEAD_BYTES])   # raw may be a view (Session.run)
    ack = {"v": P.VERSION, "meter": meter_id, "ctr": 0}
    ctr = P.head_int(head, b'"ctr":')
    if _int_in(ctr, 1, MAX_CTR):
        ack["ctr"] = ctr
    kind = P.head_str(head, b'"kind":"')
    if kind in KINDS:
        ack["kind"] = kind
    return ack


class Dispatcher:
    """One per meter. handle(payload) -> ack wire bytes (publish on .../ack).

    The used counters and the order record are the state that must survive
    power cuts: facade.commit() persists dump() together with the ledger."""

    def __init__(self, meter_id, key, facade, orders=None, commlog=None, outbox=None, state=None):
        self.meter_id = meter_id
        self.signer = P.Signer(key)
        self.facade = facade
        self.orders = orders or OrderBook()
        self.commlog = commlog
        self.outbox = outbox
        # the "query state" answer: the body of the retained state message
        # (the app adds the link's fields); the facade's own state() otherwise
        self.state = state or facade.state
        self.ctrs = CounterWindow()
        self.last_error = None   # repr of the last internal error, for the app's log
        # counter of a command that raised while changing the meter: its RAM
        # state may be half changed, and the app restarts from the flash
        # state once the command's ack has left
        self.failed_ctr = None
        self.poisoned_ctr = -1   # a command counter to refuse without trying
        self._query_ctr = None   # a query's counter, used once its answer is signed

    # -- persistence of the used counters and the order record
    def dump(self):
        """The used counters and the order record, JSON-able, for the
        meter's state snapshot (they must commit with the ledger).
        [highest counter (what firmware before the window reads), order
        rows, counter window rows]."""
        return [self.ctrs.last, self.orders.rows(), self.ctrs.rows()]

    def load(self, data):
        self.orders.load_rows(data[1])
        if len(data) > 2:
            self.ctrs.load_rows(data[2])
        else:
            # written before the window existed: every counter up to the
            # highest counts as used
            self.ctrs.load_rows([data[0]])

    # -- the one entry point
    def handle(self, raw):
        """One signed ack for one payload, whatever happens inside: an error
        in the dispatcher or the facade, or an answer with no canonical form,
        is answered "rejected"/"internal" (and kept in last_error)."""
        if len(raw) > P.MAX_CMD_BYTES:
            return self.oversized(bytes(raw[:P.HEAD_BYTES]), len(raw))
        ack = {"v": P.VERSION, "meter": self.meter_id, "ctr": 0}
        self._query_ctr = None
        try:
            self._run(raw, ack)
        except Exception as e:   # a bug outside the facade: the ack still leaves
            self._internal(ack, e)
        return self._seal(ack)

    def oversized(self, head, size):
        """The ack for a payload over MAX_CMD_BYTES, of which the link kept
        only the first bytes (`head`): docs/protocol.md, "Oversized
        commands". Nothing is parsed beyond the counter and the kind, and
        nothing changes: the counter is not authenticated, so not used."""
        ack = {"v": P.VERSION, "meter": self.meter_id, "ctr": 0}
        self._query_ctr = None
        try:
            ack = head_ack(self.meter_id, head)
        except Exception as e:
            self._internal(ack, e)
        if self.commlog:
            self.commlog.add("cmd", "%s:%d" % (ack.get("kind", "?"), ack["ctr"]))
            self.commlog.add("big", str(size))
        self._reject(ack, P.OVERSIZED)
        return self._seal(ack)

    def _internal(self, ack, e):
        self.last_error = repr(e)
        for k in ("data", "balance_minor", "seq"):
            ack.pop(k, None)
        self._reject(ack, INTERNAL)

    def _seal(self, ack):
        now = self.facade.utc_now()
        if now is not None:
            ack["t"] = now
        try:
            wire = P.sign(self.signer, ack)
        except Exception as e:
            # the facade returned a value with no canonical form (a bug), or
            # the heap had no room for the answer: the short ack has both
            self._internal(ack, e if not isinstance(e, P.CanonError) else "uncanonical reply: %s" % e)
            wire = P.sign(self.signer, ack)
        if self._query_ctr is not None and ack["result"] == "ok":
            # a query's counter is used only once its answer has left, so a
            # refused answer leaves the counter as it was (nothing changed)
            self.ctrs.accept(self._query_ctr)
        if self.commlog:
            self.commlog.add("ack", ack.get("reason") or ack["result"])
        return wire

    def _reject(self, ack, reason):
        ack["result"] = "rejected"
        ack["reason"] = reason

    def _run(self, raw, ack):
        obj, reason = P.parse(raw)
        if reason:
            return self._reject(ack, reason)
        # echo what we can, so the head-end can match even a rejection
        ctr = obj.get("ctr")
        if _int_in(ctr, 0, MAX_CTR):
            ack["ctr"] = ctr
        kind = obj.get("kind")
        if type(kind) is str and kind in KINDS:
            ack["kind"] = kind
        if self.commlog:
            self.commlog.add("cmd", "%s:%d" % (ack.get("kind", "?"), ack["ctr"]))
        if obj.get("v") != P.VERSION or type(obj.get("v")) is not int:
            return self._reject(ack, P.BAD_VERSION)
        if obj.get("meter") != self.meter_id:
            return self._reject(ack, P.WRONG_METER)
        reason = P.check_mac(self.signer, obj, raw)
        if reason:
            return self._reject(ack, reason)
        kind, reason = validate(obj)
        if reason:
            return self._reject(ack, reason)
        if kind == "topup":
            order = obj["order"]
            ack["order"] = order
            hit = self.orders.find(order)
            if hit is not None:
                # authentic repeat: harmless, answered with the original result
                ack["result"] = "duplicate"
                ack["balance_minor"] = hit[0]
                ack["seq"] = hit[1]
                self.ctrs.accept(ctr)   # a no-op for a used counter
                return
            # outside the record: the same answer to a redelivery (a stale
            # counter) as to a reissue (a fresh one), so the head-end never
            # sees a retryable "replayed" for an order no counter can help
            if self.orders.forgotten(order):
                ack["order_floor"] = self.orders.floor
                return self._reject(ack, P.ORDER_FORGOTTEN)
            if self.orders.too_old(order):
                return self._reject(ack, P.ORDER_TOO_OLD)
        if not self.ctrs.fresh(ctr):
            return self._reject(ack, P.REPLAYED)
        # a clock far ahead must not lock out the time sync that would fix it
        now = self.facade.utc_now()
        if kind != "time" and now is not None and now > obj["exp"]:
            return self._reject(ack, P.EXPIRED)
        if ctr == self.poisoned_ctr:
            # this very command stopped the meter before (see the app): once
            # is a mishap, twice would be a reset loop
            return self._reject(ack, INTERNAL)
        try:
            self._apply(kind, obj, ack)
        except Exception as e:
            sys.print_exception(e)  # to the serial console, for a technician
            if kind != "query":     # a query changes nothing in the meter
                self.failed_ctr = ctr
            return self._internal(ack, e)

    def _apply(self, kind, obj, ack):
        f = self.facade
        ctr = obj["ctr"]
        if kind == "query":
            data = self._query(obj["what"], obj.get("since", 0))
            if type(data) is str:
                return self._reject(ack, data)
            # accepted in _seal once the answer is signed; persisted with the
            # next commit (a query replayed after a cut is harmless)
            self._query_ctr = ctr
            ack["result"] = "ok"
            ack["data"] = data
            return
        if kind == "topup":
            result, balance, seq = f.topup(obj["order"], obj["amount_minor"])
            if result != "credited":
                return self._reject(ack, result)
            self.orders.add(obj["order"], balance, seq)
            ack["balance_minor"] = balance
            ack["seq"] = seq
        elif kind == "token":
            # the command is carried out whatever the token's own result
            # ("used", "invalid", ...): that result is the answer's data,
            # and the token window moves in the same commit as the counter
            r = f.token(obj["token"], False).split()
            ack["data"] = {"result": r[0], "amount_minor": int(r[1]),
                           "count": int(r[3][1:]) if len(r) > 3 else -1}
            ack["balance_minor"] = int(r[2])
            result = "ok"
        else:
            if kind == "tariff":
                reason = f.tariff(obj["version"], obj["activate_utc_s"], obj["tariff"])
            elif kind == "relay":
                reason = f.relay(obj["action"])
            elif kind == "mode":
                reason = f.set_mode(obj["mode"])
            elif kind == "config":
                reason = f.configure(obj["settings"])
            elif kind == "ota":
                reason = f.ota(obj["manifest"])
            else:
                reason = f.set_time(obj["utc_s"])
            if reason:
                return self._reject(ack, reason)
            result = "ok"
        self.ctrs.accept(ctr)
        f.commit()
        ack["result"] = result

    def _query(self, what, since):
        if what == "state":
            return P.wire(self.state())
        if what == "billing":
            return self.facade.billing(since)
        if what == "billing_monthly":
            return self.facade.billing_monthly(since)
        if what == "commlog":
            return self.commlog.entries() if self.commlog else []
        # events: republish what the outbox still holds after `since`
        if self.outbox is None:
            return "not_permitted"
        first, last = self.outbox.rewind(since)
        return {"first": first, "last": last}
