# The two commands: `make run` (set up, then the main job) and `make test` (set up, then
# every test). Both are idempotent: stamps make a second run skip what is done.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
# First Python >= 3.12 found: $PYTHON, python3.13/3.12 on PATH, then pyenv's.
PYTHON ?= $(shell for p in python3.13 python3.12 \
	$$(pyenv prefix 3.13 2>/dev/null)/bin/python3.13 $$(pyenv prefix 3.12.1 2>/dev/null)/bin/python3.12 \
	$$(ls -d $$HOME/.pyenv/versions/3.1[2-9]*/bin/python3 2>/dev/null); do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 12))' 2>/dev/null \
	&& { command -v $$p; break; }; done)

# pip repeats one warning per package for index folders this machine's pip config names.
PIP_NOISE := is ignored: it is neither a file nor a directory

.PHONY: setup setup-test run test lint bench clean-var
.DEFAULT_GOAL := run

setup: $(BIN)/.installed node_modules/.installed

$(BIN)/.installed: pyproject.toml
	@test -n "$(PYTHON)" || { echo "error: Python >= 3.12 not found; set PYTHON=/path/to/python3.12" >&2; exit 1; }
	@# As root, the hub runs users' servers as their own OS accounts: they must be able to
	@# run the venv's Python (hub_config/python-for-accounts.sh; docs/hub.md).
	@if [ -x $(BIN)/python ] && { [ "$$(id -u)" != 0 ] || runuser -u nobody -- $(BIN)/python -c '' 2>/dev/null; }; then :; \
	else rm -rf $(VENV) && "$$(hub_config/python-for-accounts.sh "$(PYTHON)")" -m venv $(VENV); fi
	@set -o pipefail; { $(BIN)/python -m pip install --quiet --upgrade pip && \
	  $(BIN)/python -m pip install --quiet -e '.[test]'; } 2>&1 | { grep -v "$(PIP_NOISE)" || true; }
	@touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	@touch $@

# Debian packages the tests need (PostgreSQL, Chromium for the browser tests); installed
# only when missing. Playwright drives /usr/bin/chromium: it never downloads a browser.
DEB_TEST := $(shell (command -v initdb >/dev/null 2>&1 || ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1) || echo postgresql; \
	test -x /usr/bin/chromium || echo chromium)

setup-test: setup
	@test -z "$(strip $(DEB_TEST))" || { echo "installing Debian packages: $(DEB_TEST)"; \
	  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $(DEB_TEST) >/dev/null; }

# The demo data, then the hub on 127.0.0.1:8000 (prints URL and demo logins; Ctrl-C stops).
run: setup
	$(BIN)/stream0d demo
	$(BIN)/python -m stream0d_nb.hub.run

test: setup-test
	$(BIN)/python -m pytest
	$(BIN)/ruff check stream0d_nb tests bench recalibration_runs
	$(BIN)/mypy

lint: setup
	$(BIN)/ruff check stream0d_nb tests bench recalibration_runs
	$(BIN)/ruff format --check stream0d_nb tests bench recalibration_runs
	$(BIN)/mypy

bench: setup-test
	$(BIN)/python bench/bench_store.py
	$(BIN)/python bench/bench_formulas.py
	$(BIN)/python bench/bench_alerts.py
	$(BIN)/python bench/bench_memory.py
	$(BIN)/python bench/bench_bounds.py
	$(BIN)/python bench/bench_points.py
