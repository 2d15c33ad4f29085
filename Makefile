# The two commands of the README: `make run` and `make test`. Both set up what they need.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PIP := $(BIN)/python -m pip

.PHONY: run test lint typecheck format bench clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed (set PYTHON=...)")'
	$(PYTHON) -m venv $(VENV)
	$(PIP) install --quiet --upgrade pip

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e .
	@touch $@

$(VENV)/.installed-dev: pyproject.toml | $(BIN)/python
	$(PIP) install --quiet -e ".[dev]"
	@touch $(VENV)/.installed $@

# Debian's Chromium, for the browser test (tests/e2e/test_audit_report.py): installed when
# missing (as root), and the stamp made only once it is there, so a machine without it
# tries again next time (the test skips, saying why, until then).
$(VENV)/.chromium: scripts/ensure-tool | $(BIN)/python
	sh scripts/ensure-tool chromium chromium "the browser tests"
	@if command -v chromium >/dev/null 2>&1; then touch $@; fi

$(VENV)/.promtool: scripts/ensure-tool | $(BIN)/python
	sh scripts/ensure-tool promtool prometheus "the promtool checks of docker/prometheus/"
	@if command -v promtool >/dev/null 2>&1; then touch $@; fi

run: $(VENV)/.installed
	$(BIN)/limit up

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy

# One worker per core; a test file stays on one worker (its module fixtures start once);
# files go out in collection order, where the longest tests come first (tests/conftest.py).
test: lint typecheck $(VENV)/.chromium $(VENV)/.promtool
	$(BIN)/pytest --numprocesses auto --dist loadfile --no-loadscope-reorder

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .mypy_cache .pytest_cache .ruff_cache
