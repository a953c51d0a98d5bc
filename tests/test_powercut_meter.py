"""Power cuts on the real sim meter (issue 5): the compiled firmware in the
unix-port MicroPython, its flash a LittleFS image, cut at random block writes
(torn writes included), by SIGKILL at random times, while booting, and with
the power-fail input, while consumption, top-ups (re-sends included), tariff
changes, offline tokens (typed on the keypad and relayed, replays included)
and button presses go on. tools/powercut.py drives it and audits
every restart; see docs/storage.md. `make soak SOAK_CUTS=n` runs the long one."""
import json

import pytest

import powercut

CUTS = 200


def check(out, cuts):
    print(json.dumps({k: v for k, v in out.items() if k != "msgs"}))
    assert out["violations"] == 0, "\n".join(out["msgs"])
    assert out["cuts"] == cuts and out["booted"] == cuts + 1
    # every way of losing power happened, and the world kept happening
    for k in ("flash", "kill", "warned", "boot"):
        assert out[k] > 0, k
    for k in ("topups", "resend_same", "resend_fresh", "tariffs", "presses", "long_presses",
              "tokens", "token_keypad", "token_replays", "tokens_applied"):
        assert out[k] > 0, k
    assert out["applied"] > 0 and out["energy_wh"] > 0
    assert out["max_loss_wh"] <= powercut.MAX_LOSS_WH and out["warned_loss_wh"] == 0


def test_campaign_of_power_cuts_on_the_running_meter(tmp_path, broker):
    out = powercut.campaign(CUTS, seed=7, workdir=str(tmp_path), broker_port=broker.port)
    check(out, CUTS)


@pytest.mark.soak
def test_soak_campaign_of_power_cuts_on_the_running_meter(tmp_path, broker, request):
    cuts = request.config.getoption("--soak-cuts") or 10000
    out = powercut.campaign(cuts, seed=20261123, workdir=str(tmp_path), broker_port=broker.port, progress=True)
    check(out, cuts)
