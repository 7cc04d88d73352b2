#!/usr/bin/env bash
# Install the real LiteLLM proxy into its own virtualenv (default: build/litellm-venv). Idempotent.
#
# LiteLLM's pins (openai, pydantic, fastapi, uvicorn, ...) must never touch the main .venv that holds
# vLLM, so the proxy gets a virtualenv of its own and the conformance tier starts it as a
# subprocess by path. Version 1.108.7: the 1.110.x `proxy` extra pins a litellm-proxy release that
# the package index does not have, so it does not install.
#
# Also the `prisma` Python client (part of LiteLLM's `extra_proxy` extra, present in LiteLLM's
# own images): without a database its engines are never fetched, but LiteLLM's error handlers
# import it; without it every auth or key-management error becomes a bare-text 500 instead of
# LiteLLM's error JSON ("DB not connected", `no_db_connection`).
#
# Environment: LITELLM_VENV (virtualenv folder), PYTHON (interpreter, default python3.11),
# LITELLM_VERSION (default 1.108.7).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
LITELLM_VENV="${LITELLM_VENV:-$ROOT/build/litellm-venv}"
PYTHON="${PYTHON:-python3.11}"
LITELLM_VERSION="${LITELLM_VERSION:-1.108.7}"
PRISMA_VERSION="${PRISMA_VERSION:-0.15.0}"
STAMP="$LITELLM_VENV/.litellm-$LITELLM_VERSION-prisma-$PRISMA_VERSION-installed"

step() { printf '==> %s\n' "$*"; }

if [ -f "$STAMP" ] && [ -x "$LITELLM_VENV/bin/litellm" ]; then
  step "litellm[proxy]==$LITELLM_VERSION (prisma $PRISMA_VERSION) already installed in $LITELLM_VENV"
  exit 0
fi

if [ ! -x "$LITELLM_VENV/bin/python" ]; then
  step "creating $LITELLM_VENV with $PYTHON"
  mkdir -p "$(dirname "$LITELLM_VENV")"
  "$PYTHON" -m venv "$LITELLM_VENV"
fi
PY="$LITELLM_VENV/bin/python"

step "installing litellm[proxy]==$LITELLM_VERSION and prisma==$PRISMA_VERSION (own virtualenv)"
"$PY" -m pip --disable-pip-version-check install --quiet \
  "litellm[proxy]==$LITELLM_VERSION" "prisma==$PRISMA_VERSION"

step "checking that the proxy imports"
# The local copy of the cost map: the check must not wait on a network fetch.
LITELLM_LOCAL_MODEL_COST_MAP=True "$PY" -c "import litellm.proxy.proxy_server, prisma.errors" >/dev/null
rm -f "$LITELLM_VENV"/.litellm-*-installed
touch "$STAMP"
step "LiteLLM proxy $LITELLM_VERSION installed in $LITELLM_VENV"
