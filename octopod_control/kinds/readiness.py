"""Readiness verdicts: the `Verdict` each kind's `verdict(obj)` returns, and the helpers they share.

Rules are at least as strict as werf/kubedog's trackers (pkg/tracker/<kind>/) and
kstatus (sigs.k8s.io/cli-utils pkg/kstatus/status: what helm 4's --wait=watcher uses;
tests/test_kinds.py holds them to its test table): a verdict says ready, partial (some
pods available, not all) or failed, with the counts and reasons a person needs to see
why. Each rule is a pure function of the object as read, in its kind's module. check
and create's rollout follow (rollout.py) judge by these same rules.
"""
from __future__ import annotations

from typing import Any, Mapping

READY = "ready"
PARTIAL = "partial"
FAILED = "failed"


class Verdict:
    """A workload's state (READY, PARTIAL or FAILED), its counts and the reasons it is not ready.

    A plain class, not a dataclass: building one at import costs check ~1 ms.
    """

    __slots__ = ("kind", "name", "state", "counts", "reasons")

    def __init__(self, kind: str, name: str, state: str, counts: str = "",
                 reasons: list[str] | None = None) -> None:
        self.kind, self.name, self.state, self.counts = kind, name, state, counts
        self.reasons = list(reasons or [])

    def __repr__(self) -> str:
        return f"Verdict({self.line()!r})"

    @property
    def ready(self) -> bool:
        return self.state == READY

    def line(self) -> str:
        """One stderr line: kind/name, counts, reasons."""
        text = f"{self.kind.lower()}/{self.name}: {self.state}"
        if self.counts:
            text += f", {self.counts}"
        if self.reasons:
            text += ": " + "; ".join(self.reasons)
        return text


def parts(obj: Mapping[str, Any]) -> tuple[dict, dict, dict]:
    """metadata, spec, status; each {} when absent (a controller may not have written status yet)."""
    return obj.get("metadata") or {}, obj.get("spec") or {}, obj.get("status") or {}


def observed(meta: Mapping[str, Any], status: Mapping[str, Any]) -> bool:
    """The controller has seen the latest spec (no generation recorded: nothing to wait for)."""
    return (status.get("observedGeneration") or 0) >= (meta.get("generation") or 0)


def condition(status: Mapping[str, Any], kind: str) -> dict | None:
    for cond in status.get("conditions") or []:
        if cond.get("type") == kind:
            return cond
    return None


def explain(cond: Mapping[str, Any]) -> str:
    """A condition's reason and message, as one short text (its type when it has neither)."""
    message = " ".join(str(cond.get("message") or "").split())
    if len(message) > 160:
        message = message[:159] + "…"
    return ": ".join(x for x in (cond.get("reason"), message) if x) or str(cond.get("type", "?"))


def judge(kind: str, obj: Mapping[str, Any], ready: bool, available: int, counts: str,
          reasons: list[str]) -> Verdict:
    """ready, else partial while some pods serve, else failed."""
    name = (obj.get("metadata") or {}).get("name", "?")
    if ready:
        return Verdict(kind, name, READY, counts)
    return Verdict(kind, name, PARTIAL if available > 0 else FAILED, counts, reasons)
