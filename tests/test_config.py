"""Provisioning faults (firmware/config.py, firmware/app.py): a meter without a
usable key meters but starts no link; unknown keys are reported; a config file
that is missing or not JSON boots the safe fault state, naming the file; a
broker that cannot be reached is logged, rate-limited."""
import json
import os
import re
import socket
import threading

import pytest

import ota_bundle
import signed
from lcd import goto, lcd_cut_reason
from mpy import ROOT, run_mpy_json
from simmeter import free_port
from wait import wait_for


class Listener:
    """A loopback TCP port that counts the connections made to it (a broker
    that would see every CONNECT, if one came)."""

    def __init__(self):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(8)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.sock.settimeout(0.2)
        self._stop = False
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop:
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            c.close()

    def close(self):
        self._stop = True
        self._t.join(2)
        self.sock.close()


@pytest.fixture
def listener():
    ln = Listener()
    yield ln
    ln.close()


def _wait_log(m, pattern, timeout=10):
    def found():
        return next((line for line in list(m.log_lines) if re.search(pattern, line)), None)
    return wait_for(found, timeout, "a log line %r; last lines:\n%s" % (pattern, "\n".join(m.log_lines[-20:])))


# --- the key -----------------------------------------------------------------

def test_a_meter_without_a_key_meters_charges_and_cuts_but_never_dials_the_broker(sim_meters, listener):
    m = sim_meters("nk", listener.port, config={"key_hex": None, "initial_balance_minor": 150,
                                                "price_milli_per_kwh": 150000}).start()
    line = _wait_log(m, r"fault E61 key_missing")
    assert "link not started" in line
    # metering and credit enforcement run as on any meter: 1 kWh costs 150
    m.control({"cmd": "pulses", "n": 999})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] == 999 and "E61 link off" in s["lcd"])
    assert st["relay_closed"] and st["meter"]["balance_minor"] == 1
    assert "call service" in st["lcd"]
    m.control({"cmd": "pulses", "n": 1})
    st = m.wait_for(lambda s: not s["relay_closed"])
    assert st["meter"]["balance_minor"] == 0 and st["meter"]["relay_reason"] == "credit"
    # cut for credit: the LCD says so first; the error screen names E61
    st = m.wait_for(lambda s: lcd_cut_reason(s["lcd"]) == "credit", timeout=5)
    assert st["meter"]["link_fault"] == 61
    st = goto(m, 11)
    assert "E61" in st["lcd"] and "call service" in st["lcd"]
    # the console and its log report it
    status = m.console("status()")
    assert "config fault E61 key_missing: no key_hex; link not started" in status
    assert m.console("link()") == ["link not started", status[-1]]
    assert any(l.endswith(" fault E61 key_missing") for l in m.console("comms(1000)"))
    # every command is refused with the reason, and changes nothing
    r = m.control({"cmd": "command", "raw": signed.command("nk", "topup", order=1, amount_minor=500).decode()})
    assert r["reply"]["result"] == "rejected" and r["reply"]["reason"] == "no_key"
    assert r["reply"]["fault"] == "E61"
    assert m.state()["meter"]["balance_minor"] == 0
    # seconds of metering later, the broker has seen nothing
    assert listener.accepted == 0


def test_the_same_meter_with_its_key_does_dial_the_listener(sim_meters, listener):
    # the control for the test above: the listener sees a meter that has a key
    m = sim_meters("wk", listener.port, config={"initial_balance_minor": 150}).start()
    wait_for(lambda: listener.accepted >= 1, 10, "the meter dialling the listener")
    assert "link_fault" not in m.state()["meter"]


@pytest.mark.parametrize("key_hex, why", [
    ("", "no key_hex"),
    ("zz" * 32, "key_hex is not hex"),
    ("11" * 16, "key_hex has 32 digits, needs 64"),
    ("00" * 32, "key_hex is all zeros"),
    (1234, "key_hex is not a string"),
])
def test_a_malformed_short_or_zero_key_is_a_fault_and_no_link(sim_meters, listener, key_hex, why):
    m = sim_meters("bk", listener.port, config={"key_hex": key_hex, "initial_balance_minor": 500}).start()
    code = "E61 key_missing" if key_hex == "" else "E62 key_bad"
    _wait_log(m, "fault %s - %s - link not started" % (code, why))
    m.control({"cmd": "pulses", "n": 100})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] == 100 and "%s link off" % code[:3] in s["lcd"])
    assert st["meter"]["balance_minor"] == 485 and st["relay_closed"]
    assert "config fault %s: %s; link not started" % (code, why) in m.console("status()")
    assert m.control({"cmd": "config"})["fault"] == code[4:]
    assert listener.accepted == 0


