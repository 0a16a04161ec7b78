# sessionstore: the two commands of the README.
#   make run    create (or adopt) the default database and print its health
#   make test   the test suite, on SQLite files and a throwaway PostgreSQL server
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench clean

$(BIN)/sessionstore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres]'
	@touch $@

run: $(BIN)/sessionstore
	$(BIN)/sessionstore upgrade
	$(BIN)/sessionstore doctor

test: $(BIN)/sessionstore
	scripts/install-postgres
	$(BIN)/python -m pytest

lint: $(BIN)/sessionstore
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src alembic
	$(BIN)/mypy --strict src

bench: $(BIN)/sessionstore
	$(BIN)/python -m pytest benchmarks --benchmark-only

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache
