# Two commands for a newcomer: `make demo` and `make test`. Both install what they need.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: install superset-venv demo test lint bench

$(BIN)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund
	touch $@

superset-venv: $(BIN)/.installed
	$(BIN)/python -m cht_assets.servers.superset install

# Debian's Chromium, for the dashboard screenshots (root, as on CI and the dev machines).
/usr/bin/chromium:
	apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium

install: $(BIN)/.installed node_modules/.installed superset-venv /usr/bin/chromium

demo: install
	$(BIN)/python -m cht_assets.servers.demo

test: install
	$(BIN)/ruff check .
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: install
	$(BIN)/python bench/replication.py
	$(BIN)/python bench/scale.py
