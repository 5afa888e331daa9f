"""A workload's Pods: which are its own (`owned`, `selected`), why they are not ready, read from
their status (kubedog's pod tracker reasons), and which of those states will not fix
themselves (`stuck`, create's fail-fast rule).

Which are its own: the controllers link them by owner references (a Pod's controller
reference names its ReplicaSet, StatefulSet, DaemonSet or Job), and adopt a Pod without
a controller that their selector picks; `owned` follows both. `selected` is the selector
alone (check's view of a Deployment, whose ReplicaSets it does not read).

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
# Waiting reasons that do not fix themselves once they last (a registry hiccup may: stuck()
# reports them for the caller's grace). ErrImagePull and ImagePullBackOff alternate while the
# kubelet retries: one state for the grace.
STUCK_REASONS = ("ErrImagePull", "ImagePullBackOff", "InvalidImageName", "CreateContainerConfigError",
                 "CreateContainerError")
_PULLING = ("ErrImagePull", "ImagePullBackOff")
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


def stuck(pod: Mapping[str, Any], restarts: int) -> list[tuple[str, str, bool]]:
    """(state, reason, at_once) for each container of the Pod in a state that will not fix itself.

    Waiting in one of STUCK_REASONS: at_once False, the caller waits its grace while `state`
    (the container and its reason, one for both image-pull reasons) stays the same.
    CrashLoopBackOff with at least `restarts` restarts: at_once True. Pending and
    unschedulable Pods are never stuck: an autoscaler may add a node.
    """
    status = pod.get("status") or {}
    images = {c.get("name"): c.get("image", "") for key in ("initContainers", "containers")
              for c in (pod.get("spec") or {}).get(key) or []}
    out = []
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for cstatus in status.get(key) or []:
            name = cstatus.get("name", "?")
            label = f"init container {name}" if init else f"container {name}"
            waiting = (cstatus.get("state") or {}).get("waiting") or {}
            reason = waiting.get("reason")
            text = _waiting(label, cstatus, waiting, images.get(name, ""))
            if reason in STUCK_REASONS:
                out.append((f"{label} {'ImagePull' if reason in _PULLING else reason}", text, False))
            elif reason == "CrashLoopBackOff" and (cstatus.get("restartCount") or 0) >= restarts:
                out.append((f"{label} CrashLoopBackOff", text, True))
    return out


def _termination(terminated: Mapping[str, Any]) -> str:
    text = _exit(terminated)
    message = terminated.get("message")
    return f"{text}: {_short(message)}" if message else text


def containers_in_trouble(pod: Mapping[str, Any]) -> list[tuple[str, str, str | None]]:
    """(container, its state in one line, which log tells why) for each container of the Pod that
    is not ready and not done: waiting (reason, the kubelet's message), exited non-zero, or
    running unready; with its restarts and last termination (exit code, reason). The log:
    "previous" when it waits to restart (a crash loop: the instance that crashed), "current"
    when it runs or has exited, None when it never ran (nothing was logged)."""
    status = pod.get("status") or {}
    out = []
    for key, init in (("initContainerStatuses", True), ("containerStatuses", False)):
        for cstatus in status.get(key) or []:
            state = cstatus.get("state") or {}
            waiting, terminated, running = state.get("waiting"), state.get("terminated"), state.get("running")
            last = (cstatus.get("lastState") or {}).get("terminated")
            if (cstatus.get("ready") and not init) or (terminated and terminated.get("exitCode") == 0):
                continue
            if waiting is not None:
                if init and waiting.get("reason") == "PodInitializing":
                    continue
                text = f"waiting: {waiting.get('reason') or 'Waiting'}"
                if waiting.get("message"):
                    text += f": {_short(waiting['message'])}"
                log = "previous" if last else None
            elif terminated:
                text, log = f"exited with {_termination(terminated)}", "current"
            elif running:
                if init:
                    continue
                text, log = "running, not ready", "current"
            else:
                continue
            restarts = cstatus.get("restartCount") or 0
            if restarts:
                text += f"; {restarts} restarts"
            if last:
                text += f"; last exited with {_termination(last)}"
            label = f"init container {cstatus.get('name', '?')}" if init else f"container {cstatus.get('name', '?')}"
            out.append((cstatus.get("name", "?"), f"{label}: {text}", log))
    return out


def controller(obj: Mapping[str, Any]) -> dict | None:
    """An object's controller reference (the ReplicaSet, StatefulSet... that manages it), if any."""
    for ref in (obj.get("metadata") or {}).get("ownerReferences") or []:
        if ref.get("controller"):
            return ref
    return None


def _selects(selector: Mapping[str, str], pod: Mapping[str, Any]) -> bool:
    labels = (pod.get("metadata") or {}).get("labels") or {}
    return bool(selector) and all(labels.get(k) == v for k, v in selector.items())


def _match_labels(workload: Mapping[str, Any]) -> dict:
    return ((workload.get("spec") or {}).get("selector") or {}).get("matchLabels") or {}


def owned(owner: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list:
    """Pods the owner controls: those whose controller reference is its uid, and those without a
    controller that its selector picks (its controller adopts them). A Pod another controller
    holds is never its own, whatever its labels."""
    uid = (owner.get("metadata") or {}).get("uid")
    selector = _match_labels(owner)
    out = []
    for pod in pods:
        ref = controller(pod)
        if (ref.get("uid") == uid and uid) if ref else _selects(selector, pod):
            out.append(pod)
    return out


def selected(workload: Mapping[str, Any], pods: Iterable[Mapping[str, Any]]) -> list:
    """Pods a workload's selector (matchLabels) picks out of the given list; none without one."""
    selector = _match_labels(workload)
    return [p for p in pods if _selects(selector, p)]


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
