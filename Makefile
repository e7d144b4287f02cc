# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
PYTEST := $(BIN)/python -m pytest
# The PostgreSQL half of the suite: an existing server via CONVERSANT_TEST_POSTGRES_URL,
# else scripts/ensure-postgres.sh installs (apt-get) and starts one on 127.0.0.1.
WITH_PG = PG_URL="$${CONVERSANT_TEST_POSTGRES_URL:-$$(scripts/ensure-postgres.sh)}" && export CONVERSANT_TEST_POSTGRES_URL="$$PG_URL" &&

.PHONY: install demo test test-fast test-integration bench clean

$(STAMP): pyproject.toml
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	@echo "Installing Conversant into $(VENV) (first time takes a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[test,postgres]'
	@touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/conversant demo

test: install
	$(WITH_PG) $(PYTEST) -q -n 2 -m "not integration" tests
	$(WITH_PG) $(PYTEST) -q -m integration tests/integration

test-fast: install
	$(WITH_PG) $(PYTEST) -q -n 2 -m "not integration" tests

test-integration: install
	$(WITH_PG) $(PYTEST) -q -m integration tests/integration

# The benchmark (BENCHMARKS.md): SQLite, and PostgreSQL when BENCH_POSTGRES_URL (or the test suite's
# CONVERSANT_TEST_POSTGRES_URL) names a server; e.g. make bench BENCH_ARGS=--json
bench: install
	BENCH_POSTGRES_URL="$${BENCH_POSTGRES_URL:-$${CONVERSANT_TEST_POSTGRES_URL:-}}" $(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache
