# Picks the board implementation for the platform the firmware runs on.
import sys


def make_board():
    if sys.platform == "esp32":
        from firmware.boards.esp32 import Esp32Board
        return Esp32Board()
    from firmware.boards.sim import SimBoard
    return SimBoard()
