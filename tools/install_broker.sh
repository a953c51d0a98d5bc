#!/bin/sh
# Make an MQTT broker available for tests and the demo.
# Prefer Debian's mosquitto; without root fall back to amqtt from PyPI.
PY="$1"
SBIN_MOSQUITTO="${SBIN_MOSQUITTO:-/usr/sbin/mosquitto}"   # tests point it elsewhere
if command -v mosquitto >/dev/null 2>&1 || [ -x "$SBIN_MOSQUITTO" ]; then
    echo "setup: mosquitto present"
elif [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    echo "setup: installing mosquitto with apt-get (package lists, then the package; a minute or so)"
    $SUDO apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mosquitto >/dev/null \
        || { echo "ERROR: apt-get install mosquitto failed"; exit 1; }
    # tests start their own broker; the packaged service is not needed
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
else
    echo "setup: no root, so installing the pure-Python amqtt broker into the venv with pip"
    "$PY" -m pip install -q --disable-pip-version-check amqtt==0.12.0 || exit 1
fi
# socat carries mpremote to a sim meter's console; tmux drives `make run` in
# tests/test_tools_run_demo.py. Install them alongside when we can.
for tool in socat tmux; do
    if ! command -v $tool >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
        SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
        echo "setup: installing $tool with apt-get"
        DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q $tool >/dev/null || true
    fi
done
exit 0
