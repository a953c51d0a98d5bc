#!/bin/sh
# Make an MQTT broker available for tests and the demo.
# Prefer Debian's mosquitto; without root fall back to amqtt from PyPI.
PY="$1"
if command -v mosquitto >/dev/null 2>&1 || [ -x /usr/sbin/mosquitto ]; then
    echo "broker: mosquitto present"
elif [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    echo "broker: installing mosquitto"
    $SUDO apt-get update -q >/dev/null 2>&1
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q mosquitto >/dev/null \
        || { echo "ERROR: apt-get install mosquitto failed"; exit 1; }
    # tests start their own broker; the packaged service is not needed
    $SUDO systemctl disable --now mosquitto >/dev/null 2>&1 || true
else
    echo "broker: no root, installing amqtt (pure-Python) into the venv"
    "$PY" -m pip install -q --disable-pip-version-check amqtt==0.12.0 || exit 1
fi
# socat carries mpremote to a sim meter's console; install it alongside when we can.
if ! command -v socat >/dev/null 2>&1 && { [ "$(id -u)" = 0 ] || sudo -n true 2>/dev/null; }; then
    SUDO=""; [ "$(id -u)" = 0 ] || SUDO="sudo -n"
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q socat >/dev/null || true
fi
exit 0