def test_link_key_accepts_only_32_bytes_of_hex_that_are_not_all_zero():
    out = run_mpy_json("""
import sys, json
from firmware import config
out = []
for k in json.loads(sys.stdin.readline()):
    key, fault = config.link_key(config.load({} if k == "absent" else {"key_hex": k}))
    out.append([len(key) if key else None, fault and list(fault)])
print(json.dumps(out))
""", ["absent", None, "", "11" * 32, "AB" * 32, "00" * 32, "00" * 31 + "01", "11" * 33, "g" * 64, []])
    assert out == [
        [None, ["key_missing", "no key_hex"]], [None, ["key_missing", "no key_hex"]],
        [None, ["key_missing", "no key_hex"]], [32, None], [32, None],
        [None, ["key_bad", "key_hex is all zeros"]], [32, None],
        [None, ["key_bad", "key_hex has 66 digits, needs 64"]],
        [None, ["key_bad", "key_hex is not hex"]], [None, ["key_bad", "key_hex is not a string"]]]


# --- every command refused without a key ---------------------------------------

NOW = 1767225600            # the sim's first boot (SimMeter's default epoch)
TOKEN_KEY_HEX = "000102030405060708090a0b0c0d0e0f"
OTA_KEY_HEX = "5a" * 32     # docs/ota.md: an update offer is checked against it
ZERO_KEY = bytes(32)        # what the meter signed with before it had key faults
# For each kind, a command that visibly changes the meter when carried out
# (the field of the state that shows it; None for a read), in an order where
# each one still does on the keyed control meter after those before it: the
# clock first (then expiry is judged), the mode last (postpaid has no warnings).
WOULD_CHANGE = [
    ("time", {"utc_s": NOW + 10 * 86400}, "synced"),
    ("topup", {"order": 1, "amount_minor": 500}, "balance_minor"),
    ("tariff", {"version": 2, "activate_utc_s": 0, "tariff": {"price_milli_per_kwh": 300000}}, "tariff_version"),
    ("config", {"settings": {"warn1_minor": 0, "warn2_minor": 0}}, "level"),
    ("relay", {"action": "disconnect"}, "relay_closed"),
    # ADD 12.00 under TOKEN_KEY_HEX (docs/protocol.md, "Worked examples")
    ("token", {"token": "163 363 325"}, "balance_minor"),
    ("query", {"what": "state"}, None),
    ("query", {"what": "commlog"}, None),
    ("query", {"what": "billing", "since": 0}, None),
    ("query", {"what": "billing_monthly", "since": 0}, None),
    ("query", {"what": "events", "since": 0}, None),
    ("mode", {"mode": "postpaid"}, "mode"),
    # an update offer the keyed meter takes (a job kept: its download then
    # waits for a link this meter never gets), so it goes after the rest
    ("ota", {"manifest": ota_bundle.build(b"\x00" * 4096, 2, "SIM.1", bytes.fromhex(OTA_KEY_HEX))[0]}, "ota_job"),
]
# the provisioning faults, and the control: the same meter with its key
KEY_CASES = {"E61": (None, ZERO_KEY), "E62": ("00" * 32, ZERO_KEY), "keyed": (signed.KEY_HEX, signed.KEY)}


def _firmware_kinds():
    with open(os.path.join(ROOT, "firmware", "link", "commands.py")) as f:
        block = f.read().split("\nKINDS = {", 1)[1].split("\n}", 1)[0]
    return re.findall(r'^    "([a-z_]+)": \(', block, re.M)


