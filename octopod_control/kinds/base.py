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
    pods(obj, pods): which of the namespace's Pods are its own (check reads their reasons).
    stop(obj): archive's Change: one merge patch that stops it and records, in the same
      patch, what it ran with (atomic: a killed archive never leaves it stopped unrecorded).
    archived(obj): it carries archive's record, so restore has something to undo.
    restore(obj, spec): restore's Change, after helm's upgrade: the record filled in where
      the chart says nothing (spec: the chart's rendered spec of it, {} when the manifest
      lacks it, None when no manifest could be read), the record dropped.
    still_running(obj): archive_check's line while stop has not taken effect, else None.
    """

    __slots__ = ("name", "path", "verdict", "may_vanish", "pods", "stop", "archived", "restore",
                 "still_running")

    def __init__(self, name: str, path: str, *,
                 verdict: Optional[Callable[[Object], "Verdict"]],
                 pods: Callable[[Object, list[dict]], list[dict]],
                 stop: Callable[[Object], Change],
                 archived: Callable[[Object], bool],
                 restore: Callable[[Object, Optional[Mapping[str, Any]]], Change],
                 still_running: Callable[[Object], Optional[str]],
                 may_vanish: bool = False) -> None:
        self.name, self.path, self.verdict, self.may_vanish = name, path, verdict, may_vanish
        self.pods, self.stop, self.archived, self.restore = pods, stop, archived, restore
        self.still_running = still_running

    def __repr__(self) -> str:
        return f"Kind({self.name!r})"


def name_of(obj: Object) -> str:
    return (obj.get("metadata") or {}).get("name", "?")


def annotations_of(obj: Object) -> dict[str, str]:
    return (obj.get("metadata") or {}).get("annotations") or {}
