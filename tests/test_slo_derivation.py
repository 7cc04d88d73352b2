"""Deriving SLOs: the store (catalog and CPU profile writes) and the command against a gateway."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from deploy.catalog import DEFAULT_CATALOG, SLO, load_catalog
from deploy.litellm_admin import LiteLLMAdmin
from deploy.local import litellm_params, model_info
from deploy.slo_store import (
    SLOStoreError,
    cpu_profile_path,
    load_cpu_profile,
    write_catalog_slo,
    write_cpu_profile_slo,
)
from fixtures.platform.reference_streaming import StreamingBackendProcess, StreamingSpec
from gates.slo_derivation import main

DERIVED = SLO(state="derived", ttft_p95_ms=62, itl_p95_ms=13, e2e_p95_ms=1600, max_output_tokens=512,
              source="test rig", derived_from_run="lat-20260101T000000-abcdef", headroom=1.5)


@pytest.fixture
def catalog(tmp_path: Path) -> Path:
    path = tmp_path / "catalog.yaml"
    shutil.copy(DEFAULT_CATALOG, path)
    return path


def test_catalog_write_sets_a_derived_slo_and_keeps_comments_and_order(catalog: Path) -> None:
    before = catalog.read_text()
    write_catalog_slo(catalog, "coder-chat", DERIVED)
    after = catalog.read_text()
    slo = load_catalog(catalog).get("coder-chat").slo
    assert slo == DERIVED and "[derived, run lat-20260101T000000-abcdef]" in slo.describe()
    # Every comment survives, the aliases keep their order, and only coder-chat's SLO changed.
    comments = [line for line in before.splitlines() if line.lstrip().startswith("#")]
    assert comments and all(line in after.splitlines() for line in comments)
    assert load_catalog(catalog).names == load_catalog(DEFAULT_CATALOG).names
    assert "slo: {state: to be derived, max_output_tokens: 512}" not in after
    untouched = [line for line in before.splitlines() if "to be derived" not in line]
    assert sum(line in after.splitlines() for line in untouched) >= len(untouched) - 1
    assert not [p for p in catalog.parent.iterdir() if p.name.startswith(".catalog.yaml.")]  # no temp left


def test_catalog_write_never_replaces_measured_targets(catalog: Path) -> None:
    before = catalog.read_text()
    with pytest.raises(SLOStoreError, match=r"catalog\.yaml:\d+: alias 'qwen-local' has slo\.state 'measured'"):
        write_catalog_slo(catalog, "qwen-local", DERIVED)
    with pytest.raises(SLOStoreError, match="no alias 'nope'"):
        write_catalog_slo(catalog, "nope", DERIVED)
    assert catalog.read_text() == before


def test_cpu_profile_is_created_then_updated_in_place(tmp_path: Path) -> None:
    path = cpu_profile_path(tmp_path / "build")
    assert load_cpu_profile(path).aliases == {}  # no file yet: an empty profile
    write_cpu_profile_slo(path, "qwen-local", DERIVED, hardware="Test CPU x 2 CPUs")
    text = path.read_text()
    assert text.startswith("# CPU SLO profile of the embedded platform") and "never commit" in text
    path.write_text(text.replace("aliases:", "# kept by hand\naliases:"))
    other = DERIVED.model_copy(update={"ttft_p95_ms": 99.0})
    profile = write_cpu_profile_slo(path, "coder-chat", other, hardware="Test CPU x 2 CPUs")
    assert profile.aliases == {"qwen-local": DERIVED, "coder-chat": other}
    assert load_cpu_profile(path) == profile and "# kept by hand" in path.read_text()
    path.write_text("aliases:\n  qwen-local: {state: derived}\n")
    with pytest.raises(SLOStoreError, match=r"slo-cpu\.yaml: field 'aliases\.qwen-local'"):
        load_cpu_profile(path)


@pytest.fixture
def gateway_with_reference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    """The gateway double routing coder-chat and qwen-local to a scripted streaming backend."""
    from fixtures.platform.embedded import EmbeddedPlatform

    catalog = load_catalog()
    backend = StreamingBackendProcess(StreamingSpec(ttft_ms=20, itl_ms=4, tokens=12)).start()
    platform = EmbeddedPlatform(tmp_path / "platform").start()
    admin = LiteLLMAdmin(platform.gateway_url, platform.master_key)
    try:
        for alias in ("coder-chat", "qwen-local"):
            entry = catalog.get(alias)
            admin.register_model(alias, litellm_params(entry, backend.base_url), model_info(entry))
        monkeypatch.setenv("LITELLM_MASTER_KEY", platform.master_key)
        yield platform.gateway_url, admin
    finally:
        admin.close()
        platform.close()
        backend.stop()


def test_command_derives_and_writes_a_to_be_derived_slo(gateway_with_reference, catalog, tmp_path, capsys) -> None:
    url, admin = gateway_with_reference
    args = ["--gateway-url", url, "--catalog", str(catalog), "--requests", "8", "--concurrency", "2",
            "--headroom", "2"]
    assert main(["--alias", "coder-chat", *args, "--write", "--json", str(tmp_path / "run.json")]) == 0
    out = capsys.readouterr().out
    assert "SLO derivation for coder-chat" in out and "Wrote coder-chat" in out
    slo = load_catalog(catalog).get("coder-chat").slo
    assert slo.state == "derived" and slo.headroom == 2 and slo.derived_from_run.startswith("lat-")
    assert slo.max_output_tokens == 512 and "derived via http://127.0.0.1" in slo.source
    # Targets are p95 x 2 rounded up: never below twice what was measured.
    measured = load_catalog(catalog)  # reload proves the written file is valid
    assert measured.get("coder-chat").slo.ttft_p95_ms >= 2 * 20
    assert slo.derived_from_run in (tmp_path / "run.json").read_text()
    assert admin.list_models() and "sk-" not in out.replace("sk-...", "")
    # A measured SLO is refused (exit 1), and nothing is written.
    before = catalog.read_text()
    assert main(["--alias", "qwen-local", *args, "--write"]) == 1
    assert "not 'to be derived'" in capsys.readouterr().out and catalog.read_text() == before
    # Without --write: the proposal only.
    assert main(["--alias", "qwen-local", *args]) == 0
    assert "Dry run" in capsys.readouterr().out and catalog.read_text() == before


def test_command_rejects_bad_input(catalog, capsys) -> None:
    assert main(["--alias", "nope", "--gateway-url", "http://127.0.0.1:9", "--catalog", str(catalog)]) == 2
    assert "no alias 'nope'" in capsys.readouterr().out
    with pytest.raises(SystemExit):
        main(["--alias", "qwen-local"])  # neither --gateway-url nor --embedded
    assert main(["--alias", "embeddings", "--gateway-url", "http://127.0.0.1:9", "--catalog", str(catalog)]) == 2
    assert "mode 'embedding'" in capsys.readouterr().out
    assert main(["--alias", "coder-chat", "--gateway-url", "http://127.0.0.1:9", "--headroom", "0.5"]) == 2
    assert "headroom" in capsys.readouterr().out
    proc = subprocess.run([sys.executable, "-m", "gates.slo_derivation", "--alias", "coder-chat",
                           "--gateway-url", "http://127.0.0.1:9", "--catalog", str(catalog)],
                          capture_output=True, text=True, timeout=60, env={"PATH": "/usr/bin:/bin"})
    assert proc.returncode != 0 and "LITELLM_MASTER_KEY" in proc.stdout + proc.stderr
