# An update offer: the "ota" command's manifest (docs/ota.md). Loaded only
# when a command offers an update, never at boot.
#
# accept() checks, in this order, and changes nothing on a refusal:
# the manifest's fields, its signature (HMAC-SHA256 under the provisioned
# ota_key_hex, a key the command key cannot stand in for), that the board
# has slots, the hardware revision, the slot record (not on trial, no
# roll-back still to report), the size against the slot, and the version:
# a version at or below the running one is refused unless the signed part
# says "allow_downgrade": 1. An accepted offer becomes the job file, which
# the agent (firmware/ota/agent.py) works from, after a power cut as well.
import binascii
import json
import os

from firmware.link import protocol as P

JOB = "/ota-job.json"     # under the board's flash root (10 characters or more: no interned name in app.py)
TABLE = "/ota.tbl"        # the chunk hashes, once fetched and checked
CHUNK = 4096              # bytes per chunk: one flash block, one hash
# manifest field -> (lo, hi) for ints, None for 64 hex digits, 0 for a short string
_FIELDS = {"ver": (1, 0x7FFFFFFF), "hw": 0, "size": (1, 0x7FFFFFFF), "chunks": (1, 4096),
           "sha": None, "tsha": None, "sig": None}
_OPTIONAL = {"allow_downgrade": (0, 1)}


def _hex64(v):
    if type(v) is not str or len(v) != 64:
        return False
    try:
        binascii.unhexlify(v)
    except ValueError:
        return False
    return True


def check_fields(m):
    for k in m:
        spec = _FIELDS.get(k, _OPTIONAL.get(k, False))
        if spec is False:
            return "unknown_field"
        v = m[k]
        if spec is None:
            ok = _hex64(v)
        elif spec == 0:
            ok = type(v) is str and 0 < len(v) <= 32
        else:
            ok = type(v) is int and spec[0] <= v <= spec[1]
        if not ok:
            return "bad_field"
    for k in _FIELDS:
        if k not in m:
            return "missing_field"
    if m["chunks"] != (m["size"] + CHUNK - 1) // CHUNK:
        return "bad_field"
    return None


def signed_ok(ota_key, m):
    return P.Signer(ota_key).verify(P.canonical(m, "sig"), m["sig"])


def ota_key(cfg):
    k = cfg.get("ota_key_hex")
    try:
        key = binascii.unhexlify(k)
    except (TypeError, ValueError):
        return None
    return key if len(key) == 32 and any(key) else None


def accept(board, cfg, m):
    """None when the offer is taken (or is the job already in hand), else
    the reason it is refused. The app takes this module still loaded after
    the command as its sign to start the download, so a refusal unloads
    it (firmware/ota/cleanup.py), with what it loaded."""
    reason = _accept(board, cfg, m)
    if reason:
        from firmware.ota import cleanup
        cleanup.unload()
    return reason


def _accept(board, cfg, m):
    reason = check_fields(m)
    if reason:
        return reason
    key = ota_key(cfg)
    if key is None:
        return "no_ota_key"
    if not signed_ok(key, m):
        return "bad_signature"
    slots = board.ota()
    if slots is None:
        return "no_slots"   # the code runs from files (docs/deploy.md): nowhere to put an image
    if m["hw"] != slots.hw:
        return "wrong_hw"
    rec = slots.record()
    if rec and rec[1]:
        # the other slot is the way back until this version is confirmed
        return "on_trial"
    if rec and rec[3]:
        # a roll-back not reported yet (ota/health.py): a switch would
        # write over its note
        return "unreported"
    if m["size"] > slots.size():
        return "too_big"
    running_ver = rec[4] if rec else 0
    if m["ver"] == running_ver:
        return "same_version"
    if m["ver"] < running_ver and not m.get("allow_downgrade"):
        return "downgrade"
    root = board.flash_root()
    old = job(root)
    if old is not None and old["sha"] == m["sha"] and old["sig"] == m["sig"]:
        return None     # offered again (a re-sent command): the download goes on
    # the app sees this module loaded after the command and starts the agent
    try:
        os.remove(root + TABLE)
    except OSError:
        pass
    # written whole then renamed: a cut leaves the old job or the new one
    with open(root + JOB + ".new", "w") as f:
        json.dump(m, f)
    os.rename(root + JOB + ".new", root + JOB)
    import sys
    a = sys.modules.get("firmware.ota.agent")
    if a:   # a download of another bundle runs: it starts again on this one
        a.restart()
    return None


def job(root):
    """The manifest of the update in progress, or None."""
    try:
        with open(root + JOB) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None


def drop(root):
    for name in (JOB, TABLE, TABLE + ".new"):   # .new: a table fetch a cut stopped
        try:
            os.remove(root + name)
        except OSError:
            pass
