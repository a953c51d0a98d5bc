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
# The view is a list: [slots (array of ints), meter id, currency, order
# ref (bytes), the top-up that ref is of]; the slots are below. The
# forecast (firmware/credit/forecast.py, MeterCore.forecast()) fills the
# ones marked F in fill():
#   _KWH_LEFT   F kWh the balance buys from now on, in Wh
#   _KWH_EST    F 1 when that is an estimate (the price can change), else 0
#   _DAYS_X10   F days left, in tenths of a day
#   _DAYS_BASIS F days of history the forecast averaged (7, fewer on a new meter)
#   _TODAY_COST F cost of today's energy, minor units (the ledger's day ring)
#   _MONTH_COST   cost of this month's energy, minor units (CreditEngine.month_c0)
# Names cost the heap (docs/architecture.md, "Heap"): the ids, slots and
# codes are private constants, and the screens are branches of draw().
import array
from micropython import const

from firmware.credit.protection import KINDS, _LOCK_REASONS
from firmware.localtime import _civil_packed

_INVERSE = const(1)        # render.py's row kinds
_BIG = const(2)
_V_ID = const(1)           # the view list's texts
_V_UNIT = const(2)
_V_REF = const(3)

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
_TOKEN_AMT = const(53)     # minor units the last token credited
_SLOTS = const(54)

# the last offline token's result (firmware/tokens/entry.py's codes), by
# index in the _TOKEN slot: short codes, the same words the REPL prints
_TOKEN_CODES = (b"add", b"set", b"used", b"invalid", b"locked", b"disable", b"sync")
_TOKEN_WORDS = ("add", "set", "used", "invalid", "locked", "disable", "sync")

# relay reasons, in the customer's words on the supply screen
_R_OK = const(0)
_R_CREDIT = const(1)
_R_PRESS = const(2)
_R_FRIENDLY = const(3)
_R_POWER = const(4)        # _R_POWER + i: the protection trip KINDS[i]
_R_LOCK = const(7)         # _R_LOCK + i: its lockout
_R_UTILITY = const(10)
_R_FAULT = const(11)
_R_TECH = const(12)        # the technician's relay("open") override (firmware/repl/admin.py)

# long-press actions (fill() returns one; ui/panel.py has the same codes)
_A_RECONNECT = const(1)
_A_EMERGENCY = const(2)
_A_SILENCE = const(3)

_E_LANGUAGE = const(65)    # docs/error-codes.md
_PERIOD_NAMES = const("sharp peak flat valley ")   # one string: no names

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
_M_TECH = const(83)
_M_BY_TECH = const(84)


_FIRMWARE = const(b"0.14.0")
_KWH = const(b"kWh")
_PER_KWH = const(b"/kWh")


def view(meter_id, currency):
    """A new view: every slot _NA until fill()."""
    n = array.array("i", bytes(4 * _SLOTS))
    for i in range(_SLOTS):
        n[i] = _NA
    return [n, meter_id.encode(), currency.encode(), b"", None]


