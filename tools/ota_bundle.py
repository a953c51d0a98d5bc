"""Over-the-air update bundles (docs/ota.md): build, show and check one.

A bundle is one file:

    b"OTAB1\\n"  manifest (canonical JSON)  b"\\n"  chunk table  image

- image: the new ROMFS image (build/mpy-esp32.romfs for a board,
  build/mpy-host.romfs for the sim), cut into 4096-byte chunks, one flash
  block each (the last one may be shorter);
- chunk table: the sha256 of every chunk, 32 bytes each, in order;
- manifest: {"ver", "hw", "size", "chunks", "sha" (sha256 of the image),
  "tsha" (sha256 of the table), optional "allow_downgrade": 1, "sig"},
  where sig = HMAC-SHA256(OTA key, canonical manifest without "sig"), hex.
  The OTA key is the meter's provisioned ota_key_hex, not its command key.

The head-end offers the manifest in an "ota" command (signed with the
command key as every command) and serves the table and the image in frames
(tools/headend/ota.py). Usage, from the top of the repository:

    .venv/bin/python tools/ota_bundle.py build build/mpy-esp32.romfs -o v2.ota \\
        --version 2 --hw METER_ESP32.1 --ota-key-hex <64 hex digits> [--allow-downgrade]
    .venv/bin/python tools/ota_bundle.py show v2.ota
    .venv/bin/python tools/ota_bundle.py check v2.ota --ota-key-hex <64 hex digits>

Exit status: 0 done (check: the bundle is whole and signed by that key);
1 check found problems (each printed); 2 a usage mistake or unreadable file.
"""
import argparse
import hashlib
import hmac
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from headend import codec   # noqa: E402

MAGIC = b"OTAB1\n"
CHUNK = 4096          # one flash block: the unit the meter hashes and erases
FRAME = 1024          # data bytes per MQTT message (docs/ota.md, "Frames")
HEADER = 8            # frame header: 1, object, tag (4 bytes), index (2 bytes)
OBJ_TABLE, OBJ_IMAGE = 0, 1
SLOT_BYTES = 256 * 1024   # a romfs partition (boards/METER_ESP32/partitions.csv)


class BundleError(ValueError):
    pass


def short(image):
    """The image served short, for the tests and benches of a truncated
    bundle: 100 bytes off, or less when the last frame holds no more, so
    that the last frame still comes (shorter) and the meter fails on the
    chunk's hash, not on a frame that never comes. (An image whose last
    frame holds one byte cannot be cut so: that frame goes, and the meter
    fails on its timeout instead.)"""
    last = len(image) % FRAME or FRAME
    return image[:-min(100, last - 1)] if last > 1 else image[:-1]


def sha_hex(data):
    return hashlib.sha256(data).hexdigest()


def chunks(image):
    return [image[i:i + CHUNK] for i in range(0, len(image), CHUNK)]


def sign_manifest(manifest, ota_key):
    body = {k: v for k, v in manifest.items() if k != "sig"}
    out = dict(body)
    out["sig"] = codec.mac_hex(ota_key, codec.canonical(body, skip="sig"))
    return out


def build(image, version, hw, ota_key, allow_downgrade=False):
    """(manifest, table, image) of a signed bundle of `image`."""
    if not image:
        raise BundleError("the image is empty")
    if len(image) > SLOT_BYTES:
        raise BundleError("the image is %d bytes, more than a romfs slot's %d" % (len(image), SLOT_BYTES))
    table = b"".join(hashlib.sha256(c).digest() for c in chunks(image))
    m = {"ver": version, "hw": hw, "size": len(image), "chunks": len(table) // 32,
         "sha": sha_hex(image), "tsha": sha_hex(table)}
    if allow_downgrade:
        m["allow_downgrade"] = 1
    return sign_manifest(m, ota_key), table, image


def dumps(manifest, table, image):
    return MAGIC + codec.canonical(manifest, skip=None) + b"\n" + table + image