def test_every_command_kind_the_firmware_and_the_docs_know_is_sent_to_the_keyless_meters():
    # the cases below cover every kind, and every query, the firmware knows
    with open(os.path.join(ROOT, "docs", "protocol.md")) as f:
        table = f.read().split("\n| kind |", 1)[1].split("\n\n", 1)[0]
    documented = re.findall(r"^\| `([a-z_]+)` \|", table, re.M)
    kinds = _firmware_kinds()
    assert sorted(kinds) == sorted(documented) and len(kinds) >= 8
    assert sorted(set(k for k, _, _ in WOULD_CHANGE)) == sorted(kinds)
    with open(os.path.join(ROOT, "firmware", "link", "commands.py")) as f:
        whats = re.search(r'\("what", \(([^)]*)\)\)', f.read()).group(1)
    assert sorted(f["what"] for k, f, _ in WOULD_CHANGE if k == "query") == sorted(re.findall(r'"([a-z_]+)"', whats))


@pytest.fixture(scope="module", params=sorted(KEY_CASES))
def key_case(request, tmp_path_factory):
    """One stepped sim meter per key case, shared by every kind sent to it."""
    from simmeter import SimMeter
    key_hex, sign_key = KEY_CASES[request.param]
    # the meter task looks every 20 ms of real time, so a step is not a second long
    m = SimMeter("kf", str(tmp_path_factory.mktemp("keyfault")), broker_port=free_port(), step=True,
                 extra_args=["--meter-every-ms", "20"],
                 config={"key_hex": key_hex, "initial_balance_minor": 1000, "token_key_hex": TOKEN_KEY_HEX,
                         "ota_key_hex": OTA_KEY_HEX})
    m.start()
    yield request.param, m, sign_key
    m.stop()


def _documented_refusal_fields():
    with open(os.path.join(ROOT, "docs", "provisioning.md")) as f:
        text = f.read()
    said = re.search(r'unsigned refusal, `(\{.*?\})`', text, re.S).group(1)
    return set(re.findall(r'"([a-z_]+)":', said))


def _views(m):
    """What a command could change: the protocol state, the board's relay,
    an update's job kept (docs/simulator.md, the ota request)."""
    st = m.control({"cmd": "meter_state"})["state"]
    st["board_relay_closed"] = m.state()["relay_closed"]
    st["ota_job"] = m.control({"cmd": "ota"})["ota"][2]
    return st


@pytest.mark.parametrize("kind, fields, shows", WOULD_CHANGE,
                         ids=["%s-%s" % (k, f.get("what", "")) if k == "query" else k for k, f, _ in WOULD_CHANGE])
def test_a_meter_without_a_usable_key_refuses_every_kind_of_command_and_nothing_changes(key_case, kind, fields, shows):
    case, m, sign_key = key_case
    raw = signed.command("kf", kind, key=sign_key, **fields)
    ctr = json.loads(raw)["ctr"]
    before = _views(m)
    reply = m.control({"cmd": "command", "raw": raw.decode()})["reply"]
    tick = m.control({"cmd": "step"})       # one meter second: a tick would show a deferred effect
    assert tick["ticked"]
    after = _views(m)
    if case == "keyed":
        # the control: the same command does what it says on a meter with its key
        assert reply["result"] in ("ok", "credited") and reply["ctr"] == ctr, reply
        if shows:
            assert after[shows] != before[shows], (shows, before[shows], after[shows])
        return
    # the documented refusal (docs/protocol.md, `no_key`; docs/provisioning.md):
    # unsigned, naming the fault, with the command's counter and kind
    assert reply == {"v": 1, "meter": "kf", "ctr": ctr, "kind": kind, "result": "rejected",
                     "reason": "no_key", "fault": case}, reply
    assert set(reply) == _documented_refusal_fields()
    # and nothing changed but the time, by the one stepped second
    assert after.pop("t") == before.pop("t") + 1
    assert after == before
    assert (after["balance_minor"], after["tariff_version"], after["mode"], after["synced"]) == (
        1000, 1, "prepaid", False)


# --- unknown keys --------------------------------------------------------------

