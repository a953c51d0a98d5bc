# What of the meter's log lines goes to the communication log the head-end
# can query (commlog.py, codes in docs/protocol.md): the link's and the
# modem's happenings, a short detail each.
def note(commlog, parts, connects):
    """parts: one log line's words, as App.log got them; connects: the
    session's connect count (None without a session)."""
    if len(parts) < 2:
        return
    if parts[0] == "link":
        what = parts[1]
        if what == "up":
            commlog.add("conn", "" if connects is None else str(connects))
        elif what == "down":
            commlog.add("disc", str(parts[2] if len(parts) > 2 else "")[:24])
        elif what == "connect failed" and len(parts) > 3:  # rate-limited by the session
            commlog.add("fail", str(parts[3])[:24])
    elif parts[0] == "modem":
        commlog.add("modem", " ".join(str(p) for p in parts[1:])[:24])
