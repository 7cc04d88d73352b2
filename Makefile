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

.PHONY: setup gate test conformance litellm bench lint catalog-check clean mutation

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

# Mutation testing of the verdict-deciding code ([tool.mutmut] in pyproject.toml): each mutant
# runs only the fast unit tests that cover its function; results land in mutants/ (gitignored).
# MUTANTS picks the functions that decide a verdict (the same files' request plumbing, loading and
# printing are left out). `make mutation MUTANTS='evals.sandbox.*'` takes the sandbox (slow).
MUTMUT_STAMP := $(VENV)/.mutmut-installed
MUTATION_JOBS ?= 2
MUTANTS ?= 'gates.*' 'deploy.ledger.*' 'deploy.catalog.x_atomic_write_text__*' \
	'deploy.catalog.x_write_statuses__*' 'evals.budget.*' 'evals.latency._stats.*' \
	'evals.code_extraction.*' 'evals.fim._hygiene.*' \
	'evals.latency._bench.x_judge_latency__*' 'evals.latency._bench.x__describe__*' \
	'evals.latency._bench.x_round_up_2sig__*' 'evals.latency._bench.x_derive_slo__*' \
	'evals.fim._gate.x_judge_fim__*' 'evals.fim._gate.x__score_one__*' 'evals.fim._gate.x__normalized__*' \
	'evals.fim._gate.x_score_fim__*' 'evals.fim._gate.x__transport_words__*' \
	'evals.embeddings.x_check_*' 'evals.embeddings.x_judge_embeddings__*' \
	'evals.embeddings.x__embed_or_error__*' 'evals.embeddings.x__limit_check__*' \
	'evals.embeddings.x__error__*' 'evals.embeddings.x__vectors__*' 'evals.embeddings.x_cosine__*' \
	'evals.embeddings.x_norm__*' 'evals.embeddings.x_decode_base64__*' \
	'evals.usage.x_check_*' 'evals.usage.x_usage_problems__*' 'evals.usage.x_shape_problems__*' \
	'evals.usage.x_cache_fields__*' 'evals.usage.x__check__*' 'evals.usage.x__unanswered__*' \
	'evals.usage.x_expected_spend__*' 'evals.usage.x_leaks__*' 'evals.usage.xǁPricesǁcost__*' \
	'evals.tool_loop._judge.x_judge_tool_loops__*' 'evals.tool_loop._judge.x_failure_kind*' \
	'evals.tool_loop._judge.x_compare_modes__*' 'evals.tool_loop._judge.x__outcome__*' \
	'evals.tool_loop._judge.x_describe_kinds__*' 'evals.tool_loop._judge.x__list__*'

$(MUTMUT_STAMP): pyproject.toml
	$(VENV)/bin/pip install "mutmut>=3.8,<4"
	touch $@

mutation: setup $(MUTMUT_STAMP)
	$(VENV)/bin/mutmut run --max-children $(MUTATION_JOBS) $(MUTANTS)
	$(VENV)/bin/mutmut results | grep -v ": not checked" || true

clean:
	rm -rf build
