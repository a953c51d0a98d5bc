# Feeds the hardware watchdog only while every task of the loop is alive.
# Each task calls checkin(name) as it makes progress; if any task has been
# silent longer than its allowance the feeding stops and the hardware resets
# the board. A hung task therefore resets the meter instead of leaving it
# metering nothing, or charging with a frozen display.
import asyncio
import time

WDT_TIMEOUT_MS = 8000
FEED_EVERY_MS = 500


class Supervisor:
    def __init__(self, board):
        self.board = board
        self.last = {}
        self.allow_ms = {}
        self.starved = None  # name of the task that stopped the feeding

    def register(self, name, allow_ms):
        self.allow_ms[name] = allow_ms
        self.last[name] = time.ticks_ms()

    def checkin(self, name):
        self.last[name] = time.ticks_ms()

    def stale(self):
        now = time.ticks_ms()
        for name, allow in self.allow_ms.items():
            if time.ticks_diff(now, self.last[name]) > allow:
                return name
        return None

    async def run(self):
        self.board.wdt_start(WDT_TIMEOUT_MS)
        while True:
            name = self.stale()
            if name is None:
                self.board.wdt_feed()
            elif self.starved != name:
                self.starved = name
                print("watchdog: task '%s' is silent; letting the watchdog reset the board" % name)
            await asyncio.sleep_ms(FEED_EVERY_MS)
