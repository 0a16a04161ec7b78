# sessionstore: the two commands of the README.
#   make run    create (or adopt) the default database and print its health
#   make test   the test suite, on SQLite files and a throwaway PostgreSQL server
PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin

.PHONY: run test lint bench bench-quick clean

$(BIN)/sessionstore: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev,postgres,openai-agents,langchain,adk]'
	@touch $@

run: $(BIN)/sessionstore
	$(BIN)/sessionstore upgrade
	$(BIN)/sessionstore doctor

# The frameworks' own test suites are fetched first (never committed: see
# scripts/upstream-tests); without network they are reported as skipped.
# SESSIONSTORE_ADK_TESTS=<adk-python checkout>/tests/unittests/sessions adds ADK's.
test: $(BIN)/sessionstore
	scripts/install-postgres
	$(BIN)/python scripts/upstream-tests
	$(BIN)/python -m pytest

lint: $(BIN)/sessionstore
	$(BIN)/ruff check .
	$(BIN)/ruff format --check src alembic
	$(BIN)/mypy --strict src

# make bench         the full benchmarks (about 25 minutes on 2 cores, much of it in the
#                    frameworks' stores); ends in one table, which it also writes into
#                    the README's Performance section
# make bench-quick   small data, short measurements (under 2 minutes), for development
MODE        ?= full
BENCH_JSON   = .benchmarks/bench-$(MODE).json
# What each mode adds to the pytest run and to the report.
BENCH_PYTEST_quick = --quick
BENCH_REPORT_full  = --readme README.md

bench: $(BIN)/sessionstore
	@case "$(MODE)" in full|quick) ;; *) echo "MODE must be full or quick" >&2; exit 2;; esac
	@mkdir -p .benchmarks
	$(BIN)/python -m pytest benchmarks -q --benchmark-only --benchmark-quiet \
	    --benchmark-json=$(BENCH_JSON) $(BENCH_PYTEST_$(MODE))
	@$(BIN)/python benchmarks/report.py $(BENCH_JSON) $(BENCH_REPORT_$(MODE))

bench-quick:
	@$(MAKE) --no-print-directory bench MODE=quick

clean:
	rm -rf $(VENV) build dist .pytest_cache .mypy_cache .ruff_cache .upstream
