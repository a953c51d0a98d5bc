# What the customer sees: the view (every figure the screens show, as
# integers in one preallocated array) and the 12 screens drawn from it into
# the renderer's text rows (firmware/ui/render.py). docs/screens.md shows
# each screen; the words are message ids into a language table
# (firmware/ui/texts.py).
#
# fill() reads the meter's objects in place and compose() writes cells:
# neither allocates (tests/test_ui_render.py, under heap_lock), so the LCD
# path makes no garbage. A figure the meter does not know is _NA and shows
# as "--".
#
# The view's slots. The forecast (firmware/credit/forecast.py) fills the
# ones marked F, through Panel.forecast (firmware/ui/panel.py); until it
# does they stay _NA:
#   _KWH_LEFT   F kWh the balance buys from now on, in Wh
#   _KWH_EST    F 1 when that is an estimate (the price can change), else 0
#   _DAYS_X10   F days left, in tenths of a day
#   _DAYS_BASIS F days of history the forecast averaged (7, fewer on a new meter)
#   _TODAY_COST F cost of today's energy, minor units
#   _MONTH_COST F cost of this month's energy, minor units
import array
from micropython import const

from firmware.localtime import _civil_packed
from firmware.ui.render import INVERSE, BIG

_NA = const(-0x3FFFFFFF)   # not known; a small int on a 32-bit port too
_BAL = const(0)            # balance, minor units
_DEC = const(1)            # decimals of the currency
_CLOSED = const(2)         # 1 relay closed
_REASON = const(3)         # _R_* below
_LEVEL = const(4)          # warning level 0..n (credit/policy.py)
_FAULT = const(5)          # E-number of a store or config fault (supply off), else 0
_LINK_FAULT = const(6)     # E-number of a provisioning fault that stops the link, else 0
_LANG_FAULT = const(7)     # E65 when the configured language is not shipped
_OFFER = const(8)          # what a long press does here: _A_* below
_EC = const(9)             # emergency credit a long press lends, minor units
_OWED = const(10)          # emergency credit still owed, minor units
_FR_END = const(11)        # second of day the friendly period ends, or _NA
_RETRY = const(12)         # seconds until a protection trip retries, or _NA (locked out)
_POWER = const(13)         # W
_VOLT = const(14)          # V
_AMP = const(15)           # mA
_PF = const(16)            # power factor, thousandths
_IMPORT = const(17)        # Wh, 1.8.0
_TODAY = const(18)         # Wh today
_MONTH = const(19)         # Wh this month
_TODAY_COST = const(20)
_MONTH_COST = const(21)
_KWH_LEFT = const(22)
_KWH_EST = const(23)
_DAYS_X10 = const(24)
_DAYS_BASIS = const(25)
_PRICE = const(26)         # price of the next kWh now, thousandths of a minor unit
_PERIOD = const(27)        # _M_SHARP.._M_VALLEY, or _NA for a period with another name
_PERIOD_N = const(28)      # period index
_NEXT_CHANGE = const(29)   # second of day the period changes next, or _NA
_TIER = const(30)          # tier index (0 = first)
_TIER_LEFT = const(31)     # Wh left in this tier, or _NA in the last
_NEXT_PRICE = const(32)    # price in the next tier (same period), or _NA
_TOPUP = const(33)         # last top-up, minor units, or _NA
_TOPUP_DAY = const(34)     # its local day number
_TOPUP_SOD = const(35)     # its local second of day
_TOKEN = const(36)         # last offline token result, or _NA (no tokens yet)
_SIGNAL = const(37)        # dBm, or _NA
_REG = const(38)           # modem registration (+CREG stat), or _NA
_UP = const(39)            # 1 link up
_HEARD_DAY = const(40)     # local day of the last exchange with the server, or _NA
_HEARD_SOD = const(41)
_PENDING = const(42)       # events not yet delivered
_P1 = const(43)            # 1.8.1 .. 1.8.4 are _P1 .. _P1 + 3
_EXPORT = const(47)        # Wh, 2.8.0
_MD = const(48)            # this month's maximum 15-min demand, W
_DAY = const(49)           # local day number now
_SOD = const(50)           # local second of day now
_SYNCED = const(51)        # 1 clock synced
_ALARM = const(52)         # 1 the alarm sounds (a long press silences it)
_SLOTS = const(53)

