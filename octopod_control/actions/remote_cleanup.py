"""remote cleanup: free what a staging holds on plain hosts, over SSH.

The `remote-cleanup` task runs it on its own; `cleanup` runs the same plan
(remote_plan.py) after the Kubernetes part. fabric is imported only when there are
hosts to reach.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ..args import Deployment
from ..remote_plan import plan, run_plan
from ..settings import Settings

if TYPE_CHECKING:
    from ..deadline import Deadline


def remote_cleanup(settings: Settings, deployment: Deployment, deadline: "Deadline | None" = None) -> list[str]:
    """Run REMOTE_CLEANUP_COMMANDS on every REMOTE_CLEANUP_HOSTS host.

    Returns one message per failure, naming the host and the command; [] on success
    or when no hosts are configured. A bad configuration raises ConfigError (78), a
    value a command cannot take (empty, or not a plain word) UsageError (64), both
    before any host is contacted. With a deadline, each connect and command gets at
    most what is left of it.
    """
    return run_plan(plan(settings, deployment), deployment, deadline)
