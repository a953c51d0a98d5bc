# The technician's self-test (docs/tech-console.md, selftest()): a pass/fail
# line for the LCD, the buzzer, the relay (only with click=True after a
# login: it cuts the supply), storage, the modem, the clock and the
# watchdog. A coroutine: it runs beside the meter (the REPL's later()).
# Loaded for the call and dropped (firmware/repl/session.py, once).
import asyncio


def _known(v):
    return "--" if v is None else str(v)


def _text(v):
    return v.decode() if isinstance(v, (bytes, bytearray)) else str(v)


async def run(app, admin, click):
    b = app.board
    core = app.core
    res = []
    # LCD: every pixel on for a second (the boot self-test's frame,
    # ui/render.py), then the front panel draws its screen again
    from firmware.ui import render
    render.selftest(b, 1)
    await asyncio.sleep_ms(1000)
    app.lcd_due = True
    res.append(("lcd", "pass", "all pixels on 1 s: look at it"))
    b.buzzer(True)
    await asyncio.sleep_ms(150)
    b.buzzer(False)
    res.append(("buzzer", "pass", "150 ms tone: listen for it"))
    if click:
        want = core.relay_now()[0]
        b.relay_set(not want)
        await asyncio.sleep_ms(300)
        moved = b.relay_closed() == (not want)
        core.drive_relay()
        await asyncio.sleep_ms(50)
        back = b.relay_closed() == core.relay_now()[0]
        res.append(("relay", "pass" if moved and back else "FAIL",
                    "clicked %s and back; read back %s/%s" % (
                        "open" if want else "closed", moved, back)))
        admin._event("selftest", "relay click")
    else:
        res.append(("relay", "skip", "selftest(click=True) after login: cuts the supply 0.3 s"))
    try:
        import os
        path = b.flash_root() + "/selftest.tmp"
        data = bytes(range(64))
        with open(path, "wb") as f:
            f.write(data)
        with open(path, "rb") as f:
            same = f.read() == data
        os.remove(path)
        st = os.statvfs(b.flash_root())
        ok = same and not core.fault
        res.append(("storage", "pass" if ok else "FAIL", "write/read %s, %d of %d blocks free%s" % (
            "ok" if same else "MISMATCH", st[3], st[2], ", store fault " + core.fault if core.fault else "")))
    except OSError as e:
        res.append(("storage", "FAIL", repr(e)))
    m = app.modem
    if m is None:
        res.append(("modem", "skip", "no modem on this board (host network)"))
    else:
        h = m.health()
        ok = h["up"] or h["state"] in ("register", "dial")
        res.append(("modem", "pass" if ok else "FAIL", "state %s sim %s signal %s dBm %s" % (
            _text(h["state"]), _text(h.get("sim")), _known(h.get("rssi_dbm")),
            _text(h.get("fail_reason") or ""))))
    c = core.clock
    drift = b.rtc_get() - c.utc_s()
    ok = c.synced and -5 <= drift <= 5
    res.append(("clock", "pass" if ok else "FAIL", "%s, rtc %+d s from the meter's UTC" % (
        "synced" if c.synced else "NOT synced", drift)))
    stale = app.sup.stale()
    res.append(("watchdog", "pass" if stale is None else "FAIL",
                "every task checking in" if stale is None else "task %s silent" % stale))
    for name, r, why in res:
        print("%-9s %-4s %s" % (name, r, why))