def test_a_misspelt_key_is_reported_in_the_log_and_the_console(sim_meters):
    m = sim_meters("uk", config={"inital_balance_minor": 500, "zz_other": 1}).start()
    assert m.state()["meter"]["balance_minor"] == 0   # the misspelt key took no effect
    _wait_log(m, r"config unknown key inital_balance_minor \(ignored")
    _wait_log(m, r"config unknown key zz_other \(ignored")
    assert "config unknown keys (ignored): inital_balance_minor zz_other" in m.console("status()")
    log = m.console("comms(1000)")
    assert any(l.endswith(" cfg unknown inital_balance_m") for l in log), log
    assert m.control({"cmd": "config"})["unknown"] == ["inital_balance_minor", "zz_other"]
    # a key is not a fault: nothing else is reported
    assert m.control({"cmd": "config"})["fault"] is None


def _keys_the_firmware_reads():
    """Every config key named in the firmware that reads the provisioning."""
    keys = set()
    # cfg["k"] / cfg.get("k"), not an assignment cfg["k"] = ... (a server setting kept there)
    pat = re.compile(r"""(?:\bcfg|\bc|\bp|\bself\.cfg|provisioning\(\))(?:\.get\(|\[)"([a-z_0-9]+)"(?!\]\s*=[^=])""")
    for rel in ("firmware/app.py", "firmware/meter.py", "firmware/core/boot.py", "firmware/core/facade.py",
                "firmware/config.py", "firmware/boards/esp32.py"):
        with open(os.path.join(ROOT, rel)) as f:
            src = f.read()
        keys |= set(pat.findall(src))
        m = re.search(r"_CREDIT_KEYS = \((.*?)\)", src, re.S)
        if m:
            keys |= set(re.findall(r'"([a-z_0-9]+)"', m.group(1)))
    return sorted(keys)


def test_every_key_the_firmware_reads_is_in_the_config_schema():
    keys = _keys_the_firmware_reads()
    assert {"key_hex", "imp_per_kwh", "tariff", "apn", "ppp_user", "risk_wh"} <= set(keys)
    out = run_mpy_json("""
import sys, json
from firmware import config
keys = json.loads(sys.stdin.readline())
print(json.dumps({"unknown": config.unknown_keys(dict((k, 1) for k in keys)),
                  "schema": sorted(list(config.DEFAULTS) + config.OPTIONAL.split())}))
""", keys)
    assert out["unknown"] == []
    # and the table of docs/provisioning.md lists the whole schema
    with open(os.path.join(ROOT, "docs", "provisioning.md")) as f:
        doc = f.read()
    documented = set()
    for row in doc.splitlines():
        if row.startswith("| `"):
            documented |= set(re.findall(r"`([a-z_0-9]+)`", row.split("|")[1]))
    assert [k for k in out["schema"] if k not in documented] == []


# --- the file itself -------------------------------------------------------------

def test_read_names_the_file_when_it_is_missing_not_json_or_not_an_object(tmp_path):
    files = {"missing": None, "broken": '{"meter_id": "x", ', "list": "[1, 2]", "good": '{"meter_id": "x"}'}
    paths = {}
    for name, text in files.items():
        paths[name] = str(tmp_path / (name + ".json"))
        if text is not None:
            with open(paths[name], "w") as f:
                f.write(text)
    out = run_mpy_json("""
import sys, json
from firmware import config
out = {}
for name, path in json.loads(sys.stdin.readline()).items():
    try:
        out[name] = ["ok", config.read(path)]
    except (OSError, ValueError) as e:
        out[name] = [config.read_fault(e), str(e), type(e).__name__]
print(json.dumps(out))
""", paths)
    assert out["good"] == ["ok", {"meter_id": "x"}]
    assert out["missing"][0] == "config_missing" and paths["missing"] in out["missing"][1]
    assert out["broken"][:2] == ["config_bad", "config %s: not valid JSON (syntax error in JSON)" % paths["broken"]]
    assert out["list"][:2] == ["config_bad", "config %s: not a JSON object" % paths["list"]]
    # the same exception types as before, now with the file named
    assert [out[k][2] for k in ("missing", "broken", "list")] == ["OSError", "ValueError", "ValueError"]


@pytest.mark.parametrize("damage, code, lcd", [("missing", "config_missing", "E63"),
                                               ("not json", "config_bad", "E64")])
