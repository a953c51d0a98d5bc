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

.PHONY: all setup test run bench soak compile clean distclean coverage-esp32

all: test

setup: $(BUILD)/.venv-ok lib/umqtt/simple.py $(BUILD)/.broker-ok

$(BUILD)/.venv-ok: tools/requirements.txt
	@mkdir -p $(BUILD)
	@test -x $(PY) || $(PYTHON3) -m venv $(VENV)
	$(PY) -m pip install -q --disable-pip-version-check -r tools/requirements.txt
	@test -x "$(MICROPYTHON)" || { echo "ERROR: no micropython at $(MICROPYTHON)"; exit 1; }
	@"$(MICROPYTHON)" -c "import sys; print('micropython', sys.implementation.version)"
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

test: setup compile
	$(PY) -m pytest -q tests

run: setup
	$(PY) tools/run_demo.py

bench: setup
	$(PY) tools/bench.py $(BENCH)

soak: setup
	$(PY) -m pytest -q -s tests -m soak --soak-cuts=$(SOAK_CUTS) $(PYTEST_ARGS)

coverage-esp32: setup
	$(PY) tools/esp32_coverage.py

clean:
	rm -rf $(BUILD)/mpy $(BUILD)/*.json .pytest_cache

distclean:
	rm -rf $(BUILD) $(VENV) lib/umqtt
