"""Reading the meter's LCD text lines in tests (the English table,
firmware/ui/texts.py; the layout is docs/screens.md's)."""

SUPPLY_ON = "Supply on"
SUPPLY_OFF = "Supply off"

# the screens' titles, in press order (home first: its title carries the currency)
TITLES = ("Balance", "Energy left", "Days left", "Use", "Live power", "Price", "Last top-up",
          "Supply", "Link", "Totals", "Meter", "Errors")

# icon codes as the sim reports them (boards/sim.py _ICON_CHARS)
SIGNAL = "\u2581\u2582\u2583\u2585\u2587"
RELAY_CLOSED = "\u25cf"
RELAY_OPEN = "\u25cb"
WARNING = "\u26a0"
FRIENDLY = "\u263a"
EMERGENCY = "\u271a"
UNSYNCED = "\u29d6"

# the two lines of each relay reason, in the customer's words
_WORDS = (
    ("credit", "No credit -", "please top up"),
    ("await_press", "Press button", "to reconnect"),
    ("remote_disconnect", "Disconnected", "by utility"),
    ("over_power_lockout", "Overload -", "press to retry"),
    ("over_voltage_lockout", "High voltage -", "press to retry"),
    ("under_voltage_lockout", "Low voltage -", "press to retry"),
    ("over_power", "Overload -", "retry in "),
    ("over_voltage", "High voltage -", "retry in "),
    ("under_voltage", "Low voltage -", "retry in "),
    ("store_fault", "Meter fault E", "call service"),
    ("technician_open", "Switched off", "by technician"),
    ("friendly", "Friendly credit", "until "),   # on, with no credit
)

# the reasons the LCD puts in words (the others show no reason line)
WORDED = tuple(w[0] for w in _WORDS)


def lcd_cut_reason(lines):
    """The relay reason (the state's code) whose words the LCD shows, or None
    (a closed relay shows words only in a friendly period)."""
    for i in range(len(lines) - 1):
        for reason, first, second in _WORDS:
            if lines[i].startswith(first) and lines[i + 1].startswith(second):
                return reason
    return None


def screen_of(lines):
    """Index of the screen the lines show (by its title), None when unknown."""
    if not lines:
        return None
    for k in range(len(TITLES) - 1, -1, -1):
        if lines[0].startswith(TITLES[k]):
            return k
    return None


def goto(m, k, presses=14):
    """Short-press until screen k shows; returns the state showing it. A
    press may land in a stalled loop on a loaded machine: the board latches
    it, so each one counts, but the wait allows for slow frames."""
    for _ in range(presses):
        st = m.state()
        at = screen_of(st["lcd"])
        if at == k:
            return st
        m.control({"cmd": "press"})
        m.wait_for(lambda s: screen_of(s["lcd"]) not in (None, at), timeout=5)
    raise AssertionError("screen %d not reached: %r" % (k, m.state()["lcd"]))
