# CF pulses from the metering IC -> integer Wh, the meter's revenue path.
#
# A pulse is 1000/imp_per_kwh Wh, rarely a whole number, so the fraction is
# carried as a remainder in units of 1/imp_per_kwh Wh: no float, no drift, and
# any split of the same pulse train into reads gives the same Wh (tested).
#
# The board hands over a cumulative pulse count: on the ESP32 the 16-bit PCNT
# is extended by counting its IRQ_MAX events (boards/esp32.py, _WrappedPcnt).
from micropython import const

_MIN_IMP = const(1000)
_MAX_IMP = const(10000)


class PulseEnergy:
    """Pulse deltas -> Wh increments with the fraction carried forward."""

    def __init__(self, imp_per_kwh):
        imp = int(imp_per_kwh)
        if imp < _MIN_IMP or imp > _MAX_IMP:
            raise ValueError("imp_per_kwh")
        self.imp_per_kwh = imp
        self.rem = 0          # carried energy in 1/imp_per_kwh Wh, always < imp_per_kwh
        self.total_pulses = 0
        self.total_wh = 0

    def feed(self, delta_pulses):
        """Add `delta_pulses` new pulses; return the whole Wh they completed.

        A negative delta (a counter that went backwards) registers nothing:
        energy never runs backwards. Allocates nothing while values stay below
        2**30, so it may run with the heap locked.
        """
        if delta_pulses <= 0:
            return 0
        imp = self.imp_per_kwh
        # split so delta*1000 never leaves the small-int range on the ESP32
        whole = delta_pulses // imp
        part = delta_pulses - whole * imp
        acc = self.rem + part * 1000
        wh = acc // imp
        self.rem = acc - wh * imp
        wh += whole * 1000
        self.total_pulses += delta_pulses
        self.total_wh += wh
        return wh

    def state(self):
        return {"imp": self.imp_per_kwh, "rem": self.rem,
                "pulses": self.total_pulses, "wh": self.total_wh}

    def restore(self, d):
        # a remainder saved under another meter constant means nothing now
        if d.get("imp") == self.imp_per_kwh:
            self.rem = int(d.get("rem", 0)) % self.imp_per_kwh
        self.total_pulses = int(d.get("pulses", 0))
        self.total_wh = int(d.get("wh", 0))

