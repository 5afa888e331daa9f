"""Where a deployment lands: its helm release name and namespace, from the templates."""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from .args import NAMESPACE_PATTERN, Deployment
from .errors import ConfigError, UsageError
from .settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:  # helm is imported only by what runs helm (check and info do not)
    from .helm import Helm

# helm's own rule for release names: a DNS-1123 label of at most 53 characters.
_RELEASE = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,51}[a-z0-9])?")


class Target:
    """Where a deployment lands: its helm release and namespace; immutable. A plain class, not
    a frozen dataclass: building one at import costs every check ~0.5 ms."""

    __slots__ = ("release", "namespace")

    def __init__(self, release: str, namespace: str) -> None:
        object.__setattr__(self, "release", release)
        object.__setattr__(self, "namespace", namespace)

    def __setattr__(self, name: str, value: object) -> None:
        raise AttributeError(f"Target is immutable: cannot set {name}")

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Target) and (self.release, self.namespace) == (other.release, other.namespace)

    def __hash__(self) -> int:
        return hash((self.release, self.namespace))

    def __repr__(self) -> str:
        return f"Target(release={self.release!r}, namespace={self.namespace!r})"


def resolve_target(settings: Settings, deployment: Deployment) -> Target:
    fields = deployment.template_fields()
    release = settings.render("RELEASE_NAME", fields)
    namespace = settings.render("DEPLOY_NAMESPACE", fields)
    if not _RELEASE.fullmatch(release):
        raise ConfigError(f"RELEASE_NAME gives {release!r}, not a valid helm release name")
    if not NAMESPACE_PATTERN.fullmatch(namespace):
        raise ConfigError(f"DEPLOY_NAMESPACE gives {namespace!r}, not a valid namespace")
    if namespace_per_staging(settings) and _reserved(namespace, deployment):
        # The deployment's name picks the namespace, and cleanup may delete it: never a system one.
        raise UsageError(f"--name: {deployment.name} would deploy into the namespace {namespace}, "
                         "which belongs to the cluster or to Octopod")
    return Target(release, namespace)


def namespace_per_staging(settings: Settings) -> bool:
    """DEPLOY_NAMESPACE derived from {name}: each staging has a namespace of its own."""
    return "{name}" in settings.text("DEPLOY_NAMESPACE")


def _reserved(namespace: str, deployment: Deployment) -> bool:
    return (namespace in ("default", deployment.namespace)
            or namespace.startswith(("kube-", "openshift")))


def helm_for(settings: Settings, secrets: list[str] | None = None) -> Helm:
    from .helm import Helm
    from .incluster import tool_environ

    return Helm(settings.helm_bin, tool_environ(settings), settings.helm_timeout, list(secrets or []),
                insecure=settings.text("REGISTRY_INSECURE"))


def resolve_chart(chart: str) -> str:
    """A local chart path (absolute, or relative to the project root or cwd), else as given.

    `repo/chart` and `oci://…` references go to helm unchanged.
    """
    if not chart:
        raise ConfigError("CHART: not set (a chart path, repo/chart or oci://…)")
    if chart.startswith("oci://"):
        return chart
    for candidate in (Path(chart), PROJECT_ROOT / chart):
        if candidate.exists():
            return str(candidate.resolve())
    return chart