# relay reasons, in the customer's words on the supply screen
_R_OK = const(0)
_R_CREDIT = const(1)
_R_PRESS = const(2)
_R_FRIENDLY = const(3)
_R_POWER = const(4)
_R_HIGH_V = const(5)
_R_LOW_V = const(6)
_R_UTILITY = const(8)
_R_FAULT = const(9)
_R_LOCK_POWER = const(10)
_R_LOCK_HIGH_V = const(11)
_R_LOCK_LOW_V = const(12)

# long-press actions a screen offers
A_NONE = const(0)
A_RECONNECT = const(1)
A_EMERGENCY = const(2)
A_SILENCE = const(3)

HOME = const(0)
SUPPLY = const(7)
N_SCREENS = const(12)
_E_LANGUAGE = const(65)    # docs/error-codes.md

# message ids: line n of each table in firmware/ui/texts.py
_M_T_BALANCE = const(0)
_M_T_ENERGY = const(1)
_M_T_DAYS = const(2)
_M_T_USE = const(3)
_M_T_POWER = const(4)
_M_T_PRICE = const(5)
_M_T_TOPUP = const(6)
_M_T_SUPPLY = const(7)
_M_T_LINK = const(8)
_M_T_TOTALS = const(9)
_M_T_METER = const(10)
_M_T_ERRORS = const(11)
_M_ON = const(12)
_M_OFF = const(13)
_M_NO_CREDIT = const(14)
_M_TOP_UP = const(15)
_M_PRESS = const(16)
_M_RECONNECT = const(17)
_M_FRIENDLY = const(18)
_M_UNTIL = const(19)
_M_OVERLOAD = const(20)
_M_HIGH_V = const(21)
_M_LOW_V = const(22)
_M_RETRY = const(23)
_M_LOCKED = const(24)
_M_UTILITY = const(25)
_M_BY_UTILITY = const(26)
_M_FAULT = const(27)
_M_CALL = const(28)
_M_LOW = const(29)
_M_EC_OWED = const(30)
_M_REPAID = const(31)
_M_ALL_OK = const(32)
_M_HOLD_EC = const(33)
_M_HOLD_RECONNECT = const(34)
_M_HOLD_SILENCE = const(35)
_M_TAKE_EC = const(36)
_M_CREDIT_OF = const(37)
_M_NEXT_TOPUP = const(38)
_M_REPAYS = const(39)
_M_HOLD_YES = const(40)
_M_PRESS_NO = const(41)
_M_EC_TAKEN = const(42)
_M_REFUSED = const(43)
_M_NOT_LOW = const(44)
_M_IN_USE = const(45)
_M_DISABLED = const(46)
_M_NOT_PREPAID = const(47)
_M_RECONNECTED = const(48)
_M_SILENCED = const(49)
_M_ESTIMATE = const(50)
_M_AT_PRICE = const(51)
_M_DAYS = const(52)
_M_AVG_OF = const(53)
_M_DAY_UNIT = const(54)
_M_TODAY = const(55)
_M_MONTH = const(56)
_M_SHARP = const(57)
_M_PEAK = const(58)
_M_FLAT = const(59)
_M_VALLEY = const(60)
_M_NEXT = const(61)
_M_TIER = const(62)
_M_THEN = const(63)
_M_REF = const(64)
_M_TOKEN = const(65)
_M_NONE_YET = const(66)
_M_SIGNAL = const(67)
_M_REG_HOME = const(68)
_M_REG_ROAM = const(69)
_M_REG_NO = const(70)
_M_SERVER_UP = const(71)
_M_SERVER_DOWN = const(72)
_M_LAST = const(73)
_M_PENDING = const(74)
_M_MAX = const(75)
_M_ID = const(76)
_M_FW = const(77)
_M_UNSYNCED = const(78)
_M_NO_ERRORS = const(79)
_M_TO_TIER = const(80)
_M_LINK_OFF = const(81)
_M_BAD_LANG = const(82)

# result screens (Panel.result): what an action did
RES_EC_TAKEN = const(_M_EC_TAKEN)
RES_RECONNECTED = const(_M_RECONNECTED)
RES_SILENCED = const(_M_SILENCED)
RES_REFUSED = const(_M_REFUSED)

_FIRMWARE = const(b"0.14.0")
_KWH = const(b"kWh")
_PER_KWH = const(b"/kWh")
_DBM = const(b"dBm")


