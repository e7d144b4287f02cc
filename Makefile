# Quick start: `make demo` and `make test` work on a fresh machine with Python 3.11+ and make.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed
# The exact versions the suite passed with (`make lock` refreshes it); installs are constrained to it.
LOCK := requirements.lock
PYTEST := $(BIN)/python -m pytest
# The PostgreSQL half of the suite: an existing server via CONVERSANT_TEST_POSTGRES_URL,
# else scripts/ensure-postgres.sh installs (apt-get) and starts one on 127.0.0.1.
WITH_PG = PG_URL="$${CONVERSANT_TEST_POSTGRES_URL:-$$(scripts/ensure-postgres.sh)}" && export CONVERSANT_TEST_POSTGRES_URL="$$PG_URL" &&

.PHONY: install lock demo demo-model test test-fast test-container test-integration test-model bench clean

$(STAMP): pyproject.toml $(LOCK)
	@$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "Python 3.11 or newer is needed; set PYTHON=python3.11")'
	@echo "Installing Conversant into $(VENV) (first time takes a minute)..."
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	@$(BIN)/pip uninstall --quiet --yes conversant 2>/dev/null || true  # the distribution's name before 0.2.0
	$(BIN)/pip install --quiet -c $(LOCK) -e '.[test,postgres]'
	@touch $(STAMP)

install: $(STAMP)

# Resolve every dependency afresh within pyproject.toml's ranges and pin the result; then run
# `make test` and commit requirements.lock only if it passes.
lock:
	rm -rf .lock-venv
	$(PYTHON) -m venv .lock-venv
	.lock-venv/bin/pip install --quiet --upgrade pip
	.lock-venv/bin/pip install --quiet '.[test,postgres]'
	{ echo "# Exact versions the test suite passed with: make, CI and the container install with -c $(LOCK)."; \
	  echo "# Regenerate with \`make lock\`, then \`make test\`."; \
	  .lock-venv/bin/pip freeze --exclude conversant-slack --exclude conversant; } > $(LOCK)
	rm -rf .lock-venv

demo: install
	$(BIN)/conversant demo

test: install
	$(WITH_PG) $(PYTEST) -q -n 2 -m "not integration and not container and not model" tests
	$(WITH_PG) $(PYTEST) -q -m integration tests/integration
	$(PYTEST) -q -m container tests/scenario/test_container.py
	$(PYTEST) -q -m model tests/model

test-fast: install
	$(WITH_PG) $(PYTEST) -q -n 2 -m "not integration and not container and not model" tests

# The container's install and start script (scripts/container.sh), on a fresh venv as a non-root user.
test-container: install
	$(PYTEST) -q -m container tests/scenario/test_container.py

test-integration: install
	$(WITH_PG) $(PYTEST) -q -m integration tests/integration

# A real model server (llama.cpp's llama-server, built from source into ~/.cache/conversant/llama on
# first use, ~8 min on 2 idle cores) serving SmolLM2-135M; the production drafter against it (REAL-MODEL.md).
test-model: install
	$(PYTEST) -q -m model tests/model

# The demo with real drafts from Qwen2.5-Coder-1.5B-Instruct on a local llama-server (a 1.1 GB download on
# first use, verified by SHA-256); `make demo` stays offline and instant.
demo-model: install
	$(BIN)/python scripts/demo_model.py $(DEMO_MODEL)

# The benchmark (BENCHMARKS.md): SQLite, and PostgreSQL when BENCH_POSTGRES_URL (or the test suite's
# CONVERSANT_TEST_POSTGRES_URL) names a server; e.g. make bench BENCH_ARGS=--json
bench: install
	BENCH_POSTGRES_URL="$${BENCH_POSTGRES_URL:-$${CONVERSANT_TEST_POSTGRES_URL:-}}" $(BIN)/python -m bench $(BENCH_ARGS)

clean:
	rm -rf $(VENV) .lock-venv build *.egg-info .pytest_cache
