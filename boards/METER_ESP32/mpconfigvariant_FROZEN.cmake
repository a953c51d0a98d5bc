# The frozen route (docs/deploy.md): firmware/ and lib/ are compiled into the
# MicroPython image itself by manifest.py, so no ROMFS image is deployed and
# every firmware change is a full reflash. ROMFS stays enabled and the
# partition table stays the same, so a board can move between the routes
# without losing its data partition.
set(MICROPY_FROZEN_MANIFEST ${MICROPY_BOARD_DIR}/manifest.py)

list(APPEND MICROPY_DEF_BOARD
    MICROPY_HW_BOARD_NAME="Prepaid meter (ESP32, frozen firmware)"
)