class View:
    """The figures of every screen: n (ints, the slots above) and the few
    texts (meter id, currency, order ref), as bytes made when they change."""

    def __init__(self, meter_id, currency):
        n = self.n = array.array("i", bytes(4 * _SLOTS))
        for i in range(_SLOTS):
            n[i] = _NA
        self.id = meter_id.encode()
        self.unit = currency.encode()
        self.ref = b""
        self.topup = None    # the engine's last_topup that ref was made from

    def news(self, engine):
        """Make the texts that changed into bytes: the order reference of a
        new top-up. Outside the frame (it allocates, once per top-up)."""
        t = engine.last_topup
        if t is not self.topup:
            self.topup = t
            self.ref = str(t[0]).encode() if t else b""


def fill(v, app, lang_fault):
    """Read the meter into the view, in place. app: the firmware's App."""
    n = v.n
    core = app.core
    e = core.engine
    p = e.policy
    led = e.ledger
    tar = e.tariff
    n[_BAL] = led.balance_minor
    n[_DEC] = core.cfg["decimals"]
    n[_LANG_FAULT] = _E_LANGUAGE if lang_fault else 0
    n[_LINK_FAULT] = app.fault_lcd() if app.config_fault and not core.fault else 0
    n[_LEVEL] = p.level
    n[_OWED] = led.owed_minor()
    n[_EC] = e.emergency_minor
    if core.fault:
        n[_FAULT] = core.durable.store.lcd_code()
        n[_CLOSED] = 0
        n[_REASON] = _R_FAULT
    else:
        n[_FAULT] = 0
        n[_CLOSED] = 1 if p.relay_closed else 0
        n[_REASON] = _reason(p.relay_reason) if not p.relay_closed or p.relay_reason == "friendly" else _R_OK
    n[_ALARM] = 1 if p.alarm == 2 else 0   # policy.REPEAT: sounds until a press
    r = n[_REASON]
    n[_RETRY] = _NA
    if _R_POWER <= r <= _R_LOW_V:
        for t in e.protection.trips:
            if t and t.phase == 1:
                n[_RETRY] = t.retry_s - t.open_s
    # local time from the last tick (the RTC read allocates on an ESP32)
    now = e.now_s
    day = now // 86400
    sod = now - day * 86400
    n[_DAY] = day
    n[_SOD] = sod
    n[_SYNCED] = 1 if core.clock.synced else 0
    n[_FR_END] = _NA
    if r == _R_FRIENDLY:
        n[_FR_END] = 0   # a weekend or holiday: until midnight
        for w in e.friendly.windows:
            if (w[0] <= sod < w[1]) or (w[0] > w[1] and (sod >= w[0] or sod < w[1])):
                n[_FR_END] = w[1]
    # what a long press does, here and on the supply screen
    if core.fault:
        n[_OFFER] = A_NONE
    elif r == _R_PRESS or _R_LOCK_POWER <= r <= _R_LOCK_LOW_V:
        n[_OFFER] = A_RECONNECT
    elif e.emergency_refusal() is None:
        n[_OFFER] = A_EMERGENCY
    elif n[_ALARM]:
        n[_OFFER] = A_SILENCE
    else:
        n[_OFFER] = A_NONE
    # power
    m = core.meas
    n[_POWER] = _opt(m.power_w)
    n[_VOLT] = _opt(m.voltage_v)
    adc = core.revenue.adc if core.revenue else None
    n[_AMP] = adc.irms_ma if adc else _NA
    n[_PF] = adc.pf_milli if adc else _NA
    # energy
    g = core.regs
    n[_IMPORT] = g.import_wh
    n[_TODAY] = g.today_wh
    n[_MONTH] = g.month_wh
    for i in range(4):
        n[_P1 + i] = g.period_wh[i]
    n[_EXPORT] = g.export_wh
    n[_MD] = g.md_w
    # price: as CreditEngine.price_now(), read in place (it returns a tuple)
    tier = tar.tier_of(e.month_wh)
    if e.synced:
        dt = e._dt if day == e._dt_day else 0
        period = tar.period_of(dt, sod)
        nxt = tar.next_switch_s if tar.tou else _NA
        n[_NEXT_CHANGE] = nxt if nxt < 86400 else (0 if tar.tou else _NA)
    else:
        period = tar.unsynced_period
        n[_NEXT_CHANGE] = _NA
    n[_PERIOD_N] = period if tar.tou else _NA
    n[_PERIOD] = _period_msg(tar.period_names[period]) if tar.tou else _NA
    n[_PRICE] = tar.prices[tier][period]
    n[_TIER] = tier
    room = tar.tier_room_wh(tier, e.month_wh)
    n[_TIER_LEFT] = room if room >= 0 else _NA
    n[_NEXT_PRICE] = tar.prices[tier + 1][period] if room >= 0 else _NA
    # last top-up
    t = e.last_topup
    if t is None:
        n[_TOPUP] = _NA
    else:
        n[_TOPUP] = t[1]
        n[_TOPUP_DAY] = t[2] // 86400
        n[_TOPUP_SOD] = t[2] % 86400
    n[_TOKEN] = _NA
    # link
    s = app.session
    n[_UP] = 1 if s and s.up else 0
    n[_HEARD_DAY] = _NA
    if s and s.heard_s:
        local = s.heard_s + core.clock.utc_offset_s
        n[_HEARD_DAY] = local // 86400
        n[_HEARD_SOD] = local % 86400
    md = app.modem
    n[_SIGNAL] = _opt(md.at.rssi_dbm) if md else _NA
    n[_REG] = _opt(md.at.reg) if md else _NA
    n[_PENDING] = core.events.outbox.pending()


