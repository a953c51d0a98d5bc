# The technician's PIN: login, idle timeout and lockout for the REPL's
# privileged helpers (docs/tech-console.md, "Privileged actions").
#
# The PIN is provisioned as a salted hash (tech_pin_hash, tech_pin_salt: hex,
# docs/provisioning.md), never in clear: HASH_ROUNDS of SHA-256 over the salt
# and the PIN, so that a copied config file costs a brute force per meter.
# Times are meter time (the injectable clock): a sim can step past a lockout.
#   - a login lasts IDLE_MS after the last statement typed;
#   - FREE_TRIES wrong PINs in a row lock the console for LOCK_MS, and each
#     lockout after that doubles the delay (one wrong PIN at a time, then);
#   - a right PIN ends the run of wrong ones, not the doubling: the next
#     run of wrong PINs starts where the last lockout left off.
import binascii
import hashlib

HASH_ROUNDS = 1000
IDLE_MS = 300000
FREE_TRIES = 3
LOCK_MS = 60000
LOCK_MAX_MS = 86400000


def pin_hash(pin, salt):
    """Hex SHA-256 rounds over salt and PIN (both as given: str PIN, bytes salt)."""
    h = salt + str(pin).encode()
    for _ in range(HASH_ROUNDS):
        h = hashlib.sha256(salt + h).digest()
    return binascii.hexlify(h).decode()


class Auth:
    def __init__(self, cfg, now_ms):
        self.cfg = cfg
        self.now_ms = now_ms
        self.until_ms = None      # logged in until then (meter time)
        self.fails = 0            # wrong PINs since the last lockout or login
        self.lockouts = 0
        self.locked_until_ms = None

    def has_pin(self):
        return bool(self.cfg.get("tech_pin_hash") and self.cfg.get("tech_pin_salt"))

    def locked_ms(self):
        """Milliseconds of lockout left (0: not locked)."""
        u = self.locked_until_ms
        left = 0 if u is None else u - self.now_ms()
        return left if left > 0 else 0

    def login(self, pin):
        """(result, text): result "ok", "wrong", "lockout" (this one locked
        the console), "locked" (it was locked already) or "no_pin"."""
        if not self.has_pin():
            return "no_pin", "no technician PIN is provisioned on this meter (provision(tech_pin=...))"
        left = self.locked_ms()
        if left:
            return "locked", "locked: try again in %d s" % ((left + 999) // 1000)
        try:
            salt = binascii.unhexlify(self.cfg["tech_pin_salt"])
        except ValueError:
            return "no_pin", "tech_pin_salt is not hex: provision the PIN again"
        if pin_hash(pin, salt) == self.cfg["tech_pin_hash"]:
            self.fails = 0
            self.until_ms = self.now_ms() + IDLE_MS
            return "ok", "logged in: privileged helpers for %d min after the last statement" % (
                IDLE_MS // 60000)
        self.until_ms = None
        self.fails += 1
        free = FREE_TRIES if self.lockouts == 0 else 1
        if self.fails >= free:
            delay = LOCK_MS << self.lockouts if self.lockouts < 12 else LOCK_MAX_MS
            delay = min(delay, LOCK_MAX_MS)
            self.lockouts += 1
            self.fails = 0
            self.locked_until_ms = self.now_ms() + delay
            return "lockout", "wrong PIN: console locked for %d s" % (delay // 1000)
        return "wrong", "wrong PIN (%d more before a lockout)" % (free - self.fails)

    def logout(self):
        self.until_ms = None

    def ok(self):
        """True while logged in (and not idle past IDLE_MS)."""
        u = self.until_ms
        if u is None:
            return False
        if self.now_ms() > u:
            self.until_ms = None
            return False
        return True

    def touch(self):
        """A statement was typed: a live login lasts IDLE_MS from now."""
        if self.ok():
            self.until_ms = self.now_ms() + IDLE_MS
