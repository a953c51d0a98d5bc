# Frozen manifest of the meter (the FROZEN variant, docs/deploy.md): the
# port's own frozen modules, then every module of firmware/ and lib/ compiled
# into the MicroPython image. Paths are relative to this file; lib/umqtt/ is
# installed by `make setup` and must be there when the image is built.
# tests/test_board_image.py checks that this freezes exactly the modules
# tools/compile_mpy.py compiles.
include("$(PORT_DIR)/boards/manifest.py")

package("firmware", base_path="../..")
# lib/ is frozen as a tree whose root is on the import path, as /lib is
freeze("../../lib")