def fill(v, app, fault):
    """Read the meter into view v, in place; returns the long-press action
    the home and supply screens offer (0: none). app: the firmware's App."""
    n = v[0]
    core = app.core
    e = core.engine
    p = e.policy
    led = e.ledger
    tar = e.tariff
    n[_BAL] = led.balance_minor
    n[_DEC] = core.cfg["decimals"]
    n[_LANG_FAULT] = _E_LANGUAGE if fault else 0   # the panel's language fault
    n[_LINK_FAULT] = app.fault_lcd() if app.config_fault and not core.fault else 0
    n[_LEVEL] = p.level
    n[_OWED] = led.owed_minor()
    n[_EC] = e.emergency_minor
    q = _R_OK
    if core.fault:
        n[_FAULT] = core.durable.store.lcd_code()
        n[_CLOSED] = 0
        q = _R_FAULT
    else:
        n[_FAULT] = 0
        n[_CLOSED] = 1 if p.relay_closed else 0
        why = p.relay_reason
        if why == "friendly":
            q = _R_FRIENDLY
        elif p.relay_closed:
            q = _R_OK
        elif why == "credit":
            q = _R_CREDIT
        elif why == "await_press":
            q = _R_PRESS
        elif why == "remote_disconnect":
            q = _R_UTILITY
        elif why == "technician_open":
            q = _R_TECH
        else:
            for i in range(3):
                if why == KINDS[i]:
                    q = _R_POWER + i
                elif why == _LOCK_REASONS[i]:
                    q = _R_LOCK + i
    n[_REASON] = q
    n[_ALARM] = 1 if p.alarm == 2 else 0   # policy.REPEAT: sounds until a press
    n[_RETRY] = _NA
    if _R_POWER <= q < _R_LOCK:
        for t in e.protection.trips:
            if t and t.phase == 1:
                n[_RETRY] = t.retry_s - t.open_s
    # local time from the last tick (reading the RTC allocates on an ESP32)
    t = e.now_s
    day = t // 86400
    sod = t - day * 86400
    n[_DAY] = day
    n[_SOD] = sod
    n[_SYNCED] = 1 if core.clock.synced else 0
    n[_FR_END] = _NA
    if q == _R_FRIENDLY:
        n[_FR_END] = 0   # a weekend or holiday: until midnight
        for w in e.friendly.windows:
            if (w[0] <= sod < w[1]) or (w[0] > w[1] and (sod >= w[0] or sod < w[1])):
                n[_FR_END] = w[1]
    # power
    m = core.meas
    n[_POWER] = _NA if m.power_w is None else m.power_w
    n[_VOLT] = _NA if m.voltage_v is None else m.voltage_v
    a = core.revenue.adc if core.revenue else None
    n[_AMP] = a.irms_ma if a else _NA
    n[_PF] = a.pf_milli if a else _NA
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
    n[_NEXT_CHANGE] = _NA
    if e.synced:
        period = tar.period_of(e._dt if day == e._dt_day else 0, sod)
        if tar.tou:
            k = tar.next_switch_s
            n[_NEXT_CHANGE] = k if k < 86400 else 0
    else:
        period = tar.unsynced_period
    n[_PERIOD_N] = period if tar.tou else _NA
    n[_PERIOD] = _NA
    if tar.tou:
        name = tar.period_names[period]
        i = _PERIOD_NAMES.find(name)
        if i >= 0 and _PERIOD_NAMES[i + len(name)] == " ":
            n[_PERIOD] = _M_SHARP + (0 if i == 0 else (1 if i == 6 else (2 if i == 11 else 3)))
    n[_PRICE] = tar.prices[tier][period]
    n[_TIER] = tier
    k = tar.tier_room_wh(tier, e.month_wh)
    n[_TIER_LEFT] = k if k >= 0 else _NA
    n[_NEXT_PRICE] = tar.prices[tier + 1][period] if k >= 0 else _NA
    # last top-up (its reference: v[_V_REF], made by the panel when it changes)
    t = e.last_topup
    n[_TOPUP] = _NA if t is None else t[1]
    if t is not None:
        n[_TOPUP_DAY] = t[2] // 86400
        n[_TOPUP_SOD] = t[2] % 86400
    # the forecast (credit/forecast.py; allocates nothing) and the day's cost
    f = core.forecast()
    n[_KWH_LEFT] = _NA if f[0] < 0 else f[0]   # -1: a free last tier, no limit to show
    n[_KWH_EST] = 1 if f[1] else 0
    n[_DAYS_X10] = _NA if f[2] is None else f[2]
    n[_DAYS_BASIS] = f[3] if f[2] is not None else _NA
    c = led.costs   # [newest day, days seen, that day's cost, the days before...]
    n[_TODAY_COST] = c[2] if c[0] == e.now_s // 86400 else 0
    n[_MONTH_COST] = led.charges_minor - e.month_c0
    t = core.last_token
    n[_TOKEN] = _NA
    if t is not None:
        k = 0
        for code in _TOKEN_WORDS:
            if code == t[0]:
                n[_TOKEN] = k
                n[_TOKEN_AMT] = t[1]
            k += 1
    # link
    s = app.session
    n[_UP] = 1 if s and s.up else 0
    n[_HEARD_DAY] = _NA
    if s and s.heard_s:
        t = s.heard_s + core.clock.utc_offset_s
        n[_HEARD_DAY] = t // 86400
        n[_HEARD_SOD] = t % 86400
    m = app.modem
    k = m.at.rssi_dbm if m else None
    n[_SIGNAL] = _NA if k is None else k
    k = m.at.reg if m else None
    n[_REG] = _NA if k is None else k
    n[_PENDING] = core.events.outbox.pending()
    # what a long press does, here and on the supply screen
    if core.fault:
        a = 0
    elif q == _R_PRESS or _R_LOCK <= q < _R_UTILITY:
        a = _A_RECONNECT
    elif e.emergency_refusal() is None:
        a = _A_EMERGENCY
    else:
        a = _A_SILENCE if n[_ALARM] else 0
    n[_OFFER] = a
    return a


