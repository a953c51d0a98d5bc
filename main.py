# Starts the meter firmware unless boot.py chose maintenance mode.
# On the ESP32, boot.py and main.py run one after the other in the same
# globals, so boot's decision and board are visible here.
try:
    SKIP_APP
except NameError:  # started without boot.py (e.g. `micropython main.py`)
    SKIP_APP, _board = False, None

if not SKIP_APP:
    from firmware import app
    app.main(_board)
