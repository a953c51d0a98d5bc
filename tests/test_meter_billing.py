"""Midnight and month end on the running sim meter: the frozen records are
taken, published as signed events with their OBIS-named registers, answer the
billing queries, and metering goes on across the boundary."""
import calendar

import signed
from mqttc import Watcher

# 2026-01-31 23:58:00 UTC: two minutes before a day and a month end
EPOCH = calendar.timegm((2026, 1, 31, 23, 58, 0))
DAY = EPOCH // 86400                       # local day number (UTC offset 0)
MONTH = 2026 * 12 + 0                      # year*12 + month-1


def cmd(m, kind, **fields):
    return m.control({"cmd": "command", "raw": signed.command(m.meter_id, kind, **fields).decode()})["reply"]


def test_midnight_and_month_end_freeze_records_publish_them_and_answer_billing_queries(sim_meters, broker):
    w = Watcher(broker.port, topics=("meters/b1/evt",))
    m = sim_meters("b1", broker_port=broker.port, step=True, epoch=EPOCH,
                   extra_args=["--meter-every-ms", "5"],
                   config={"initial_balance_minor": 10 ** 6, "key_hex": signed.KEY_HEX}).start()
    for _ in range(240):                           # 4 minutes at 3.6 kW: 1 Wh a second
        r = m.control({"cmd": "step", "w": 3600, "ms": 1000})
        assert r["ticked"], "the meter task stopped ticking"
    st = m.control({"cmd": "meter_state"})["state"]
    assert 236 <= st["obis_1_8_0"] <= 240          # metering went on past midnight
    daily = w.wait(lambda t, b: isinstance(b, dict) and b.get("kind") == "frozen_daily")
    assert daily["day"] == DAY and 118 <= daily["obis_1_8_0"] <= 121 and daily["wh"] == daily["obis_1_8_0"]
    monthly = w.wait(lambda t, b: isinstance(b, dict) and b.get("kind") == "frozen_monthly")
    assert monthly["month"] == MONTH and monthly["obis_1_8_0"] == daily["obis_1_8_0"]
    raws = [p for _, p, _ in w.msgs]
    for ev in (daily, monthly):   # signed by the meter, as every event
        assert any(signed.verify(p)["seq"] == ev["seq"] for p in raws)

    bill = cmd(m, "query", what="billing", since=0)
    assert bill["result"] == "ok" and bill["data"] == [[DAY, daily["obis_1_8_0"], 0, daily["wh"]]]
    assert cmd(m, "query", what="billing", since=DAY)["data"] == []
    months = cmd(m, "query", what="billing_monthly", since=0)
    assert months["result"] == "ok" and len(months["data"]) == 1
    rec = months["data"][0]
    assert rec[0] == MONTH and rec[1] == monthly["obis_1_8_0"] and rec[7] == monthly["wh"]
    w.close()