def test_an_unusable_config_file_boots_the_safe_fault_state_naming_the_file(sim_meters, listener, damage, code, lcd):
    # Choice: not even the metering constant is known, so the meter takes the
    # store's safe state (relay open, energy counted in RAM, nothing written)
    # and shows the code; it does not crash, so it does not reset in a loop.
    m = sim_meters("cf", listener.port, config={"initial_balance_minor": 777})
    good = m.config_path + ".good"
    os.rename(m.config_path, good)
    if damage == "not json":
        with open(m.config_path, "w") as f:
            f.write('{"meter_id": "cf", "initial_balance_minor": 777,')
    m.start()
    st = m.wait_for(lambda s: s["lcd"] and s["lcd"][0].startswith("Meter fault"))
    assert st["lcd"][1] == lcd and not st["relay_closed"]
    line = _wait_log(m, "fault %s %s - config %s" % (lcd, code, re.escape(m.config_path)))
    assert "link not started" in line
    status = m.console("status()")
    assert "fault %s" % code in status
    assert any(l.startswith("config fault %s %s: config %s" % (lcd, code, m.config_path)) for l in status)
    m.control({"cmd": "pulses", "n": 50})
    st = m.wait_for(lambda s: s["meter"]["import_wh"] == 50)   # energy still counted
    assert not st["relay_closed"]
    r = m.control({"cmd": "command", "raw": signed.command("cf", "topup", order=1, amount_minor=5).decode()})
    assert r["reply"]["reason"] == "no_key"
    # no crash loop: the same process meters on after the refused command
    m.control({"cmd": "pulses", "n": 1})
    m.wait_for(lambda s: s["meter"]["import_wh"] == 51)
    assert m.alive() and m.exits == [] and listener.accepted == 0
    # fixed by a technician: the meter starts from its provisioning, because
    # the fault state wrote no factory state from the defaults
    m.kill()
    os.replace(good, m.config_path)
    m.start()
    st = m.wait_for(lambda s: s["meter"]["balance_minor"] == 777 and s["relay_closed"])
    assert "link_fault" not in st["meter"] and not st["meter"]["fault"]


# --- the broker ------------------------------------------------------------------

def test_a_broker_that_cannot_be_reached_is_logged_with_address_and_reason(sim_meters):
    port = free_port()   # nothing listens there
    m = sim_meters("nb", port, config={"initial_balance_minor": 500}).start()
    _wait_log(m, r"\[nb\] link connect failed 127\.0\.0\.1:%d connect refused tries 1$" % port)
    log = m.console("comms(1000)")
    assert any(l.endswith(" fail connect refused") for l in log), log
    assert "state backoff" in m.console("link()") or "state connecting" in m.console("link()")


def test_connect_failures_are_rate_limited_with_the_tries_counted():
    port = free_port()
    out = run_mpy_json("""
import sys, json, time, asyncio
from firmware.link.session import Session
port = json.loads(sys.stdin.readline())
lines = []
s = Session("rl", "127.0.0.1", port, log=lambda *a: lines.append([str(x) for x in a]))
s.BACKOFF_MIN_MS = 10
s.BACKOFF_MAX_MS = 20
s.FAIL_LOG_MS = 250
tries = [0]
inner = s._connect_failed
def counted():
    tries[0] += 1
    inner()
s._connect_failed = counted
async def main():
    asyncio.create_task(s.run(lambda t, p: None))
    t0 = time.ticks_ms()
    while tries[0] < 60:
        await asyncio.sleep_ms(5)
    return time.ticks_diff(time.ticks_ms(), t0)
ms = asyncio.run(main())
print(json.dumps({"lines": lines, "tries": tries[0], "unlogged": s._fails, "ms": ms}))
""", port)
    lines = out["lines"]
    assert lines[0] == ["link", "connect failed", "127.0.0.1:%d" % port, "connect refused", "tries 1"]
    assert all(l[:4] == lines[0][:4] for l in lines)
    # one line per FAIL_LOG_MS at most, and no try goes uncounted
    assert 2 <= len(lines) <= out["ms"] // 250 + 1, out
    logged = sum(int(l[4].split()[1]) for l in lines)
    assert logged + out["unlogged"] == out["tries"] == 60
    assert max(int(l[4].split()[1]) for l in lines[1:]) > 1
