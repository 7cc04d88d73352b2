# modelgate: `make gate` runs the gates on the embedded platform; `make test` runs the suite's tests.
# Both set up .venv themselves (the embedded platform's vLLM for the CPU and the stand-in models).
# `make conformance` runs the conformance tier against the real LiteLLM proxy, installed in its own
# virtualenv (LITELLM_VENV) so that its pins never touch .venv.

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modelgate-installed
# The quick start gates the fixed promotion subsets; `make gate GATE_ARGS=` runs the release scope.
GATE_ARGS ?= --scope promotion
TEST_ARGS ?=
LITELLM_VENV ?= build/litellm-venv
CONFORMANCE_ARGS ?=

.PHONY: setup gate test conformance litellm bench lint catalog-check clean

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

litellm:
	LITELLM_VENV=$(abspath $(LITELLM_VENV)) bash scripts/install-litellm.sh

conformance: setup litellm
	LITELLM_VENV=$(abspath $(LITELLM_VENV)) $(VENV)/bin/pytest tests/conformance --durations=10 $(CONFORMANCE_ARGS)

bench: setup
	$(PY) -m bench

clean:
	rm -rf build
