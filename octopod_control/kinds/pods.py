"""A workload's Pods: which are its own (`selected`), and why they are not ready, read from
their status (kubedog's pod tracker reasons).

Reported: ImagePullBackOff / ErrImagePull (with the image), CrashLoopBackOff
(restarts, last exit code), CreateContainerConfigError and other waiting
reasons (with the kubelet's message), failing init containers, containers that
exited non-zero, running-but-unready containers, unschedulable Pending pods and
failed (e.g. evicted) pods. The same reason on several pods is reported once,
with the number of pods.
"""
from __future__ import annotations

from typing import Any, Iterable, Mapping

IMAGE_REASONS = ("ImagePullBackOff", "ErrImagePull", "InvalidImageName", "ErrImageNeverPull")
MAX_REASONS = 5  # per workload: the stderr line stays readable
MAX_MESSAGE = 160


def _short(text: str) -> str:
    text = " ".join(str(text).split())
    return text if len(text) <= MAX_MESSAGE else text[:MAX_MESSAGE - 1] + "…"


def _is_ready(status: Mapping[str, Any]) -> bool:
    return any(c.get("type") == "Ready" and c.get("status") == "True" for c in status.get("conditions") or [])


def _exit(terminated: Mapping[str, Any]) -> str:
    code = terminated.get("exitCode")
    reason = terminated.get("reason")
    text = f"exit code {code}" if code is not None else "no exit code"
    return f"{text} ({reason})" if reason and reason not in ("Error", "Completed") else text


def _waiting(label: str, cstatus: Mapping[str, Any], waiting: Mapping[str, Any], image: str) -> str:
    reason = waiting.get("reason") or "Waiting"
    if reason in IMAGE_REASONS:
        return f"{label}: {reason} (image {cstatus.get('image') or image or '?'})"
    if reason == "CrashLoopBackOff":
        last = (cstatus.get("lastState") or {}).get("terminated") or {}
        return f"{label}: CrashLoopBackOff ({cstatus.get('restartCount') or 0} restarts, last {_exit(last)})"
    message = waiting.get("message")
    return f"{label}: {reason}: {_short(message)}" if message else f"{label}: {reason}"


def _container(label: str, cstatus: Mapping[str, Any], image: str, init: bool) -> str | None:
    state = cstatus.get("state") or {}
    waiting, terminated = state.get("waiting"), state.get("terminated")
    if waiting:
        if init and waiting.get("reason") == "PodInitializing":
            return None
        return _waiting(label, cstatus, waiting, image)
    if terminated:
        if terminated.get("exitCode") == 0:
            return None
        return f"{label}: exited with {_exit(terminated)}"
    if state.get("running") and not cstatus.get("ready") and not init:
        return f"{label}: running but not ready ({cstatus.get('restartCount') or 0} restarts)"
    return None


def pod_reasons(pod: Mapping[str, Any]) -> list[str]:
    """Reasons one Pod is not ready; [] for a ready pod."""
    status = pod.get("status") or {}
    if _is_ready(status):
        return []
    images = {c.get("name"): c.get("image", "") for key in ("initContainers", "containers")
              for c in (pod.get("spec") or {}).get(key) or []}
    phase = status.get("phase")
    if phase == "Failed":
        detail = ": ".join(x for x in (status.get("reason"), _short(status.get("message") or "")) if x)
        return [f"pod failed: {detail or 'Failed'}"]
    out = []
    for cond in status.get("conditions") or []:
        if cond.get("type") == "PodScheduled" and cond.get("status") == "False":
            out.append(f"unschedulable: {_short(cond.get('message') or cond.get('reason') or '')}")
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for cstatus in status.get(key) or []:
            name = cstatus.get("name", "?")
            label = f"init container {name}" if init else f"container {name}"
            reason = _container(label, cstatus, images.get(name, ""), init)
            if reason:
                out.append(reason)
    if not out and phase == "Pending":
        out.append("pending")
    return out


def selected(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list:
    """Pods a workload's selector (matchLabels) picks out of the given list; none without one."""
    selector = ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}
    if not selector:
        return []
    return [p for p in pods
            if all(((p.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in selector.items())]


def summarize(pods: Iterable[Mapping[str, Any]]) -> list[str]:
    """Reasons over a workload's pods, each once with its pod count, at most MAX_REASONS."""
    counts: dict[str, int] = {}
    for pod in pods:
        for reason in dict.fromkeys(pod_reasons(pod)):
            counts[reason] = counts.get(reason, 0) + 1
    lines = [f"{r} ({n} pods)" if n > 1 else r for r, n in counts.items()]
    if len(lines) > MAX_REASONS:
        lines = lines[:MAX_REASONS] + [f"and {len(lines) - MAX_REASONS} more"]
    return lines
