# The two commands: `make demo` and `make test`. Both install into .venv first.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
HOST ?= 127.0.0.1
PORT ?= 8000

.PHONY: install demo test test-all lint typecheck pytest redis-server chromium asyncapi-schema soak bench \
	bench-instructions clean

# Other interpreters (pyenv's, where installed): `make test-all` runs the suite on them, `make bench-instructions`
# counts on 3.11 and 3.13. Each gets a venv of its own, .venv-3.12 and .venv-3.13.
PYENV_VERSIONS := $(HOME)/.pyenv/versions
python_of = $(or $(lastword $(wildcard $(PYENV_VERSIONS)/$(1).*/bin/python$(1))),$(shell command -v python$(1)))

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-test: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[test]'
	touch $@

$(VENV)/.installed: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e .
	touch $@

install: $(VENV)/.installed

demo: $(VENV)/.installed
	$(BIN)/scallion run examples/demo.py --host $(HOST) --port $(PORT)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check scallion tests examples $(wildcard bench)
	$(BIN)/ruff format --check scallion

typecheck: $(VENV)/.installed-test
	$(BIN)/mypy --strict scallion

# The pub/sub tests start their own redis-server (Debian's) on a free port of 127.0.0.1.
redis-server:
	@command -v redis-server >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq redis-server >/dev/null)

# The browser tests drive Debian's chromium with Playwright (Playwright's own browser download cannot work here).
chromium:
	@command -v chromium >/dev/null || (apt-get update -qq && DEBIAN_FRONTEND=noninteractive \
		apt-get install -y -qq chromium >/dev/null)

# The official AsyncAPI 3.0 JSON Schema (npm's @asyncapi/specs), for tests/test_realtime_asyncapi.py.
ASYNCAPI_SPECS := .cache/asyncapi/node_modules/@asyncapi/specs/package.json
$(ASYNCAPI_SPECS):
	mkdir -p .cache/asyncapi
	npm install --silent --no-audit --no-fund --prefix .cache/asyncapi @asyncapi/specs@6
asyncapi-schema: $(ASYNCAPI_SPECS)

pytest: $(VENV)/.installed-test redis-server chromium asyncapi-schema
	$(BIN)/python -m pytest -p no:cacheprovider

test: lint typecheck pytest

.venv-%/.installed-test: pyproject.toml
	$(call python_of,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -e '.[test]'
	touch $@

# The whole suite on the default interpreter, 3.12 and 3.13 (make test keeps the default one). Each suite runs
# even if one before it failed, so one run shows every interpreter's failures; the target fails if any did.
TEST_ALL_PYTHONS := $(BIN)/python .venv-3.12/bin/python .venv-3.13/bin/python
test-all: $(VENV)/.installed-test redis-server chromium asyncapi-schema .venv-3.12/.installed-test \
		.venv-3.13/.installed-test
	@failed=""; for python in $(TEST_ALL_PYTHONS); do \
		echo "== $$($$python -V) ($$python)"; \
		$$python -m pytest -p no:cacheprovider || failed="$$failed $$python"; \
	done; \
	if [ -n "$$failed" ]; then echo "test-all: failures on$$failed"; exit 1; fi

# The fault suite with 10,000 abrupt departures per server instead of 2,000 (tests/test_faults.py).
SOAK_DROPS ?= 10000
soak: $(VENV)/.installed-test
	SCALLION_SOAK_DROPS=$(SOAK_DROPS) $(BIN)/python -m pytest -p no:cacheprovider tests/test_faults.py -k waves -s

# Benchmarks (bench/, docs/performance.md). `make bench ARGS="--quick"` for a one-round smoke run.
$(VENV)/.installed-bench: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install --quiet -e '.[bench]'
	command -v wrk >/dev/null || (apt-get update -qq && apt-get install -y -qq wrk) \
		|| echo "wrk is missing (apt-get install wrk): the HTTP workloads will be skipped"
	touch $@

bench: $(VENV)/.installed-bench
	$(BIN)/python -m bench.run $(ARGS)

.venv-%/.installed-bench: pyproject.toml
	$(call python_of,$*) -m venv .venv-$*
	.venv-$*/bin/python -m pip install --quiet --upgrade pip
	.venv-$*/bin/python -m pip install --quiet -e '.[bench]'
	touch $@

# One table for both interpreters of the budgets (issue 9): the default one and 3.13.
bench-instructions: $(VENV)/.installed-bench .venv-3.13/.installed-bench
	command -v valgrind >/dev/null || (apt-get update -qq && apt-get install -y -qq valgrind)
	$(BIN)/python -m bench.instructions --python $(BIN)/python .venv-3.13/bin/python $(ARGS)

clean:
	rm -rf $(VENV) .venv-3.12 .venv-3.13 .pytest_cache .mypy_cache .ruff_cache
