# MicroPython board definition of the prepaid meter (docs/deploy.md).
# Built out of the MicroPython tree, from the esp32 port:
#   make -C ports/esp32 BOARD_DIR=<this repo>/boards/METER_ESP32
# The FROZEN variant (BOARD_VARIANT=FROZEN) also freezes firmware/ and lib/.
set(IDF_TARGET esp32)

# The partition table is this folder's partitions.csv. ESP-IDF reads a
# relative CONFIG_PARTITION_TABLE_CUSTOM_FILENAME from the port's folder, and
# the port copies sdkconfig files without expanding variables, so the
# absolute path goes into a fragment written here.
set(METER_SDKCONFIG_PARTITIONS ${CMAKE_BINARY_DIR}/sdkconfig.meter_partitions)
file(WRITE ${METER_SDKCONFIG_PARTITIONS}
    "CONFIG_PARTITION_TABLE_CUSTOM_FILENAME=\"${MICROPY_BOARD_DIR}/partitions.csv\"\n")

set(SDKCONFIG_DEFAULTS
    boards/sdkconfig.base
    ${SDKCONFIG_IDF_VERSION_SPECIFIC}
    ${MICROPY_BOARD_DIR}/sdkconfig.board
    ${METER_SDKCONFIG_PARTITIONS}
)
