"""remote cleanup: free what a staging holds on plain hosts, over SSH.

`cleanup` calls `remote_cleanup` after the Kubernetes part; the `remote-cleanup`
task runs it on its own. fabric is imported only when there are hosts to reach,
so a cleanup without remote hosts stays as fast as before.
"""
from __future__ import annotations

from ..args import Deployment
from ..log import info as log
from ..settings import Settings


def remote_cleanup(settings: Settings, deployment: Deployment) -> list[str]:
    """Run REMOTE_CLEANUP_COMMANDS on every REMOTE_CLEANUP_HOSTS host.

    Returns one message per failure, naming the host and the command; [] on success
    or when no hosts are configured. A bad configuration raises ConfigError before
    any host is contacted.
    """
    if not settings.text("REMOTE_CLEANUP_HOSTS"):
        return []
    from .. import remote

    hosts = remote.parse_hosts(settings.text("REMOTE_CLEANUP_HOSTS"))
    commands = remote.render_commands(settings.text("REMOTE_CLEANUP_COMMANDS"),
                                      deployment.template_fields())
    if not hosts:
        return []
    if not commands:
        log("remote cleanup: REMOTE_CLEANUP_HOSTS is set but REMOTE_CLEANUP_COMMANDS is empty; "
            "nothing to run")
        return []
    log(f"remote cleanup of {deployment.name}: {len(commands)} command(s) on "
        + ", ".join(str(h) for h in hosts))
    failures = remote.run_everywhere(hosts, commands, remote.options(settings))
    if not failures:
        log(f"remote cleanup of {deployment.name}: done on every host")
    return failures
