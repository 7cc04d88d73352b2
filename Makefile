# modelgate: `make gate` runs the gates on the embedded platform; `make test` runs the suite's tests.
# Both set up .venv themselves (the embedded platform's vLLM for the CPU and the stand-in models).

VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.modelgate-installed
# The quick start gates the fixed promotion subsets; `make gate GATE_ARGS=` runs the release scope.
GATE_ARGS ?= --scope promotion
TEST_ARGS ?=

.PHONY: setup gate test bench lint catalog-check clean mutation

$(STAMP): pyproject.toml scripts/install-platform.sh
	bash scripts/install-platform.sh
	touch $@

setup: $(STAMP)

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

# Mutation testing of the verdict-deciding modules ([tool.mutmut] in pyproject.toml): each mutant
# runs only the fast unit tests that cover its function. Scores land in mutants/ (gitignored);
# `make mutation MUTANTS='evals.sandbox.*'` takes the sandbox (slow: its tests run code).
MUTMUT_STAMP := $(VENV)/.mutmut-installed
MUTATION_JOBS ?= 2
MUTANTS ?= 'gates.*' 'deploy.*' 'evals.budget.*' 'evals.usage.*' 'evals.latency.*' \
	'evals.latency_stats.*' 'evals.code_extraction.*' 'evals.fim.*' 'evals.fim_hygiene.*' \
	'evals.embeddings.*' 'evals.tool_loop_judge.*'

$(MUTMUT_STAMP): pyproject.toml
	$(VENV)/bin/pip install "mutmut>=3.8,<4"
	touch $@

mutation: setup $(MUTMUT_STAMP)
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(VENV)/bin/mutmut results

clean:
	rm -rf build
