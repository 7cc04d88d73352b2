"""Mistakes a user makes get one clear line (issue 19, points 2 to 7).

Usage errors end the run before any gate with pytest's usage exit code and one `ERROR:` line
naming the fix; a platform that does not answer is one line too; a resumed run is the run it
resumes; tools name the endpoint or file at fault.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from deploy.catalog_cli import main as catalog_cli
from deploy.litellm_admin import GatewayUnavailable
from evals.latency import compare as latency_compare
from fixtures.platform import gateway
from fixtures.platform.loopback import free_port
from fixtures.platform.reference_backends import erroring_backend
from gates.options import positive_int
from tests.gate_runs import REPO_ROOT, run_gates

USAGE = pytest.ExitCode.USAGE_ERROR


def clean_env(**extra: str) -> dict[str, str]:
    """The environment without a configured gateway or key, plus `extra`."""
    drop = {"MODELGATE_GATEWAY_URL", "LITELLM_MASTER_KEY", "KUBECONFIG"}
    return {**{k: v for k, v in os.environ.items() if k not in drop}, **extra}


def error_lines(output: str) -> list[str]:
    return [line for line in output.splitlines() if line.startswith("ERROR:")]


def closed_port_url() -> str:
    return f"http://127.0.0.1:{free_port()}"  # bound then released: nothing listens there


def assert_one_usage_line(run, *needles: str) -> str:
    assert run.returncode == USAGE, run.output[-3000:]
    lines = error_lines(run.output)
    assert len(lines) == 1, run.output[-3000:]
    assert "Traceback" not in run.output and "gate test(s) selected" not in run.output
    assert len(run.output.strip().splitlines()) <= 3, run.output  # the line, nothing around it
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


# ---- 2. usage errors: one line, exit 4, before any gate --------------------------------------

def test_a_gateway_without_master_key_is_one_usage_line(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", f"--gateway-url={closed_port_url()}", "--no-deploy",
                    outputs=tmp_path, env=clean_env())
    assert_one_usage_line(run, "--gateway-url", "LITELLM_MASTER_KEY")
    assert not (tmp_path / "ledger.jsonl").exists()  # no gate ran, nothing was recorded


def test_a_gateway_from_the_environment_is_named_as_the_variable(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--no-deploy", outputs=tmp_path,
                    env=clean_env(MODELGATE_GATEWAY_URL=closed_port_url()))
    line = assert_one_usage_line(run, "MODELGATE_GATEWAY_URL", "LITELLM_MASTER_KEY")
    assert "--gateway-url" not in line  # an option the user never passed


def test_control_with_a_gateway_is_one_usage_line(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", "--control=known-good", f"--gateway-url={closed_port_url()}",
                    outputs=tmp_path, env=clean_env(LITELLM_MASTER_KEY="sk-test-0123456789abcdef"))
    assert_one_usage_line(run, "--control", "drop --gateway-url")


def test_no_cluster_to_deploy_to_is_one_usage_line(tmp_path: Path) -> None:
    run = run_gates("-m", "coder-chat", f"--gateway-url={closed_port_url()}", outputs=tmp_path,
                    env=clean_env(LITELLM_MASTER_KEY="sk-test-0123456789abcdef",
                                  KUBECONFIG=str(tmp_path / "no-such-kubeconfig")))
    assert_one_usage_line(run, "Kubernetes", "no-such-kubeconfig", "--no-deploy")


def test_the_suites_own_tests_need_no_gateway_key(tmp_path: Path) -> None:
    # A gateway in the environment concerns the gates, not `pytest tests`.
    run = run_gates("tests/test_summary.py", "-q", outputs=tmp_path,
                    env=clean_env(MODELGATE_GATEWAY_URL=closed_port_url()))
    assert run.returncode == 0, run.output[-3000:]


@pytest.mark.parametrize("listing", ["--markers", "--collect-only"])
def test_listing_commands_need_no_gateway_key(tmp_path: Path, listing: str) -> None:
    run = run_gates(listing, outputs=tmp_path, env=clean_env(MODELGATE_GATEWAY_URL=closed_port_url()))
    assert run.returncode == 0, run.output[-3000:]
    assert "coder-chat" in run.output


# ---- 3. --resume is the run it resumes -------------------------------------------------------

def test_resume_uses_the_recorded_selection_scope_and_control(tmp_path: Path) -> None:
    first = run_gates("-m", "coder-chat", "--control=known-good", "--humaneval-limit=3",
                      outputs=tmp_path)
    assert first.returncode == 0, first.output[-3000:]
    run_id = first.record("humaneval").run_id
    recorded = json.loads((tmp_path / "build" / "runs" / run_id / "run.json").read_text())
    assert recorded["options"]["scope"] == "promotion" and recorded["options"]["control"] == "known-good"

    resumed = run_gates(f"--resume={run_id}", outputs=tmp_path)  # nothing else on the line
    assert resumed.returncode == 0, resumed.output[-3000:]
    assert "1 passed, 6 deselected" in resumed.output  # coder-chat only, not all seven gates
    assert "PASS (replayed)" in resumed.output
    assert len(resumed.records) == 1  # replayed, not run again
    report = json.loads((tmp_path / "build" / "runs" / run_id / "report.json").read_text())
    assert [g["resumed"] for g in report["gates"]] == [True]

    # Interrupted before its verdict was appended: the gate runs again, as the run was asked.
    (tmp_path / "ledger.jsonl").write_text("")
    again = run_gates(f"--resume={run_id}", outputs=tmp_path)
    assert again.returncode == 0, again.output[-3000:]
    record = again.record("humaneval")
    assert record.run_id == run_id and record.counts.total == 3  # the smoke limit again
    assert record.target.model == "reference backend (known-good control)"  # not a real engine
    assert "PASS (replayed)" not in again.output


def test_resume_refuses_a_contradicting_command_line(tmp_path: Path) -> None:
    first = run_gates("-m", "coder-chat", "--control=known-good", "--humaneval-limit=2",
                      outputs=tmp_path)
    run_id = first.record("humaneval").run_id
    run = run_gates(f"--resume={run_id}", "-m", "embeddings", "--scope=release", outputs=tmp_path)
    line = assert_one_usage_line(run, f"--resume {run_id}")
    assert "-m coder-chat" in line and "-m embeddings" in line
    assert "--scope promotion" in line and "--scope release" in line
    assert len(run.records) == 1  # refused before any gate: nothing new in the ledger


# ---- 4. an unreachable gateway says so --------------------------------------------------------

def test_an_unreachable_gateway_is_recorded_as_such(tmp_path: Path) -> None:
    url = closed_port_url()
    run = run_gates("-m", "coder-chat", f"--gateway-url={url}", "--no-deploy", outputs=tmp_path,
                    env=clean_env(LITELLM_MASTER_KEY="sk-test-0123456789abcdef"))
    record = run.record("humaneval")
    assert record.verdict == "error"
    assert record.summary == f"gateway unreachable at {url}"
    assert "Connection refused" in record.reason and "HTTP -" not in record.reason
    assert f"coder-chat/humaneval: ERROR: gateway unreachable at {url}: " in run.output


def test_no_answer_has_no_status_in_its_message() -> None:
    error = GatewayUnavailable(None, "connect_error", "http://gw unreachable: ConnectError: refused",
                               "GET /model/info", cause="ConnectError: refused")
    assert str(error) == "GET /model/info: http://gw unreachable: ConnectError: refused"
    assert error.cause == "ConnectError: refused"


# ---- 5. an unknown alias says so first --------------------------------------------------------

def test_an_unknown_alias_names_the_closest_and_selects_nothing(tmp_path: Path) -> None:
    run = run_gates("-m", "coder_chat", outputs=tmp_path)
    assert_one_usage_line(run, "'coder_chat'", "did you mean coder-chat?")


def test_marker_expressions_with_known_names_still_select(tmp_path: Path) -> None:
    run = run_gates("-m", "not claude-haiku and not engine", "--collect-only", "-q", outputs=tmp_path)
    assert run.returncode == 0, run.output[-3000:]
    assert "modelgate: 6 gate test(s) selected" in run.output


# ---- 6. option values are checked -------------------------------------------------------------

@pytest.mark.parametrize("option", ["--humaneval-limit=-1", "--fim-limit=0", "--bfcl-limit=0",
                                    "--tool-loop-limit=two", "--latency-requests=0"])
def test_a_limit_that_makes_no_sense_is_refused(tmp_path: Path, option: str) -> None:
    run = run_gates("-m", "coder-chat", option, outputs=tmp_path)
    assert run.returncode == USAGE, run.output[-3000:]
    assert f"argument {option.split('=')[0]}: expected a whole number of at least 1" in run.output
    assert not (tmp_path / "ledger.jsonl").exists()


def test_positive_int() -> None:
    assert positive_int("3") == 3
    for text in ("0", "-1", "1.5", ""):
        with pytest.raises(argparse.ArgumentTypeError):
            positive_int(text)


# ---- 7. silent or dangling messages -----------------------------------------------------------

def test_status_of_a_missing_ledger_is_an_error(tmp_path: Path, capsys) -> None:
    missing = tmp_path / "ledger" / "results.jsonl"
    assert catalog_cli(["status", "--ledger", str(missing)]) == 2
    err = capsys.readouterr().err
    assert str(missing) in err and "no such ledger file" in err


def test_render_check_shows_the_diff_and_keeps_the_users_paths(tmp_path: Path, capsys) -> None:
    catalog = tmp_path / "catalog.yaml"
    doc = tmp_path / "served-models.md"
    shutil.copy(REPO_ROOT / "deploy" / "catalog.yaml", catalog)
    text = (REPO_ROOT / "docs" / "served-models.md").read_text(encoding="utf-8")
    doc.write_text(text.replace("| coder-fim |", "| coder-fim-stale |", 1), encoding="utf-8")
    assert catalog_cli(["--catalog", str(catalog), "--doc", str(doc), "render", "--check"]) == 1
    err = capsys.readouterr().err
    assert f"--- {doc} (committed)" in err and f"+++ {doc} (rendered from {catalog})" in err
    assert "\n-| coder-fim-stale |" in err and "\n+| coder-fim |" in err
    assert f"run `modelgate-catalog --catalog {catalog} --doc {doc} render`" in err


def test_render_check_hint_names_only_what_was_given(tmp_path: Path, capsys) -> None:
    doc = tmp_path / "served-models.md"
    text = (REPO_ROOT / "docs" / "served-models.md").read_text(encoding="utf-8")
    doc.write_text(text.replace("| coder-fim |", "| coder-fim-stale |", 1), encoding="utf-8")
    assert catalog_cli(["--doc", str(doc), "render", "--check"]) == 1
    assert f"run `modelgate-catalog --doc {doc} render`" in capsys.readouterr().err


def test_gateway_help_points_to_nothing_missing(capsys) -> None:
    with pytest.raises(SystemExit):
        gateway.main(["--help"])
    out = capsys.readouterr().out
    assert "CONTRACTS.md" not in out and "LITELLM_MASTER_KEY" in out


def test_latency_compare_names_an_unreachable_endpoint(capsys) -> None:
    url = closed_port_url() + "/v1"
    code = latency_compare.main(["--a", f"raw={url}", "--b", f"kserve={url}", "--model", "m",
                                 "--requests", "1", "--warmup", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 2
    assert err == f"latency_compare: endpoint raw ({url}) unreachable: ConnectError: [Errno 111] Connection refused"


def test_latency_compare_names_an_endpoint_whose_every_request_failed(capsys) -> None:
    with erroring_backend("http_500") as broken, erroring_backend("http_500") as other:
        url = broken.base_url
        code = latency_compare.main(["--a", f"raw={url}", "--b", f"kserve={other.base_url}",
                                     "--model", "m", "--requests", "1", "--warmup", "0"])
    err = capsys.readouterr().err.strip()
    assert code == 1
    assert err.startswith(f"latency_compare: every request to endpoint raw ({url}) failed (1/1)")
    assert "\n" not in err


def test_slo_derivation_names_an_unreachable_gateway(capsys, monkeypatch) -> None:
    from gates import slo_derivation

    url = closed_port_url()
    monkeypatch.setenv("LITELLM_MASTER_KEY", "sk-test-0123456789abcdef")
    assert slo_derivation.main(["--alias", "qwen-local", "--gateway-url", url]) == 1
    out = capsys.readouterr()
    lines = (out.out + out.err).strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"slo_derivation: gateway unreachable at {url}: ")
    assert "Connection refused" in lines[0]


def test_an_erroring_control_is_one_line_and_junit_keeps_it(tmp_path: Path) -> None:
    junit = tmp_path / "junit.xml"
    run = run_gates("-m", "coder-chat", "--control=erroring", f"--junitxml={junit}", outputs=tmp_path)
    assert run.returncode == pytest.ExitCode.TESTS_FAILED, run.output[-3000:]
    errors = run.output.split(" ERRORS ", 1)[1].split("generated xml file", 1)[0]
    body = [line for line in errors.splitlines()[1:] if line.strip() and not line.startswith("-")]
    assert len(body) == 2, errors  # the "ERROR at setup" title and the one line
    assert body[1].startswith("coder-chat/humaneval: ERROR: route check failed: ")
    assert "Traceback" not in run.output and "gates/session.py" not in run.output
    element = ET.parse(junit).getroot().find(".//testcase/error")
    assert element is not None and "coder-chat/humaneval: ERROR: route check failed" in element.get("message")
