# Two commands on a fresh machine: `make run` (fit the moons spec) and `make test`.
# Each sets up .venv (Python 3.12, pinned by .python-version) idempotently first.
PYTHON ?= $(shell command -v python3.12 2>/dev/null || echo python3)
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: setup run test bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -c 'import sys; assert sys.version_info >= (3, 12), "bnn_ppl needs Python >= 3.12 (see .python-version)"'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[jax,dev,bench]'
	touch $(STAMP)

run: $(STAMP)
	$(BIN)/bnn-ppl fit models/moons.toml --out runs/moons

test: $(STAMP)
	$(BIN)/python -m pytest -q

bench: $(STAMP)
	$(BIN)/python -m bench.run

clean:
	rm -rf $(VENV) runs .pytest_cache
