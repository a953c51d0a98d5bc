# The sim's control requests about the running app, beside the board's own
# (sim.py): tests and `make run` read the meter's state and drive commands
# through them. Production boards have no control socket, so none of this
# is on an ESP32 (docs/simulator.md lists the requests).


async def request(app, board, req):
    """The reply to one app-level request, None when it is not one."""
    # (imports inside: this module's globals stay few, on the sim's heap)
    import gc
    import json
    cmd = req.get("cmd")
    if cmd == "state":
        out = board.snapshot()
        out["meter"] = _snapshot(app)
        # which screen the front panel shows, and whether a confirmation or
        # a result screen is up (firmware/ui/panel.py): what the customer
        # sees, so the screenshot runner need not count presses
        out["meter"]["panel"] = [app.ui.screen, app.ui.mode]
        return out
    if cmd == "hang":
        return await _hang(app, req["task"], req.get("mode", "await"))
    if cmd == "command":  # same path as a server command, without the link
        raw = req["raw"].encode() if "raw" in req else json.dumps(req["body"]).encode()
        reply = {"ok": True, "reply": json.loads(app.handle_command(raw))}
        # a command that raised halfway: the reply cannot be held back for
        # the restart, so the meter restarts at once and the caller sees its
        # socket close
        app.restart_after_failed()
        return reply
    if cmd == "config":
        f = app.config_fault
        return {"ok": True, "fault": f and f[0], "lcd": app.fault_lcd(), "why": f and f[1],
                "unknown": app.cfg_unknown}
    if cmd == "meter_state":
        return {"ok": True, "state": app.core.state()}
    if cmd == "mem":
        import time
        t0 = time.ticks_us()
        gc.collect()
        gc_us = time.ticks_diff(time.ticks_us(), t0)   # a full collection's pause
        if req.get("blocks"):
            # the largest free block ("max free sz", in blocks) is printed,
            # not returned: SimMeter.mem(blocks=True) reads it off the log
            import micropython
            micropython.mem_info()
        return {"ok": True, "free_after_gc": gc.mem_free(), "total": gc.mem_free() + gc.mem_alloc(),
                "gc_us": gc_us}
    if cmd == "modules":  # what the heap holds code for (docs/benchmarks.md)
        import sys
        return {"ok": True, "modules": sorted(sys.modules)}
    if cmd == "mem_map":
        import micropython
        gc.collect()
        micropython.mem_info(1)
        return {"ok": True}
    if cmd == "qstr_info":
        # the interned names' pools, which the interpreter prints (not
        # returns): SimMeter.qstr_pools() reads them off the console log
        import micropython
        micropython.qstr_info(req.get("names", 0))   # names=1: each name too
        return {"ok": True}
    if cmd in ("ota", "arm_ota_cut"):   # an update's view and power cuts (boards/sim_ota.py)
        from firmware.boards import sim_ota
        try:
            return sim_ota.control(app, board, req)
        finally:
            from firmware.ota import cleanup
            cleanup.unload()   # as after an update: nothing of it stays
    if cmd == "lcd_frame":
        return {"ok": True, "hex": board.lcd_frame_hex(), "lines": board.lcd_text()}
    return None


def _snapshot(app):
    # the meter's figures the tests read (st["meter"]): the core's view plus
    # the app's link facts
    s = app.core.snapshot()
    s["meter_id"] = app.meter_id
    if app.config_fault:
        s["link_fault"] = app.fault_lcd()
    s["link_up"] = bool(app.session and app.session.up)
    s["store_level"] = not app.core.durable.store.behind
    if app.modem:
        h = app.modem.health()
        s["signal_dbm"] = h["rssi_dbm"] if h.get("rssi_dbm") is not None else "--"
        s["modem"] = h.get("state")
    return s


async def _hang(app, name, mode):
    # The watchdog tests' broken task. "spin": stuck in a tight loop, which
    # starves every task (this one never yields, so no reply comes).
    # "await": stuck for good while the others run on; it stops checking in
    # with the supervisor as a task awaiting what never comes would.
    import asyncio
    if mode == "spin":
        while True:
            pass
    task = app.tasks.get(name)
    if task is None:
        return {"ok": False, "error": "no task %r" % name}
    task.cancel()
    await asyncio.sleep_ms(0)
    return {"ok": True}
