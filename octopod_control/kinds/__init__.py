"""The workload kinds: one module a kind, holding everything the project knows about it.

Each of deployment.py, statefulset.py, daemonset.py, job.py and cronjob.py builds one
`Kind` (base.py): its API path, check's readiness verdict (a pure function of the
object, as werf/kubedog's trackers, held to kstatus's table), which Pods are its own (as
its controller links them), what has failed for good (create's fail-fast rule), how
archive stops it, how restore brings it back, and what archive_check looks for. check,
create's rollout follow, archive, restore, archive_check and cleanup iterate KINDS; none
of them names a kind.

Beside them: readiness.py (the Verdict and the helpers the rules share), pods.py (a
workload's Pods, why they are not ready, and which of their states will not fix
themselves), archived.py (the octopod.io/archived-* records and the scale and suspend
mechanics two kinds each share).

Adding a kind is one module here building its KIND, one line in KINDS, and its tests.

The order of KINDS is the order every action lists, judges, stops, restores and
deletes in (check's stderr lines follow it). Every module is small and pure (the
standard library's json at most): check imports them all on each run.
"""
from __future__ import annotations

from . import cronjob, daemonset, deployment, job, statefulset
from .base import Change, Kind
from .readiness import FAILED, PARTIAL, READY, Verdict

KINDS: tuple[Kind, ...] = (deployment.KIND, statefulset.KIND, daemonset.KIND, cronjob.KIND, job.KIND)
JUDGED: tuple[Kind, ...] = tuple(kind for kind in KINDS if kind.verdict is not None)
BY_NAME: dict[str, Kind] = {kind.name: kind for kind in KINDS}

__all__ = ["BY_NAME", "Change", "FAILED", "JUDGED", "KINDS", "Kind", "PARTIAL", "READY", "Verdict"]