def _opt(x):
    return _NA if x is None else x


def _reason(why):
    if why == "credit":
        return _R_CREDIT
    if why == "await_press":
        return _R_PRESS
    if why == "friendly":
        return _R_FRIENDLY
    if why == "over_power":
        return _R_POWER
    if why == "over_voltage":
        return _R_HIGH_V
    if why == "under_voltage":
        return _R_LOW_V
    if why == "over_power_lockout":
        return _R_LOCK_POWER
    if why == "over_voltage_lockout":
        return _R_LOCK_HIGH_V
    if why == "under_voltage_lockout":
        return _R_LOCK_LOW_V
    if why == "remote_disconnect":
        return _R_UTILITY
    if why == "store_fault":
        return _R_FAULT
    return _R_OK


def _period_msg(name):
    if name == "sharp":
        return _M_SHARP
    if name == "peak":
        return _M_PEAK
    if name == "flat":
        return _M_FLAT
    if name == "valley":
        return _M_VALLEY
    return _NA


# --- composing: each screen writes the rows of r (a render.Renderer)
def compose(r, v, k):
    """Screen k (0 = home) from view v into r's rows."""
    r.clear()
    n = v.n
    if k != HOME:
        r.kind[0] = INVERSE
        r.msg(0, 0, k)   # the titles are messages 0-11, in screen order
    if k == HOME:
        _home(r, v, n)
    elif k == 1:
        _big_or_na(r, n[_KWH_LEFT] // 100 if n[_KWH_LEFT] != _NA else _NA, 1)
        r.text(4, 0, _KWH)
        if n[_KWH_LEFT] != _NA:
            r.msg(5, 0, _M_ESTIMATE if n[_KWH_EST] else _M_AT_PRICE)
    elif k == 2:
        _big_or_na(r, n[_DAYS_X10], 1)
        r.msg(4, 0, _M_DAYS)
        if n[_DAYS_BASIS] != _NA:
            x = r.msg(5, 0, _M_AVG_OF)
            x = r.num(5, x, n[_DAYS_BASIS])
            r.msg(5, x, _M_DAY_UNIT)
    elif k == 3:
        _use(r, v, 1, _M_TODAY, n[_TODAY], n[_TODAY_COST])
        _use(r, v, 4, _M_MONTH, n[_MONTH], n[_MONTH_COST])
    elif k == 4:
        _unit(r, 2, n[_POWER], 0, 87)            # W
        _unit(r, 3, n[_VOLT], 0, 86)             # V
        _unit(r, 4, n[_AMP], 3, 65)              # A, from mA
        x = r.text(5, 0, b"PF ")
        if n[_PF] == _NA:
            r.dashes(5, x)
        else:
            r.num(5, x, n[_PF] // 10, 2)
    elif k == 5:
        _price(r, v, n)
    elif k == 6:
        _topup(r, v, n)
    elif k == SUPPLY:
        r.msg(2, 0, _M_ON if n[_CLOSED] else _M_OFF)
        _status(r, n, 4)
        _hint(r, n, 7)
    elif k == 8:
        _link(r, n)
    elif k == 9:
        _reg(r, 1, b"1.8.0 ", n[_IMPORT])
        for i in range(4):
            r.rows[2 + i][0:6] = b"1.8.1 "
            r.rows[2 + i][4] = 49 + i
            r.num(2 + i, 6, n[_P1 + i], 3)
        _reg(r, 6, b"2.8.0 ", n[_EXPORT])
        x = r.msg(7, 0, _M_MAX)
        x = r.num(7, x, n[_MD])
        r.text(7, x + 1, b"W")
    elif k == 10:
        x = r.msg(2, 0, _M_ID)
        r.text(2, x, v.id)
        x = r.msg(3, 0, _M_FW)
        r.text(3, x, _FIRMWARE)
        _date(r, 5, 0, n[_DAY])
        x = _time(r, 6, 0, n[_SOD], 1)
        if not n[_SYNCED]:
            r.char(6, x + 1, 11)
            r.msg(7, 0, _M_UNSYNCED)
    else:
        _errors(r, n)


def _home(r, v, n):
    r.kind[0] = INVERSE
    if n[_FAULT]:
        # the stored balance cannot be trusted: no number rather than a wrong one
        x = r.msg(0, 0, _M_FAULT)
        r.kind[1] = BIG
        r.char(1, 0, 69)
        r.num(1, 1, n[_FAULT])
        r.msg(4, 0, _M_OFF)
        _status(r, n, 5)
        return
    x = r.msg(0, 0, _M_T_BALANCE)
    r.text(0, x + 1, v.unit)
    _icons(r, n)
    r.kind[1] = BIG
    r.num(1, 0, n[_BAL], n[_DEC])
    r.msg(4, 0, _M_ON if n[_CLOSED] else _M_OFF)
    _status(r, n, 5)
    _hint(r, n, 7)


def _icons(r, n):
    # top right: signal bars, relay, warning / friendly / emergency, unsynced
    s = n[_SIGNAL]
    if s != _NA:
        bars = 0 if s < -109 else (1 if s < -99 else (2 if s < -89 else (3 if s < -79 else 4)))
        r.char(0, 12, 1 + bars)
    r.char(0, 13, 6 if n[_CLOSED] else 7)
    if n[_REASON] == _R_FRIENDLY:
        r.char(0, 14, 9)
    elif n[_OWED] > 0:
        r.char(0, 14, 10)
    elif _warned(n) or (not n[_CLOSED]):
        r.char(0, 14, 8)
    if not n[_SYNCED]:
        r.char(0, 15, 11)


def _warned(n):
    # a credit warning, never while the supply is off for no credit (that
    # is not a warning any more: the reason line says what to do)
    return n[_LEVEL] > 0 and n[_REASON] != _R_CREDIT and n[_REASON] != _R_PRESS


def _status(r, n, y):
    """Two lines at rows y, y+1: why the supply is off, or what comes next."""
    q = n[_REASON]
    if q == _R_FAULT:
        x = r.msg(y, 0, _M_FAULT)
        r.char(y, x, 69)
        r.num(y, x + 1, n[_FAULT])
        r.msg(y + 1, 0, _M_CALL)
    elif q == _R_CREDIT:
        r.msg(y, 0, _M_NO_CREDIT)
        r.msg(y + 1, 0, _M_TOP_UP)
    elif q == _R_PRESS:
        r.msg(y, 0, _M_PRESS)
        r.msg(y + 1, 0, _M_RECONNECT)
    elif q == _R_FRIENDLY:
        r.msg(y, 0, _M_FRIENDLY)
        x = r.msg(y + 1, 0, _M_UNTIL)
        if n[_FR_END] != _NA:
            _time(r, y + 1, x, n[_FR_END], 0)
    elif _R_POWER <= q <= _R_LOW_V or _R_LOCK_POWER <= q <= _R_LOCK_LOW_V:
        base = q if q <= _R_LOW_V else q - (_R_LOCK_POWER - _R_POWER)
        r.msg(y, 0, _M_OVERLOAD + base - _R_POWER)
        if q <= _R_LOW_V and n[_RETRY] != _NA:
            x = r.msg(y + 1, 0, _M_RETRY)
            x = r.num(y + 1, x, n[_RETRY])
            r.text(y + 1, x, b" s")
        else:
            r.msg(y + 1, 0, _M_LOCKED)
    elif q == _R_UTILITY:
        r.msg(y, 0, _M_UTILITY)
        r.msg(y + 1, 0, _M_BY_UTILITY)
    elif n[_LINK_FAULT] or n[_LANG_FAULT]:
        r.char(y, 0, 69)
        x = r.num(y, 1, n[_LINK_FAULT] or n[_LANG_FAULT])
        r.msg(y, x + 1, _M_LINK_OFF if n[_LINK_FAULT] else _M_BAD_LANG)
        r.msg(y + 1, 0, _M_CALL)
    elif n[_OWED] > 0:
        r.msg(y, 0, _M_EC_OWED)
        r.msg(y + 1, 0, _M_REPAID)
    elif _warned(n):
        r.char(y, 0, 8)
        r.msg(y, 2, _M_LOW)
        if n[_DAYS_X10] != _NA:
            x = r.num(y + 1, 0, n[_DAYS_X10], 1)
            r.msg(y + 1, x + 1, _M_DAYS)
    else:
        r.msg(y, 0, _M_ALL_OK)


def _hint(r, n, y):
    a = n[_OFFER]
    if a == A_RECONNECT:
        r.msg(y, 0, _M_HOLD_RECONNECT)
    elif a == A_EMERGENCY:
        r.msg(y, 0, _M_HOLD_EC)
    elif a == A_SILENCE:
        r.msg(y, 0, _M_HOLD_SILENCE)


def _big_or_na(r, x, dec):
    r.kind[1] = BIG
    if x == _NA:
        r.dashes(1, 0)
    else:
        r.num(1, 0, x, dec)


def _money(r, v, y, x, minor):
    if minor == _NA:
        return r.dashes(y, x)
    x = r.num(y, x, minor, v.n[_DEC])
    return r.text(y, x + 1, v.unit)


def _use(r, v, y, title, wh, cost):
    r.msg(y, 0, title)
    x = r.num(y + 1, 1, wh, 3)
    r.text(y + 1, x + 1, _KWH)
    _money(r, v, y + 2, 1, cost)


def _unit(r, y, val, dec, unit):
    x = r.dashes(y, 0) if val == _NA else r.num(y, 0, val, dec)
    r.char(y, x + 1, unit)


def _reg(r, y, label, wh):
    r.text(y, 0, label)
    r.num(y, 6, wh, 3)


def _price(r, v, n):
    r.kind[1] = BIG
    _price_at(r, 1, 0, n[_PRICE], n[_DEC])
    x = r.text(4, 0, v.unit)
    r.text(4, x, _PER_KWH)
    x = 0
    if n[_PERIOD] != _NA:
        x = r.msg(5, 0, n[_PERIOD])
    elif n[_PERIOD_N] != _NA:   # a period the tariff names otherwise: P1, P2...
        x = r.char(5, 0, 80)
        x = r.num(5, x, n[_PERIOD_N] + 1)
    if n[_NEXT_CHANGE] != _NA:
        x = r.msg(5, x + 1, _M_NEXT)
        _time(r, 5, x, n[_NEXT_CHANGE], 0)
    x = r.msg(6, 0, _M_TIER)
    x = r.num(6, x, n[_TIER] + 1)
    if n[_TIER_LEFT] != _NA:
        x = r.num(6, x + 1, n[_TIER_LEFT] // 100, 1)
        r.text(6, x, _KWH)
        x = r.msg(7, 0, _M_THEN)
        x = _price_at(r, 7, x, n[_NEXT_PRICE], n[_DEC])
        r.text(7, x, _PER_KWH)


def _price_at(r, y, x, milli, dec):
    # a price in thousandths of a minor unit, exact: as many decimals as
    # it needs beyond the currency's own (1.50, 1.255)
    d = dec + 3
    while d > dec and milli % 10 == 0:
        milli //= 10
        d -= 1
    return r.num(y, x, milli, d)


def _topup(r, v, n):
    if n[_TOPUP] == _NA:
        r.msg(2, 0, _M_NONE_YET)
    else:
        _money(r, v, 2, 0, n[_TOPUP])
        _date(r, 3, 0, n[_TOPUP_DAY])
        _time(r, 3, 11, n[_TOPUP_SOD], 0)
        x = r.msg(4, 0, _M_REF)
        r.text(4, x, v.ref)
    x = r.msg(6, 0, _M_TOKEN)
    if n[_TOKEN] == _NA:
        r.dashes(6, x)
    else:
        r.num(6, x, n[_TOKEN])


def _link(r, n):
    x = r.msg(2, 0, _M_SIGNAL)
    s = n[_SIGNAL]
    if s == _NA:
        r.dashes(2, x)
    else:
        bars = 0 if s < -109 else (1 if s < -99 else (2 if s < -89 else (3 if s < -79 else 4)))
        x = r.char(2, x, 1 + bars)
        x = r.num(2, x + 1, s)
        r.text(2, x + 1, _DBM)
    g = n[_REG]
    if g != _NA:
        r.msg(3, 0, _M_REG_HOME if g == 1 else (_M_REG_ROAM if g == 5 else _M_REG_NO))
    r.msg(4, 0, _M_SERVER_UP if n[_UP] else _M_SERVER_DOWN)
    x = r.msg(5, 0, _M_LAST)
    if n[_HEARD_DAY] == _NA:
        r.dashes(5, x)
    else:
        if n[_HEARD_DAY] != n[_DAY]:
            x = _date(r, 5, x, n[_HEARD_DAY]) + 1
        _time(r, 5, x, n[_HEARD_SOD], 0)
    x = r.msg(6, 0, _M_PENDING)
    r.num(6, x, n[_PENDING])


def _errors(r, n):
    y = 2
    for i in (_FAULT, _LINK_FAULT, _LANG_FAULT):   # a constant tuple: no allocation
        code = n[i]
        if code:
            r.char(y, 0, 69)
            r.num(y, 1, code)
            y += 1
    if y == 2:
        r.msg(2, 0, _M_NO_ERRORS)
    else:
        r.msg(y + 1, 0, _M_CALL)


def _time(r, y, x, sod, secs):
    """hh:mm (and :ss when secs) of a second of day."""
    x = r.num(y, x, sod // 3600, 0, 2)
    x = r.char(y, x, 58)
    x = r.num(y, x, sod // 60 % 60, 0, 2)
    if secs:
        x = r.char(y, x, 58)
        x = r.num(y, x, sod % 60, 0, 2)
    return x


def _date(r, y, x, day):
    """yyyy-mm-dd of a local day number (firmware/localtime.py's civil(), in
    place: it returns a tuple)."""
    p = _civil_packed(day)
    x = r.num(y, x, p >> 9, 0, 4)
    x = r.char(y, x, 45)
    x = r.num(y, x, (p >> 5) & 15, 0, 2)
    x = r.char(y, x, 45)
    return r.num(y, x, p & 31, 0, 2)


def confirm(r, v):
    """The emergency credit confirmation: how much, and that the next top-up repays it."""
    r.clear()
    r.kind[0] = INVERSE
    r.msg(0, 0, _M_TAKE_EC)
    r.msg(1, 0, _M_CREDIT_OF)
    _money(r, v, 2, 1, v.n[_EC])
    r.msg(3, 0, _M_NEXT_TOPUP)
    r.msg(4, 0, _M_REPAYS)
    r.msg(6, 0, _M_HOLD_YES)
    r.msg(7, 0, _M_PRESS_NO)


def result(r, v, res, why):
    """What an action did: res a RES_* id; why the refusal's reason (engine code)."""
    r.clear()
    r.kind[0] = INVERSE
    r.msg(0, 0, _M_T_SUPPLY)
    r.msg(2, 0, res)
    if res == RES_REFUSED:
        r.msg(3, 0, _M_NOT_LOW if why == "not_low" else (
            _M_IN_USE if why == "in_use" else (_M_NOT_PREPAID if why == "not_prepaid" else _M_DISABLED)))
    elif res == RES_EC_TAKEN:
        _money(r, v, 3, 0, v.n[_EC])
        r.msg(5, 0, _M_NEXT_TOPUP)
        r.msg(6, 0, _M_REPAYS)
    else:
        r.msg(4, 0, _M_ON if v.n[_CLOSED] else _M_OFF)


def offer(v):
    """The long-press action the meter offers now (A_*)."""
    return v.n[_OFFER]
