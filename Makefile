# modelgate: `make gate` runs the gates on the embedded platform; `make test` runs the suite's tests.
# Both set up .venv themselves (the embedded platform's vLLM for the CPU and the stand-in models).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modelgate-installed
# The quick start gates the fixed promotion subsets; `make gate GATE_ARGS=` runs the release scope.
GATE_ARGS ?= --scope promotion
TEST_ARGS ?=

.PHONY: setup gate test bench lint catalog-check clean

$(STAMP): pyproject.toml scripts/install-platform.sh
	bash scripts/install-platform.sh
	touch $@

setup: $(STAMP)
	bash scripts/install-browser.sh

gate: setup
	$(VENV)/bin/pytest $(GATE_ARGS)

lint: setup
	$(VENV)/bin/ruff check .

catalog-check: setup
	$(PY) -m deploy.catalog_cli render --check

test: lint catalog-check
	$(VENV)/bin/pytest tests --durations=15 $(TEST_ARGS)

bench: setup
	$(PY) -m bench

clean:
	rm -rf build