def draw(r, v, k, mode=0, done=0, why=None):
    """Write screen k (0 = home) of view v into the rows of r (render.py's
    Renderer). mode 1: the emergency credit confirmation (how much, and that
    the next top-up repays it); mode 2: what action `done` (an _A_* code,
    0: refused, for the reason `why`) did."""
    r.clear()
    n = v[0]
    r.kind[0] = _INVERSE
    if mode == 1:
        r.msg(0, 0, _M_TAKE_EC)
        r.msg(1, 0, _M_CREDIT_OF)
        _money(r, v, 2, 1, n[_EC])
        r.msg(3, 0, _M_NEXT_TOPUP)
        r.msg(4, 0, _M_REPAYS)
        r.msg(6, 0, _M_HOLD_YES)
        r.msg(7, 0, _M_PRESS_NO)
        return
    if mode == 2:
        r.msg(0, 0, _M_T_SUPPLY)
        if done == _A_EMERGENCY:
            r.msg(2, 0, _M_EC_TAKEN)
            _money(r, v, 3, 0, n[_EC])
            r.msg(5, 0, _M_NEXT_TOPUP)
            r.msg(6, 0, _M_REPAYS)
        elif done:
            r.msg(2, 0, _M_RECONNECTED if done == _A_RECONNECT else _M_SILENCED)
            r.msg(4, 0, _M_ON if n[_CLOSED] else _M_OFF)
        else:
            r.msg(2, 0, _M_REFUSED)
            r.msg(3, 0, _M_NOT_LOW if why == "not_low" else (
                _M_IN_USE if why == "in_use" else (_M_NOT_PREPAID if why == "not_prepaid" else _M_DISABLED)))
        return
    if k:
        r.msg(0, 0, k)   # the titles are messages 0-11, in screen order
    if k == 0 and n[_FAULT]:
        # the stored balance cannot be trusted: no number rather than a wrong one
        r.msg(0, 0, _M_FAULT)
        r.kind[1] = _BIG
        r.text(1, 0, b"E")
        r.put(1, 1, n[_FAULT])
        r.msg(4, 0, _M_OFF)
        _status(r, n, 5, 0)
    elif k == 0:
        x = r.msg(0, 0, _M_T_BALANCE)
        r.text(0, x + 1, v[_V_UNIT])
        # top right: signal bars, relay, friendly / emergency / warning, unsynced clock
        f = n[_SIGNAL]
        if f != _NA:   # bars: -110, -100, -90, -80 dBm
            r.rows[12] = 1 + (0 if f < -109 else (1 if f < -99 else (2 if f < -89 else (3 if f < -79 else 4))))
        r.rows[13] = 6 if n[_CLOSED] else 7
        if n[_REASON] == _R_FRIENDLY:
            r.rows[14] = 9
        elif n[_OWED] > 0:
            r.rows[14] = 10
        elif not n[_CLOSED] or n[_LEVEL] > 0:
            r.rows[14] = 8
        if not n[_SYNCED]:
            r.rows[15] = 11
        r.kind[1] = _BIG
        r.put(1, 0, n[_BAL], n[_DEC])
        r.msg(4, 0, _M_ON if n[_CLOSED] else _M_OFF)
        _status(r, n, 5, 7)
    elif k == 1 or k == 2:
        # remaining electricity (tenths of a kWh) or days (tenths)
        f = n[_KWH_LEFT] if k == 1 else n[_DAYS_X10]
        r.kind[1] = _BIG
        if f == _NA:
            r.text(1, 0, b"--")
        else:
            r.put(1, 0, f // 100 if k == 1 else f, 1)
        if k == 1:
            r.text(4, 0, _KWH)
            if f != _NA:
                r.msg(5, 0, _M_ESTIMATE if n[_KWH_EST] else _M_AT_PRICE)
        else:
            r.msg(4, 0, _M_DAYS)
            if n[_DAYS_BASIS] != _NA:
                x = r.msg(5, 0, _M_AVG_OF)
                x = r.put(5, x, n[_DAYS_BASIS])
                r.msg(5, x, _M_DAY_UNIT)
    elif k == 3:
        # today and this month: energy and cost
        for y in (1, 4):
            r.msg(y, 0, _M_TODAY if y == 1 else _M_MONTH)
            x = r.put(y + 1, 1, n[_TODAY if y == 1 else _MONTH], 3)
            r.text(y + 1, x + 1, _KWH)
            _money(r, v, y + 2, 1, n[_TODAY_COST if y == 1 else _MONTH_COST])
    elif k == 4:
        # live power: W, V, A (from mA), PF (from thousandths); -- where unknown
        for y in (2, 3, 4, 5):
            f = n[_POWER + y - 2]
            x = 0
            if y == 5:
                x = r.text(5, 0, b"PF ")
            if f == _NA:
                x = r.text(y, x, b"--")
            else:
                x = r.put(y, x, f // 10 if y == 5 else f, 2 if y == 5 else (3 if y == 4 else 0))
            if y < 5:
                r.rows[y * 16 + x + 1] = 87 if y == 2 else (86 if y == 3 else 65)   # W V A
    elif k == 5:
        # price now, its period and next change, the tier and what follows it
        r.kind[1] = _BIG
        _price(r, 1, 0, n[_PRICE], n[_DEC])
        x = r.text(4, 0, v[_V_UNIT])
        r.text(4, x, _PER_KWH)
        x = 0
        if n[_PERIOD] != _NA:
            x = r.msg(5, 0, n[_PERIOD])
        elif n[_PERIOD_N] != _NA:   # a period the tariff names otherwise: P1, P2...
            x = r.text(5, 0, b"P")
            x = r.put(5, x, n[_PERIOD_N] + 1)
        if n[_NEXT_CHANGE] != _NA:
            x = r.msg(5, x + 1, _M_NEXT)
            _time(r, 5, x, n[_NEXT_CHANGE], 0)
        x = r.msg(6, 0, _M_TIER)
        x = r.put(6, x, n[_TIER] + 1)
        if n[_TIER_LEFT] != _NA:
            x = r.put(6, x + 1, n[_TIER_LEFT] // 100, 1)
            r.text(6, x, _KWH)
            x = r.msg(7, 0, _M_THEN)
            x = _price(r, 7, x, n[_NEXT_PRICE], n[_DEC])
            r.text(7, x, _PER_KWH)
    elif k == 6:
        # last top-up: amount, meter time, order ref; the last offline token
        if n[_TOPUP] == _NA:
            r.msg(2, 0, _M_NONE_YET)
        else:
            _money(r, v, 2, 0, n[_TOPUP])
            _date(r, 3, 0, n[_TOPUP_DAY])
            _time(r, 3, 11, n[_TOPUP_SOD], 0)
            x = r.msg(4, 0, _M_REF)
            r.text(4, x, v[_V_REF])
        x = r.msg(6, 0, _M_TOKEN)
        if n[_TOKEN] == _NA:
            r.text(6, x, b"--")
        else:
            r.text(6, x, _TOKEN_CODES[n[_TOKEN]])
            if n[_TOKEN_AMT] > 0:
                _money(r, v, 7, 0, n[_TOKEN_AMT])
    elif k == 7:
        # why the supply is off, or what is about to happen
        r.msg(2, 0, _M_ON if n[_CLOSED] else _M_OFF)
        _status(r, n, 4, 7)
    elif k == 8:
        # link: signal, registration, server, last exchange, undelivered events
        x = r.msg(2, 0, _M_SIGNAL)
        f = n[_SIGNAL]
        if f == _NA:
            r.text(2, x, b"--")
        else:
            r.rows[32 + x] = 1 + (0 if f < -109 else (1 if f < -99 else (2 if f < -89 else (3 if f < -79 else 4))))
            x = r.put(2, x + 2, f)
            r.text(2, x + 1, b"dBm")
        f = n[_REG]
        if f != _NA:
            r.msg(3, 0, _M_REG_HOME if f == 1 else (_M_REG_ROAM if f == 5 else _M_REG_NO))
        r.msg(4, 0, _M_SERVER_UP if n[_UP] else _M_SERVER_DOWN)
        x = r.msg(5, 0, _M_LAST)
        if n[_HEARD_DAY] == _NA:
            r.text(5, x, b"--")
        else:
            if n[_HEARD_DAY] != n[_DAY]:
                x = _date(r, 5, x, n[_HEARD_DAY]) + 1
            _time(r, 5, x, n[_HEARD_SOD], 0)
        x = r.msg(6, 0, _M_PENDING)
        r.put(6, x, n[_PENDING])
    elif k == 9:
        # totals: 1.8.0, 1.8.1-1.8.4, 2.8.0 (kWh), maximum demand (W)
        r.text(1, 0, b"1.8.0")
        r.put(1, 6, n[_IMPORT], 3)
        for i in range(4):
            r.text(2 + i, 0, b"1.8.1")
            r.rows[(2 + i) * 16 + 4] = 49 + i
            r.put(2 + i, 6, n[_P1 + i], 3)
        r.text(6, 0, b"2.8.0")
        r.put(6, 6, n[_EXPORT], 3)
        x = r.msg(7, 0, _M_MAX)
        x = r.put(7, x, n[_MD])
        r.text(7, x + 1, b"W")
    elif k == 10:
        # meter id, firmware version, date and time, unsynced mark
        x = r.msg(2, 0, _M_ID)
        r.text(2, x, v[_V_ID])
        x = r.msg(3, 0, _M_FW)
        r.text(3, x, _FIRMWARE)
        _date(r, 5, 0, n[_DAY])
        x = _time(r, 6, 0, n[_SOD], 1)
        if not n[_SYNCED]:
            r.rows[96 + x + 1] = 11
            r.msg(7, 0, _M_UNSYNCED)
    else:
        # error codes (docs/error-codes.md)
        y = 2
        for i in (_FAULT, _LINK_FAULT, _LANG_FAULT):   # a constant tuple: no allocation
            if n[i]:
                r.text(y, 0, b"E")
                r.put(y, 1, n[i])
                y += 1
        if y == 2:
            r.msg(2, 0, _M_NO_ERRORS)
        else:
            r.msg(y + 1, 0, _M_CALL)


def _status(r, n, y, h):
    """Two lines at rows y, y+1: why the supply is off, or what comes next.
    Never "low credit" while off for no credit: the lines say what to do.
    Row h (0: none) says what a long press does here (fill() decided it)."""
    a = n[_OFFER]
    if h and a:
        r.msg(h, 0, _M_HOLD_RECONNECT if a == _A_RECONNECT else (
            _M_HOLD_EC if a == _A_EMERGENCY else _M_HOLD_SILENCE))
    q = n[_REASON]
    # m: a two-line case whose second line is the message after m (the
    # pairs are neighbours in the table), written once below the branches
    m = 0
    if q == _R_FAULT:
        x = r.msg(y, 0, _M_FAULT)
        x = r.text(y, x, b"E")
        r.put(y, x, n[_FAULT])
        r.msg(y + 1, 0, _M_CALL)
    elif q == _R_CREDIT:
        m = _M_NO_CREDIT         # then _M_TOP_UP
    elif q == _R_PRESS:
        m = _M_PRESS             # then _M_RECONNECT
    elif q == _R_FRIENDLY:
        r.msg(y, 0, _M_FRIENDLY)
        x = r.msg(y + 1, 0, _M_UNTIL)
        if n[_FR_END] != _NA:
            _time(r, y + 1, x, n[_FR_END], 0)
    elif _R_POWER <= q < _R_UTILITY:
        r.msg(y, 0, _M_OVERLOAD + (q - _R_POWER) % 3)
        if q < _R_LOCK and n[_RETRY] != _NA:
            x = r.msg(y + 1, 0, _M_RETRY)
            x = r.put(y + 1, x, n[_RETRY])
            r.text(y + 1, x, b" s")
        else:
            r.msg(y + 1, 0, _M_LOCKED)
    elif q == _R_UTILITY:
        m = _M_UTILITY           # then _M_BY_UTILITY
    elif q == _R_TECH:
        m = _M_TECH              # then _M_BY_TECH
    elif n[_LINK_FAULT] or n[_LANG_FAULT]:
        x = r.text(y, 0, b"E")
        x = r.put(y, x, n[_LINK_FAULT] or n[_LANG_FAULT])
        r.msg(y, x + 1, _M_LINK_OFF if n[_LINK_FAULT] else _M_BAD_LANG)
        r.msg(y + 1, 0, _M_CALL)
    elif n[_OWED] > 0:
        m = _M_EC_OWED           # then _M_REPAID
    elif n[_LEVEL] > 0:
        r.rows[y * 16] = 8     # the warning icon and line
        r.msg(y, 2, _M_LOW)
        if n[_DAYS_X10] != _NA:
            x = r.put(y + 1, 0, n[_DAYS_X10], 1)
            r.msg(y + 1, x + 1, _M_DAYS)
    else:
        r.msg(y, 0, _M_ALL_OK)
    if m:
        r.msg(y, 0, m)
        r.msg(y + 1, 0, m + 1)


def _money(r, v, y, x, minor):
    if minor == _NA:
        return r.text(y, x, b"--")
    x = r.put(y, x, minor, v[0][_DEC])
    return r.text(y, x + 1, v[_V_UNIT])


def _price(r, y, x, m, d):
    # a price m in thousandths of a minor unit, exact: as many decimals as
    # it needs beyond the currency's own d (1.50, 1.255)
    k = d + 3
    while k > d and m % 10 == 0:
        m //= 10
        k -= 1
    return r.put(y, x, m, k)


def _time(r, y, x, sod, s):
    """hh:mm (and :ss when s) of a second of day."""
    x = r.put(y, x, sod // 3600, 0, 2)
    x = r.text(y, x, b":")
    x = r.put(y, x, sod // 60 % 60, 0, 2)
    if s:
        x = r.text(y, x, b":")
        x = r.put(y, x, sod % 60, 0, 2)
    return x


def _date(r, y, x, day):
    """yyyy-mm-dd of a local day number (localtime.civil() in place: it
    returns a tuple)."""
    p = _civil_packed(day)
    x = r.put(y, x, p >> 9, 0, 4)
    x = r.text(y, x, b"-")
    x = r.put(y, x, (p >> 5) & 15, 0, 2)
    x = r.text(y, x, b"-")
    return r.put(y, x, p & 31, 0, 2)
