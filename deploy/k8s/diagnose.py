"""Why pods are not becoming ready: container states, scheduling, events, the last log lines
and the engine's final exception, both as one telling reason and as full details."""

from __future__ import annotations

import re
from typing import Any

from kubernetes import client
from pydantic import BaseModel

# Waiting reasons that retrying will not cure: stop waiting at once.
TERMINAL_WAITING = {"ImagePullBackOff", "InvalidImageName", "CrashLoopBackOff",
                    "CreateContainerConfigError"}
PULL_REASONS = {"ImagePullBackOff", "ErrImagePull", "InvalidImageName"}
LOG_LINES = 40
# A Python traceback's last line ("ValueError: ...", "torch.OutOfMemoryError: ...").
_EXCEPTION = re.compile(r"^\s*([A-Za-z_][\w.]*(Error|Exception|Interrupt|Exit))(:.*)?$")


class Diagnosis(BaseModel):
    reason: str | None = None
    message: str = ""
    terminal: bool = False
    final_exception: str | None = None
    details: dict[str, Any] = {}


def final_exception(lines: list[str]) -> str | None:
    """The last exception line of a log (what a traceback ends with), if any."""
    for line in reversed(lines):
        if _EXCEPTION.match(line):
            return line.strip()
    return None


def _selector(labels: dict[str, str]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items()))


def events_of(core: client.CoreV1Api, namespace: str, kind: str, name: str,
              timeout: float) -> list[dict[str, Any]]:
    items = core.list_namespaced_event(
        namespace, field_selector=f"involvedObject.kind={kind},involvedObject.name={name}",
        _request_timeout=timeout,
    ).items
    events = [core.api_client.sanitize_for_serialization(e) for e in items]
    return sorted(events, key=lambda e: str(e.get("lastTimestamp") or e.get("eventTime") or ""))


def _brief(event: dict[str, Any]) -> dict[str, Any]:
    return {k: event.get(k) for k in ("type", "reason", "message", "count", "lastTimestamp")
            if event.get(k) is not None} | {"object": (event.get("involvedObject") or {}).get("name")}


def _last_logs(core: client.CoreV1Api, namespace: str, pod: str, container: str,
               timeout: float) -> list[str]:
    try:
        text = core.read_namespaced_pod_log(
            pod, namespace, container=container, previous=True, tail_lines=LOG_LINES,
            _request_timeout=timeout,
        )
    except client.ApiException as exc:
        return [f"(logs unavailable: {exc.status} {exc.reason})"]
    return str(text or "").splitlines()[-LOG_LINES:]


def diagnose_pods(
    core: client.CoreV1Api, namespace: str, pod_selector: dict[str, str], timeout: float = 30.0
) -> Diagnosis:
    """The most telling problem among the selected pods (most severe first), plus details:
    every pod's container states, its events, and the crashed engine's last log lines."""
    pods = core.list_namespaced_pod(
        namespace, label_selector=_selector(pod_selector), _request_timeout=timeout
    ).items
    if not pods:
        return Diagnosis(reason="NoPods", message=f"no pods match {_selector(pod_selector)}",
                         details={"pods": []})
    found: list[Diagnosis] = []
    pod_details: list[dict[str, Any]] = []
    for raw in pods:
        pod = core.api_client.sanitize_for_serialization(raw)
        name = pod["metadata"]["name"]
        status = pod.get("status") or {}
        events = events_of(core, namespace, "Pod", name, timeout)
        detail: dict[str, Any] = {"name": name, "phase": status.get("phase"),
                                  "node": (pod.get("spec") or {}).get("nodeName"),
                                  "conditions": status.get("conditions") or [],
                                  "containers": [], "events": [_brief(e) for e in events]}
        pod_details.append(detail)
        for cs in status.get("containerStatuses") or []:
            waiting = (cs.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            detail["containers"].append({k: cs.get(k) for k in
                                         ("name", "image", "restartCount", "state", "lastState")})
            if reason == "CrashLoopBackOff":
                last = ((cs.get("lastState") or {}).get("terminated") or {})
                logs = _last_logs(core, namespace, name, cs["name"], timeout)
                detail["logs"] = logs
                final = final_exception(logs)
                shown = "\n".join(logs[-20:]) or "(no log lines)"
                found.append(Diagnosis(
                    reason=reason, terminal=True, final_exception=final,
                    message=(f"pod {name} container {cs['name']} restarted "
                             f"{cs.get('restartCount', 0)} times (last exit code "
                             f"{last.get('exitCode', '?')})"
                             + (f"; final exception: {final}" if final else "")
                             + f"; last log lines:\n{shown}"),
                ))
            elif reason in PULL_REASONS:
                # "Failed" carries the registry's answer; "BackOff" only repeats the image.
                pulls = [e["message"] for e in events if e.get("reason") == "Failed"] or [
                    e["message"] for e in events if e.get("reason") == "BackOff"]
                said = pulls[-1] if pulls else waiting.get("message") or ""
                found.append(Diagnosis(
                    reason=reason, terminal=reason in TERMINAL_WAITING,
                    message=f"pod {name} image {cs.get('image', '?')}: {said}",
                ))
            elif reason in TERMINAL_WAITING:
                found.append(Diagnosis(reason=reason, terminal=True,
                                       message=f"pod {name}: {waiting.get('message') or reason}"))
        for cond in status.get("conditions") or []:
            if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
                scheduling = [e["message"] for e in events
                              if e.get("reason") == "FailedScheduling" and e.get("message")]
                said = scheduling[-1] if scheduling else cond.get("message") or ""
                # Not terminal: a GPU freed by a scale-down elsewhere lets it schedule later.
                found.append(Diagnosis(reason=cond.get("reason") or "Unschedulable",
                                       message=f"pod {name}: {said}"))
    order = ["CrashLoopBackOff", "ImagePullBackOff", "InvalidImageName", "ErrImagePull"]
    found.sort(key=lambda d: order.index(d.reason) if d.reason in order else len(order))
    best = found[0] if found else Diagnosis()
    best.details = {"pods": pod_details}
    return best
