"""Reference head-end for the prepaid meter protocol (docs/protocol.md).

CPython + paho-mqtt, state in SQLite. `python -m headend --help` from tools/.
"""
