# What the customer's money means from now on, for the LCD's remaining
# electricity, days left and price screens (ui/screens.py) and the optional
# days-based warning (credit/policy.py, "warn_days"). Pure integer arithmetic
# on the credit engine's own state: the tier the billing month has reached,
# the period in force, the balance and its sub-unit remainder, and the
# ledger's per-day costs. Rules in words: docs/credit.md, "Forecasts".
#
# fill() writes every figure into OUT, one list made once, so the screens
# read them each second without allocating (the figures are small ints on
# the 64-bit host; an ESP32 makes a long int of a balance above ~1000 minor
# units times 10^6 in fill(), a few bytes once a second, outside the frame
# path). OUT, by index:
#   0 wh             Wh the balance buys from now on; -1: unlimited (free)
#   1 estimate       True when the price of those Wh can change (see fill)
#   2 days_x10       days the balance lasts at the last days' average cost,
#                    times 10; None: no day with a cost yet
#   3 days used      whole days that average is over (7, fewer on a new meter)
#   4 price          price_milli_per_kwh of the next Wh (CreditEngine.price_now)
#   5 period name    the tariff's name of the period in force ("p0" unnamed)
#   6 change in s    seconds to the next change of that price by time (a
#                    period, a pending tariff, the month's tier reset); None
#   7 tier           0-based tier the month's Wh have reached
#   8 tier left wh   Wh left in this tier; None in the last tier
#   9 next price     the next tier's price in this period; None in the last tier
from micropython import const

_DAY_S = const(86400)
_MICRO = const(1000000)
_BASIS_DAYS = const(7)    # days averaged for days left
_AHEAD_DAYS = const(8)    # days searched for the next period change: a week and a day
_RING_DAYS = const(8)     # days in the ledger's costs ring (credit/ledger.py)

OUT = [0, False, None, 0, 0, "", None, 0, None, None]


def days(ledger, day, balance_minor):
    """Days the balance lasts at the average daily cost of the last 7 whole
    local days before `day`, today (the ledger's costs ring), times 10, rounded
    down; fewer days on a meter that has charged for fewer. Writes OUT[2]
    and OUT[3] (the days averaged) and returns OUT[2]: None without a day
    to average or when those days cost nothing; 0 once the balance is gone."""
    c = ledger.costs
    used = 0
    if c[0] >= 0:
        used = day - (c[0] - c[1] + 1)     # days since the first one charged
        if used > _BASIS_DAYS:
            used = _BASIS_DAYS
        elif used < 0:
            used = 0
    total = 0
    d = day - used
    while d < day:
        k = c[0] - d             # slot of day d: 0 is the newest day
        if 0 <= k < _RING_DAYS:
            total += c[2 + k]
        d += 1
    OUT[3] = used
    if total <= 0:
        OUT[2] = None
    elif balance_minor <= 0:
        OUT[2] = 0
    else:
        OUT[2] = balance_minor * 10 * used // total
    return OUT[2]


def fill(engine):
    """Every figure of the list above for the credit engine as of its last
    tick, into OUT (returned)."""
    tar = engine.tariff
    led = engine.ledger
    now = engine.now_s
    month_wh = engine.month_wh
    if engine.synced:          # the period price_now() prices the next Wh in
        day = now // _DAY_S
        period = tar.period_of(tar.calendar.day_type(day), now - day * _DAY_S)
    else:
        period = tar.unsynced_period
    tier = tar.tier_of(month_wh)
    price = tar.price_milli_per_kwh(tier, period)
    # What the money left buys from the month's month_wh on, each Wh at its
    # tier's price in this period: whole tiers while it lasts, then what is
    # left of it in the next. The same split as the engine's charging
    # (engine._charge), so it is exactly the Wh after which the balance
    # would reach 0 at these prices; -1 when a free last tier is reached.
    money = led.balance_minor * _MICRO - led.rem_micro    # millionths of a minor unit
    wh = 0
    t = tier
    if money > 0:
        while True:
            p = tar.price_milli_per_kwh(t, period)
            room = tar.tier_room_wh(t, month_wh + wh)
            if room < 0 or p * room > money:
                wh = -1 if p == 0 else wh + money // p
                break
            money -= p * room
            wh += room
            t += 1
    OUT[0] = wh
    # Exact only when every Wh counted is priced in tier 0 of a one-period
    # tariff with nothing pending: a later period, tier or tariff (or the
    # month's tier reset) can change what the same money buys.
    end = len(tar.tiers_wh) if wh < 0 else tar.tier_of(month_wh + wh - 1 if wh else month_wh)
    OUT[1] = tar.tou or engine.pending is not None or end > 0
    days(led, now // _DAY_S, led.balance_minor)
    OUT[4] = price
    OUT[5] = tar.period_names[period]
    # the next change of this price by time alone
    soon = None
    if engine.pending is not None:
        soon = engine.pending_at_s - now
    if tier > 0 and (soon is None or engine.month_next_s - now < soon):
        soon = engine.month_next_s - now       # a new month starts again in tier 0
    if engine.synced and tar.tou:
        day = now // _DAY_S
        sod = now - day * _DAY_S
        for ahead in range(_AHEAD_DAYS + 1):
            start = ahead * _DAY_S - sod     # from now to the start of that day
            if soon is not None and start >= soon:
                break
            sched = tar.days[tar.calendar.day_type(day + ahead)]
            i = 0                            # the first row ahead at another price
            while i < len(sched) and (start + sched[i] <= 0
                                       or tar.price_milli_per_kwh(tier, sched[i + 1]) == price):
                i += 2
            if i < len(sched):
                if soon is None or start + sched[i] < soon:
                    soon = start + sched[i]
                break
    OUT[6] = soon
    OUT[7] = tier
    room = tar.tier_room_wh(tier, month_wh)
    OUT[8] = room if room >= 0 else None
    OUT[9] = tar.price_milli_per_kwh(tier + 1, period) if room >= 0 else None
    return OUT
