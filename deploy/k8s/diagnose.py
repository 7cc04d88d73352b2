"""Why pods are not becoming ready: container states, scheduling conditions, events, last logs."""

from __future__ import annotations

from typing import Any

from kubernetes import client
from pydantic import BaseModel

# Waiting reasons that retrying will not cure: stop waiting at once.
TERMINAL_WAITING = {"ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff", "CreateContainerConfigError"}
PULL_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName"}
LOG_LINES = 20


class Diagnosis(BaseModel):
    reason: str | None = None
    message: str = ""
    terminal: bool = False


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def _events(core: client.CoreV1Api, namespace: str, pod: str, timeout: float) -> list[dict[str, Any]]:
    items = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind=Pod,involvedObject.name={pod}",
        _request_timeout=timeout,
    ).items
    events = [core.api_client.sanitize_for_serialization(e) for e in items]
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _last_logs(core: client.CoreV1Api, namespace: str, pod: str, container: str, timeout: float) -> str:
    try:
        text = core.read_namespaced_pod_log(
            pod, namespace, container=container, previous=True, tail_lines=LOG_LINES,
            _request_timeout=timeout,
        )
    except client.ApiException as exc:
        return f"(logs unavailable: {exc.status} {exc.reason})"
    lines = str(text or "").splitlines()[-LOG_LINES:]
    return "\n".join(lines) if lines else "(no log lines)"


def diagnose_pods(
    core: client.CoreV1Api, namespace: str, pod_selector: dict[str, str], timeout: float = 30.0
) -> Diagnosis:
    """The most telling problem among the selected pods, most severe first."""
    pods = core.list_namespaced_pod(
        namespace, label_selector=_selector(pod_selector), _request_timeout=timeout
    ).items
    if not pods:
        return Diagnosis(reason="NoPods", message=f"no pods match {_selector(pod_selector)}")
    found: list[Diagnosis] = []
    for raw in pods:
        pod = core.api_client.sanitize_for_serialization(raw)
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            if reason == "CrashLoopBackOff":
                last = ((cs.get("lastState") or {}).get("terminated") or {})
                logs = _last_logs(core, namespace, name, cs["name"], timeout)
                found.append(Diagnosis(
                    reason=reason, terminal=True,
                    message=(f"pod {name} container {cs['name']} restarted {cs.get('restartCount', 0)} "
                             f"times (last exit code {last.get('exitCode', '?')}); last log lines:\n{logs}"),
                ))
            elif reason in PULL_REASONS:
                events = _events(core, namespace, name, timeout)
                # "Failed" carries the registry's answer; "BackOff" only repeats the image.
                pulls = [e["message"] for e in events if e.get("reason") == "Failed"] or [
                    e["message"] for e in events if e.get("reason") == "BackOff"]
                detail = pulls[-1] if pulls else waiting.get("message") or ""
                found.append(Diagnosis(
                    reason=reason, terminal=reason in TERMINAL_WAITING,
                    message=f"pod {name} image {cs.get('image', '?')}: {detail}",
                ))
            elif reason in TERMINAL_WAITING:
                found.append(Diagnosis(reason=reason, terminal=True,
                                       message=f"pod {name}: {waiting.get('message') or reason}"))
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                scheduling = [e["message"] for e in _events(core, namespace, name, timeout)
                              if e.get("reason") == "FailedScheduling" and e.get("message")]
                detail = scheduling[-1] if scheduling else cond.get("message") or ""
                # Not terminal: a GPU freed by a scale-down elsewhere lets it schedule later.
                found.append(Diagnosis(reason=cond.get("reason") or "Unschedulable",
                                       message=f"pod {name}: {detail}"))
    order = ["CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName", "ErrImagePull"]
    found.sort(key=lambda d: order.index(d.reason) if d.reason in order else len(order))
    return found[0] if found else Diagnosis()
