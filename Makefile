# Two commands: `make run` (set up and serve on SQLite) and `make test` (set up and run the suite).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin

.PHONY: run test lint format typecheck bench lock clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-main: requirements/main.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet --require-hashes -r requirements/main.lock
	$(BIN)/pip install --quiet --no-deps -e .
	touch $@

$(VENV)/.installed-dev: requirements/dev.lock $(VENV)/.installed-main
	$(BIN)/pip install --quiet --require-hashes -r requirements/dev.lock
	touch $@

run: $(VENV)/.installed-main
	$(BIN)/atiende db upgrade
	$(BIN)/atiende demo
	$(BIN)/atiende serve

test: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy src
	$(BIN)/pytest $(PYTEST_ARGS)

lint: $(VENV)/.installed-dev
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench

format: $(VENV)/.installed-dev
	$(BIN)/ruff format src tests bench
	$(BIN)/ruff check --fix src tests bench

typecheck: $(VENV)/.installed-dev
	$(BIN)/mypy src

bench: $(VENV)/.installed-dev
	$(BIN)/python -m bench

# Refresh the pinned, hashed lock files from pyproject.toml.
lock: $(VENV)/.installed-dev
	$(BIN)/uv pip compile pyproject.toml --python-version 3.11 --generate-hashes -o requirements/main.lock
	$(BIN)/uv pip compile pyproject.toml --extra dev --python-version 3.11 --generate-hashes -o requirements/dev.lock

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
