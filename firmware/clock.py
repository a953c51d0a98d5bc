# The injectable clock: the only source of time for the pure layers.
#
# mono_ms() is *meter time* (board.mono_ms(); the sim may scale or step it):
# energy, protection timers and increments are measured with it. utc_s() is
# the battery RTC. local_s() = utc_s() + the configured UTC offset; the pure
# date maths for it is in firmware/localtime.py.
#
# After a power cut the RTC may have lost its time. restore() compares it with
# the last persisted time: an RTC that reads before that time (or before
# MIN_VALID_UTC_S) cannot be right, so the clock restarts from the persisted
# time and is flagged unsynced until the modem's network time or a server time
# command calls set_utc(). The credit engine applies its documented safe rule
# (docs/credit.md) while `synced` is False.
from micropython import const

MIN_VALID_UTC_S = const(1704067200)  # 2024-01-01T00:00:00Z: no meter runs before its build


class Clock:
    def __init__(self, board, utc_offset_s=0):
        self.board = board
        self.utc_offset_s = utc_offset_s
        self.synced = False
        self.source = None        # "modem", "server", "rtc" (battery RTC trusted at boot)
        self.last_step_s = 0      # signed size of the last set_utc() step

    def mono_ms(self):
        return self.board.mono_ms()

    def utc_s(self):
        return self.board.rtc_get()

    def local_s(self):
        return self.board.rtc_get() + self.utc_offset_s

    def set_offset(self, utc_offset_s):
        self.utc_offset_s = utc_offset_s

    def set_utc(self, utc_s, source):
        """Adopt a trusted time (may step backwards). Returns the step in seconds."""
        step = utc_s - self.board.rtc_get()
        self.board.rtc_set(utc_s)
        self.synced = True
        self.source = source
        self.last_step_s = step
        return step

    def to_dict(self):
        return {"utc_s": self.board.rtc_get(), "synced": self.synced,
                "source": self.source, "utc_offset_s": self.utc_offset_s}

    def restore(self, saved):
        """Call once at boot with the last persisted to_dict() (or None).

        Returns True if the RTC had lost its time and the clock now runs on
        the persisted time, unsynced."""
        saved = saved or {}
        if "utc_offset_s" in saved:
            self.utc_offset_s = saved["utc_offset_s"]
        last = saved.get("utc_s", 0)
        rtc = self.board.rtc_get()
        if rtc < MIN_VALID_UTC_S or rtc < last:
            self.board.rtc_set(last if last > MIN_VALID_UTC_S else MIN_VALID_UTC_S)
            self.synced = False
            self.source = None
            return True
        # The RTC kept running through the cut: it is as good as before.
        self.synced = bool(saved.get("synced", False))
        self.source = saved.get("source") or ("rtc" if self.synced else None)
        return False
