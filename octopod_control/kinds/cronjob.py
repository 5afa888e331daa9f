"""CronJob.

check does not judge it: a CronJob itself runs nothing; what it starts are Jobs.

Archive suspends it (it starts no more Jobs), recording suspend: false; restore
resumes it where the chart does not set suspend; archive_check wants it suspended.
"""
from __future__ import annotations

from . import archived
from .base import Kind
from .pods import selected

NAME = "CronJob"

KIND = Kind(NAME, "/apis/batch/v1/namespaces/{ns}/cronjobs", verdict=None,
            pods=lambda obj, all_pods, replicasets=None: selected(obj, all_pods),
            **archived.stopped_by_suspending(NAME))
