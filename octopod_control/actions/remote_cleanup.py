"""remote cleanup: free what a staging holds on plain hosts, over SSH.

`cleanup` calls `remote_cleanup` after the Kubernetes part; the `remote-cleanup`
task runs it on its own. fabric is imported only when there are hosts to reach,
so a cleanup without remote hosts stays as fast as before.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from ..args import Deployment
from ..log import info as log
from ..settings import Settings

if TYPE_CHECKING:
    from ..deadline import Deadline


@dataclass(frozen=True)
class Plan:
    """What remote cleanup will do, its settings read and validated."""
    hosts: list[Any]  # remote.Host
    commands: list[str]
    options: Any  # remote.Options


def remote_cleanup(settings: Settings, deployment: Deployment, deadline: "Deadline | None" = None) -> list[str]:
    """Run REMOTE_CLEANUP_COMMANDS on every REMOTE_CLEANUP_HOSTS host.

    Returns one message per failure, naming the host and the command; [] on success
    or when no hosts are configured. A bad configuration raises ConfigError (78), a
    value a command cannot take (empty, or not a plain word) UsageError (64), both
    before any host is contacted. With a deadline, each connect and command gets at
    most what is left of it.
    """
    return run_plan(plan(settings, deployment), deployment, deadline)


def plan(settings: Settings, deployment: Deployment) -> Plan | None:
    """Every remote cleanup setting (ConfigError) and every value the commands take (UsageError:
    `rm -rf -- /srv/{project_name}` never runs with an empty or `..` project), checked; None when
    there is nothing to do. `cleanup` calls this before it touches anything."""
    if not settings.text("REMOTE_CLEANUP_HOSTS"):
        return None
    from .. import remote

    hosts = remote.parse_hosts(settings.text("REMOTE_CLEANUP_HOSTS"))
    commands = remote.render_commands(settings.text("REMOTE_CLEANUP_COMMANDS"),
                                      deployment.template_fields())
    if not hosts:
        return None
    return Plan(hosts, commands, remote.options(settings))


def run_plan(planned: Plan | None, deployment: Deployment, deadline: "Deadline | None" = None) -> list[str]:
    if planned is None:
        return []
    if not planned.commands:
        log("remote cleanup: REMOTE_CLEANUP_HOSTS is set but REMOTE_CLEANUP_COMMANDS is empty; "
            "nothing to run")
        return []
    from .. import remote

    log(f"remote cleanup of {deployment.name}: {len(planned.commands)} command(s) on "
        + ", ".join(str(h) for h in planned.hosts))
    failures = remote.run_everywhere(planned.hosts, planned.commands, planned.options, deadline)
    if not failures:
        log(f"remote cleanup of {deployment.name}: done on every host")
    return failures
