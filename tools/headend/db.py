"""SQLite state of the head-end. Several worker processes may share one file:
every change is a short transaction, and command counters are allocated under
BEGIN IMMEDIATE so no two workers ever sign the same counter."""
import json
import re
import secrets
import sqlite3
import time

METER_ID = re.compile(r"^[A-Za-z0-9_-]{1,32}$")

SCHEMA = """
CREATE TABLE IF NOT EXISTS meters (
  meter_id TEXT PRIMARY KEY,
  key_hex TEXT NOT NULL,
  password TEXT NOT NULL,
  next_ctr INTEGER NOT NULL DEFAULT 1,
  next_order INTEGER NOT NULL DEFAULT 1,
  status TEXT, status_at REAL,
  state_json TEXT, state_seq INTEGER, state_at REAL,
  balance_minor INTEGER, balance_seq INTEGER, balance_t INTEGER
);
CREATE TABLE IF NOT EXISTS orders (
  order_id INTEGER PRIMARY KEY AUTOINCREMENT,
  meter_id TEXT NOT NULL,
  order_no INTEGER NOT NULL,
  amount_minor INTEGER NOT NULL,
  state TEXT NOT NULL,            -- processing, issued, credited, rejected, unsettled (outside the meter's record)
  created_at REAL NOT NULL,
  issued_at REAL, attempts INTEGER NOT NULL DEFAULT 0, ctr INTEGER,
  first_issued_at REAL, done_at REAL, latency_ms REAL,
  result TEXT, reason TEXT, balance_after_minor INTEGER, seq INTEGER,
  UNIQUE (meter_id, order_no)
);
CREATE TABLE IF NOT EXISTS commands (
  meter_id TEXT NOT NULL, ctr INTEGER NOT NULL, kind TEXT NOT NULL,
  payload TEXT NOT NULL, sent_at REAL NOT NULL,
  result TEXT, reason TEXT, ack_json TEXT, ack_at REAL,
  PRIMARY KEY (meter_id, ctr)
);
CREATE TABLE IF NOT EXISTS events (
  meter_id TEXT NOT NULL, seq INTEGER NOT NULL, kind TEXT NOT NULL,
  t INTEGER, body TEXT NOT NULL, received_at REAL NOT NULL, copies INTEGER NOT NULL DEFAULT 1,
  PRIMARY KEY (meter_id, seq)
);
CREATE TABLE IF NOT EXISTS notices (
  notice_id INTEGER PRIMARY KEY AUTOINCREMENT,
  meter_id TEXT NOT NULL, seq INTEGER NOT NULL, level INTEGER NOT NULL,
  balance_minor INTEGER NOT NULL, meter_t INTEGER NOT NULL, text TEXT NOT NULL,
  created_at REAL NOT NULL, UNIQUE (meter_id, seq)
);
"""


class UnknownMeter(KeyError):
    """No meter of that id in this head-end's database."""

    def __str__(self):
        return "unknown meter %s" % self.args[0]


class AlreadyProvisioned(ValueError):
    """Provisioning again would re-key a meter that is out there."""


def connect(path):
    con = sqlite3.connect(path, timeout=30, isolation_level=None, check_same_thread=False)
    con.row_factory = sqlite3.Row
    con.execute("PRAGMA journal_mode=WAL")
    con.executescript(SCHEMA)
    return con


class Tx:
    """BEGIN IMMEDIATE ... COMMIT, so concurrent workers serialise on writes."""

    def __init__(self, con):
        self.con = con

    def __enter__(self):
        self.con.execute("BEGIN IMMEDIATE")
        return self.con

    def __exit__(self, et, ev, tb):
        self.con.execute("ROLLBACK" if et else "COMMIT")


def provision(con, meter_id, key_hex=None, password=None, force=False):
    """Create a meter, or with `force` re-key one; returns its row as a dict.
    Without `force` an existing meter is refused: a new key makes the head-end
    refuse everything the meter signs with the old one, and the meter refuse
    every command, until the meter is given the new key too."""
    if not METER_ID.match(meter_id):
        raise ValueError("meter id must be 1-32 of A-Z a-z 0-9 _ -")
    key_hex = key_hex or secrets.token_hex(32)
    try:
        if len(bytes.fromhex(key_hex)) != 32:
            raise ValueError
    except ValueError:
        raise ValueError("key_hex must be 64 hex digits (32 bytes)") from None
    password = password or secrets.token_urlsafe(18)
    with Tx(con):
        exists = con.execute("SELECT 1 FROM meters WHERE meter_id=?", (meter_id,)).fetchone()
        if exists and not force:
            raise AlreadyProvisioned("meter %s is already provisioned; provisioning it again changes its key "
                                     "and password (add --force if that is what you want)" % meter_id)
        con.execute("INSERT INTO meters (meter_id, key_hex, password) VALUES (?,?,?) "
                    "ON CONFLICT(meter_id) DO UPDATE SET key_hex=excluded.key_hex, password=excluded.password",
                    (meter_id, key_hex, password))
    return meter(con, meter_id)


def meter(con, meter_id):
    row = con.execute("SELECT * FROM meters WHERE meter_id=?", (meter_id,)).fetchone()
    if row is None:
        raise UnknownMeter(meter_id)
    return dict(row)


def meters(con):
    return [dict(r) for r in con.execute("SELECT * FROM meters ORDER BY meter_id")]


def next_ctr(con, meter_id):
    """Allocate a command counter. It never goes below wall-clock milliseconds,
    so a head-end restored from an old backup still signs counters the meter
    has not seen."""
    floor = int(time.time() * 1000)
    with Tx(con):
        row = con.execute("SELECT next_ctr FROM meters WHERE meter_id=?", (meter_id,)).fetchone()
        ctr = max(row[0], floor)
        con.execute("UPDATE meters SET next_ctr=? WHERE meter_id=?", (ctr + 1, meter_id))
    return ctr


def new_order(con, meter_id, amount_minor):
    """A paid order, state Processing; the order number is per meter, increasing."""
    with Tx(con):
        row = con.execute("SELECT next_order FROM meters WHERE meter_id=?", (meter_id,)).fetchone()
        if row is None:
            raise UnknownMeter(meter_id)
        order_no = row[0]
        con.execute("UPDATE meters SET next_order=? WHERE meter_id=?", (order_no + 1, meter_id))
        cur = con.execute("INSERT INTO orders (meter_id, order_no, amount_minor, state, created_at) "
                          "VALUES (?,?,?,?,?)", (meter_id, order_no, amount_minor, "processing", time.time()))
    return cur.lastrowid


def order(con, order_id):
    row = con.execute("SELECT * FROM orders WHERE order_id=?", (order_id,)).fetchone()
    return dict(row) if row else None


def dumps(obj):
    return json.dumps(obj, sort_keys=True, separators=(",", ":"))
