"""Remote cleanup, planned then run: every setting and value checked first (`plan`), the
commands run on every host later (`run_plan`).

cleanup plans it before it touches anything and runs it as its last part; the
remote-cleanup task (actions/remote_cleanup.py) runs it on its own. Plumbing below
actions/, so that neither action imports the other. fabric (remote.py) is imported
only when there are hosts to reach, so a cleanup without remote hosts stays fast.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .args import Deployment
from .log import info as log
from .settings import Settings

if TYPE_CHECKING:
    from .deadline import Deadline


@dataclass(frozen=True)
class Plan:
    """What remote cleanup will do, its settings read and validated."""
    hosts: list[Any]  # remote.Host
    commands: list[str]
    options: Any  # remote.Options


def plan(settings: Settings, deployment: Deployment) -> Plan | None:
    """Every remote cleanup setting (ConfigError) and every value the commands take (UsageError:
    `rm -rf -- /srv/{project_name}` never runs with an empty or `..` project), checked; None when
    there is nothing to do. `cleanup` calls this before it touches anything."""
    if not settings.text("REMOTE_CLEANUP_HOSTS"):
        return None
    from . import remote

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
    from . import remote

    log(f"remote cleanup of {deployment.name}: {len(planned.commands)} command(s) on "
        + ", ".join(str(h) for h in planned.hosts))
    failures = remote.run_everywhere(planned.hosts, planned.commands, planned.options, deadline)
    if not failures:
        log(f"remote cleanup of {deployment.name}: done on every host")
    return failures