def loads(data):
    """(manifest, table, image) of bundle bytes; BundleError if it is not one.
    A table or an image shorter than the manifest says is returned as it
    is (check() names it), so a damaged bundle can still be looked at."""
    if not data.startswith(MAGIC):
        raise BundleError("not an OTA bundle (no %r header)" % MAGIC)
    end = data.find(b"\n", len(MAGIC))
    if end < 0:
        raise BundleError("no manifest line")
    try:
        m = json.loads(data[len(MAGIC):end])
    except ValueError as e:
        raise BundleError("manifest is not JSON: %s" % e) from None
    if not isinstance(m, dict) or not isinstance(m.get("chunks"), int):
        raise BundleError("manifest is not an object with a chunk count")
    rest = data[end + 1:]
    t = m["chunks"] * 32
    return m, rest[:t], rest[t:]


def read(path):
    with open(path, "rb") as f:
        return loads(f.read())


def check(manifest, table, image, ota_key=None):
    """What is wrong with a bundle: a list of sentences, empty when whole
    (and, given the key, signed by it)."""
    out = []
    if len(image) != manifest.get("size"):
        out.append("the image is %d bytes, the manifest says %s" % (len(image), manifest.get("size")))
    if sha_hex(table) != manifest.get("tsha"):
        out.append("the chunk table does not match the manifest's tsha")
    if sha_hex(image) != manifest.get("sha"):
        out.append("the image does not match the manifest's sha")
    for i, c in enumerate(chunks(image)):
        if hashlib.sha256(c).digest() != table[i * 32:i * 32 + 32]:
            out.append("chunk %d does not match its hash in the table" % i)
            break
    if ota_key is not None:
        want = sign_manifest(manifest, ota_key)["sig"]
        if not hmac.compare_digest(want, str(manifest.get("sig"))):
            out.append("the signature is not this OTA key's")
    return out


def frame(manifest, table, image, obj, index):
    """The MQTT payload of frame `index` of the table (obj 0) or the image
    (obj 1), or None past its end."""
    data = table if obj == OBJ_TABLE else image
    piece = data[index * FRAME:(index + 1) * FRAME]
    if not piece or index > 0xFFFF:
        return None
    tag = bytes.fromhex(manifest["sha"][:8])
    return bytes([1, obj]) + tag + index.to_bytes(2, "big") + piece


def _key(text):
    try:
        key = bytes.fromhex(text)
    except ValueError:
        raise SystemExit("ota_bundle: --ota-key-hex is not hex") from None
    if len(key) != 32:
        raise SystemExit("ota_bundle: --ota-key-hex needs 64 hex digits (32 bytes), not %d" % (2 * len(key)))
    return key


def main(argv=None):
    p = argparse.ArgumentParser(description="build, show and check over-the-air update bundles (docs/ota.md)")
    sub = p.add_subparsers(dest="cmd", required=True)
    b = sub.add_parser("build", help="sign a ROMFS image into a bundle")
    b.add_argument("image")
    b.add_argument("-o", "--out", required=True)
    b.add_argument("--version", type=int, required=True, help="the new version (an integer, higher is newer)")
    b.add_argument("--hw", required=True, help="the hardware revision it is for (board.hw_rev)")
    b.add_argument("--ota-key-hex", required=True)
    b.add_argument("--allow-downgrade", action="store_true", help="sign it as a downgrade the meter may take")
    s = sub.add_parser("show", help="print the manifest")
    s.add_argument("bundle")
    c = sub.add_parser("check", help="check hashes (and the signature, given the key)")
    c.add_argument("bundle")
    c.add_argument("--ota-key-hex")
    a = p.parse_args(argv)
    try:
        if a.cmd == "build":
            with open(a.image, "rb") as f:
                image = f.read()
            parts = build(image, a.version, a.hw, _key(a.ota_key_hex), a.allow_downgrade)
            with open(a.out, "wb") as f:
                f.write(dumps(*parts))
            print("bundle %s: version %d for %s, %d bytes in %d chunks, sha256 %s"
                  % (a.out, a.version, a.hw, len(image), parts[0]["chunks"], parts[0]["sha"]))
            return 0
        m, table, image = read(a.bundle)
        if a.cmd == "show":
            print(json.dumps(m, indent=1, sort_keys=True))
            return 0
        bad = check(m, table, image, _key(a.ota_key_hex) if a.ota_key_hex else None)
        for line in bad:
            print("problem:", line)
        if not bad:
            print("bundle %s: whole%s" % (a.bundle, ", signed by that key" if a.ota_key_hex else ""))
        return 1 if bad else 0
    except (OSError, BundleError, codec.CanonError) as e:
        print("ota_bundle: %s" % e, file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
