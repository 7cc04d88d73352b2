"""`modelgate-deploy render`: the manifests as YAML, and a server-side dry run (dryRun=All)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import kubernetes_validate
import pytest
import yaml

from deploy.deploy_cli import main
from deploy.k8s.isvc_validate import validate_inference_service
from fixtures.platform.loopback import ThreadedServer
from tests.fake_kube import FakeKube
from tests.test_k8s_platform_rules import _gitops_deployment


@pytest.fixture
def kube(tmp_path: Path) -> Iterator[tuple[FakeKube, Path]]:
    fake = FakeKube()
    server = ThreadedServer(fake.app).start()
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: fake\n"
        f"clusters: [{{name: fake, cluster: {{server: '{server.url}'}}}}]\n"
        "users: [{name: fake, user: {}}]\n"
        "contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: models}}]\n")
    try:
        yield fake, config
    finally:
        server.stop()


def test_render_prints_valid_manifests(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "coder-chat", "--namespace", "models"]) == 0
    docs = list(yaml.safe_load_all(capsys.readouterr().out))
    assert [d["kind"] for d in docs] == ["PersistentVolumeClaim", "Deployment", "Service"]
    for doc in docs:
        kubernetes_validate.validate(doc, "1.33", strict=True)
    args = docs[1]["spec"]["template"]["spec"]["containers"][0]["args"]
    assert args[:1] == ["Qwen/Qwen2.5-Coder-7B-Instruct-AWQ"] and "--revision" in args


def test_render_kserve(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "qwen-local", "--kserve"]) == 0
    (isvc,) = yaml.safe_load_all(capsys.readouterr().out)
    validate_inference_service(isvc)
    assert isvc["spec"]["predictor"]["model"]["runtime"] == "kserve-huggingfaceserver"


def test_render_refuses_what_cannot_be_deployed(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["render", "coder-fim"]) == 2
    assert "kubernetes.revision" in capsys.readouterr().err
    assert main(["render", "coder-chat", "--kserve"]) == 2  # no kserve block
    assert main(["render", "coder-fim", "--model-source", "coder-fim=pvc:weights/fim"]) == 0
    assert "HF_HUB_OFFLINE" in capsys.readouterr().out


def test_server_dry_run_sends_dry_run_all(kube, capsys: pytest.CaptureFixture[str]) -> None:
    fake, config = kube
    assert main(["render", "embeddings", "--namespace", "models", "--dry-run=server",
                 "--kubeconfig", str(config)]) == 0
    assert capsys.readouterr().err.count("accepted") == 3
    patches = [c for c in fake.calls if c.method == "PATCH"]
    assert len(patches) == 3 and all(c.query.get("dryRun") == "All" for c in patches)
    assert fake.objects == {}


def test_server_dry_run_reports_a_conflict(kube, capsys: pytest.CaptureFixture[str]) -> None:
    fake, config = kube
    fake.put(_gitops_deployment(), manager="argocd-controller", operation="Apply")
    assert main(["render", "coder-chat", "--namespace", "models", "--dry-run=server",
                 "--kubeconfig", str(config)]) == 1
    err = capsys.readouterr().err
    line = next(x for x in err.splitlines() if "Deployment/models/coder-chat" in x)
    assert "conflict with argocd-controller on" in line
    assert ".spec.template.spec.containers" in line
