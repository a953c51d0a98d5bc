// The prepaid meter board (docs/hardware.md): an ESP32-WROOM-32 with 4 MB
// flash and no PSRAM.

#ifndef MICROPY_HW_BOARD_NAME
#define MICROPY_HW_BOARD_NAME "Prepaid meter (ESP32)"
#endif
#define MICROPY_HW_MCU_NAME "ESP32"

// ROMFS: at start-up MicroPython mounts the partition labelled "romfs"
// (partitions.csv) at /rom and puts /rom and /rom/lib on sys.path; the
// firmware's bytecode then runs in place from memory-mapped flash instead
// of being copied into the heap (docs/deploy.md, "Why ROMFS").
#define MICROPY_VFS_ROM (1)
