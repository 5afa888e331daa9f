"""The shape every workload kind has: `Kind`, and `Change`, what archive or restore does to one object.

Plain classes with __slots__, not dataclasses: check imports every kind on each run, and
building a dataclass at import costs about a millisecond.
"""
from __future__ import annotations

from typing import TYPE_CHECKING, Any, Callable, Mapping, Optional

if TYPE_CHECKING:
    from .readiness import Verdict

Object = Mapping[str, Any]  # an API object as read (metadata, spec, status)


class Change:
    """What archive or restore does to one workload: a merge patch and what to say about it.

    patch None: nothing to send (the workload is already as wanted). note: an info line;
    warning: a warning line, said before the note (a record that could not be read).
    """

    __slots__ = ("patch", "note", "warning")

    def __init__(self, patch: dict | None = None, note: str | None = None,
                 warning: str | None = None) -> None:
        self.patch, self.note, self.warning = patch, note, warning

    def __repr__(self) -> str:
        return f"Change({self.patch!r}, note={self.note!r}, warning={self.warning!r})"


class Kind:
    """Everything the project knows about one workload kind; each module under kinds/ builds one.

    name: the API kind ("Deployment"); path: its LIST path, with {ns} for the namespace.
    verdict(obj): check's readiness verdict, a pure function of the object; None for a kind
      check does not judge (CronJob: it runs nothing itself).
    may_vanish: the cluster deletes it on its own once its work is done (a Job's TTL), so
      check does not call it missing when the release declares it and the cluster lacks it.
    pods(obj, pods, owners): which of the namespace's Pods are its own, linked as its
      controller links them (owner references; a Deployment's through the ReplicaSet of its
      current template, when the namespace's ReplicaSets are given as owners; check, which
      does not read them, gets the selector's); None when the owner it links them through is
      not among the owners given. check and a rollout read their reasons.
    via: the kind its Pods are owned through ("ReplicaSet" for a Deployment), whose objects
      a rollout lists to pass as `owners`; "" when its Pods are its own.
    failure(obj): why the workload itself has failed for good (a Job's Failed condition, a
      Deployment's ProgressDeadlineExceeded or ReplicaFailure), else None: create's fail-fast
      rule stops waiting at once (rollout.py). Pod states that will not fix themselves are
      pods.stuck's, the same for every kind.
    stop(obj): archive's Change: one merge patch that stops it and records, in the same
      patch, what it ran with (atomic: a killed archive never leaves it stopped unrecorded).
    archived(obj): it carries archive's record, so restore has something to undo.
    restore(obj, spec): restore's Change, after helm's upgrade: the record filled in where
      the chart says nothing (spec: the chart's rendered spec of it, {} when the manifest
      lacks it, None when no manifest could be read), the record dropped.
    still_running(obj): archive_check's line while stop has not taken effect, else None.
    """

    __slots__ = ("name", "path", "verdict", "may_vanish", "pods", "failure", "via", "stop", "archived",
                 "restore", "still_running")

    def __init__(self, name: str, path: str, *,
                 verdict: Optional[Callable[[Object], "Verdict"]],
                 pods: Callable[..., list[dict]],
                 stop: Callable[[Object], Change],
                 archived: Callable[[Object], bool],
                 restore: Callable[[Object, Optional[Mapping[str, Any]]], Change],
                 still_running: Callable[[Object], Optional[str]],
                 failure: Callable[[Object], Optional[str]] = lambda obj: None,
                 via: str = "", may_vanish: bool = False) -> None:
        self.name, self.path, self.verdict, self.may_vanish = name, path, verdict, may_vanish
        self.via = via
        self.pods, self.failure, self.stop, self.archived = pods, failure, stop, archived
        self.restore, self.still_running = restore, still_running

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"


def name_of(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def uid_of(obj: Object) -> str | None:
    return (obj.get("metadata") or {}).get("uid")


def annotations_of(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}
