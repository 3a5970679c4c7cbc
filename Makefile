# smscd — the two commands a newcomer needs are `make run` and `make test`.
PYTHON ?= python3
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed

.PHONY: run test lint typecheck pytest bench fuzz clean setup

setup: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

## run: migrate a demo SQLite store, start the bundled SMSC simulator and the daemon
run: $(STAMP)
	$(BIN)/python -m smscd.demo

## test: ruff, mypy, import contracts, then every test
test: lint typecheck pytest

lint: $(STAMP)
	$(BIN)/ruff check smscd tests
	$(BIN)/ruff format --check smscd tests
	$(BIN)/lint-imports

typecheck: $(STAMP)
	$(BIN)/mypy

pytest: $(STAMP)
	$(BIN)/pytest -q

## bench: print the benchmark figures quoted in the README
bench: $(STAMP)
	$(BIN)/python -m tests.bench

## fuzz: mutated PDUs into the SMPP core, then from the simulator into a running
## daemon; each bounded by count and time (not part of test)
FUZZ_CASES   ?= 1000000
FUZZ_SECONDS ?= 600
FUZZ_SEED    ?= 8079
fuzz: $(STAMP)
	$(BIN)/python -m tests.fuzz core --cases $(FUZZ_CASES) --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)
	$(BIN)/python -m tests.fuzz daemon --cases $(FUZZ_CASES) --seconds $(FUZZ_SECONDS) --seed $(FUZZ_SEED)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache .mypy_cache .ruff_cache var
