# The counter of the last command that raised halfway and restarted the
# meter, kept in a small file of its own on the flash.
#
# A command that raised halfway (out of memory, a bug) may have left half of
# its change in RAM: a top-up credited but not in the order record, a tariff
# taken but no event. Nothing of it is durable yet unless its commit
# completed, so the safe way on is the one a power cut takes: restart from
# the flash state (energy at risk as for a cut without warning). Its ack
# ("internal", retryable) has left by then; should the broker deliver it
# again all the same (the ack or its PUBACK did not make it out), its counter,
# noted here, has the dispatcher refuse it rather than reset the meter in a loop.
NAME = "failed_cmd"


def read(root):
    """The counter noted by the last restart, -1 when none."""
    try:
        with open(root + "/" + NAME) as f:
            return int(f.read())
    except (OSError, ValueError):
        return -1


def restart(board, ctr):
    """Note `ctr`, then restart the board from its flash state."""
    try:
        with open(board.flash_root() + "/" + NAME, "w") as f:
            f.write(str(ctr))
    except Exception:
        pass   # restart all the same: the half-done change must not stay
    board.reset()
