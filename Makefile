# Citadel developer entry points. `make run` and `make test` are the two set-up commands.
PYTHON ?= python3
VENV   := .venv
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
DATA   ?= ./data

.PHONY: run test protos bench fuzz clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -e '.[dev,postgres,hsm]'
	touch $(STAMP)

## run: start the CA on the embedded default (SQLite + self-signed root under $(DATA))
run: $(STAMP)
	$(VENV)/bin/citadel --data-dir $(DATA) serve

## test: lint, type-check and the whole test suite (real peers where installed)
test: $(STAMP)
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(PY) scripts/run_pytest.py

protos: $(STAMP)
	$(PY) scripts/gen_protos.py

## bench: every benchmark, one table (tests/bench/results/bench.{json,png})
bench: $(STAMP)
	$(PY) -m pip install --quiet -e '.[bench]'
	$(PY) -m tests.bench

## fuzz: every coverage-guided harness for 60 s each
fuzz: $(STAMP)
	$(PY) -m tests.fuzz --seconds 60

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache
