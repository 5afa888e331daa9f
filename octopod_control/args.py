"""Octopod's argv, validated: every flag an operation takes and what it may hold.

Everything here is pure: it turns raw flag values into a `Deployment` or raises
`UsageError` naming the flag, before any external command runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping

from .errors import UsageError
from .log import warn

NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9]{0,51}[a-z0-9])?")  # DNS-1123 label, helm's 53
NAMESPACE_PATTERN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT_FORBIDDEN = re.compile(r"[\s\[\]\x00-\x1f\x7f]")


@dataclass(frozen=True)
class Deployment:
    """One staging as Octopod names it, after the configuration fallbacks."""

    name: str
    namespace: str
    project_name: str = ""
    base_domain: str = ""
    tag: str = ""
    app_env: dict[str, str] = field(default_factory=dict)
    # Keys are paths (tuples of segments); values are the strings as given.
    deployment: dict[tuple[str, ...], str] = field(default_factory=dict)

    def template_fields(self) -> dict[str, str]:
        return {
            "name": self.name,
            "namespace": self.namespace,
            "project_name": self.project_name,
            "base_domain": self.base_domain,
            "tag": self.tag,
        }

    def override_values(self) -> list[str]:
        """Every override value: what must never reach a log."""
        return list(self.app_env.values()) + list(self.deployment.values())


def _text(flag: str, value: str | None) -> str:
    if value is None:
        return ""
    if not isinstance(value, str):  # Invoke hands a bool to a flag given without its value
        raise UsageError(f"{flag}: needs a value")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise UsageError(f"{flag}: value is not valid UTF-8") from None
    return value


def _check(flag: str, value: str, pattern: re.Pattern[str], what: str) -> str:
    if not pattern.fullmatch(value):
        shown = value if len(value) <= 80 and value.isprintable() else repr(value[:80])
        raise UsageError(f"{flag}: {shown!s} is not {what}")
    return value


def validate_name(value: str | None) -> str:
    value = _text("--name", value)
    if not value:
        raise UsageError("--name: required")
    return _check("--name", value, NAME_PATTERN,
                  "a valid name (lower-case letters, digits and '-', starting with a letter, "
                  "not ending with '-', at most 53 characters)")


def validate_namespace(value: str) -> str:
    if not value:
        raise UsageError("--namespace: required (or set NAMESPACE)")
    return _check("--namespace", value, NAMESPACE_PATTERN, "a valid namespace (DNS-1123 label)")


def validate_tag(value: str | None) -> str:
    value = _text("--tag", value)
    return _check("--tag", value, _TAG, "a valid image tag") if value else ""


def parse_pairs(flag: str, raw: Iterable[str] | None) -> list[tuple[str, str]]:
    """Split each K=V at the first '='; the value is kept byte for byte."""
    pairs = []
    for item in raw or ():
        item = _text(flag, item)
        key, sep, value = item.partition("=")
        if not sep:
            raise UsageError(f"{flag}: {key[:80]!r} has no '=' (expected KEY=VALUE)")
        if not key:
            raise UsageError(f"{flag}: empty key (expected KEY=VALUE)")
        pairs.append((key, value))
    return pairs


def split_path(flag: str, key: str) -> tuple[str, ...]:
    """A dotted values path; '\\.' keeps a dot inside a segment, as with helm --set."""
    segments, current, escaped = [], [], False
    for char in key:
        if escaped:
            current.append(char)
            escaped = False
        elif char == "\\":
            escaped = True
        elif char == ".":
            segments.append("".join(current))
            current = []
        else:
            current.append(char)
    if escaped:
        current.append("\\")
    segments.append("".join(current))
    shown = key[:80]
    if any(not s for s in segments):
        raise UsageError(f"{flag}: key {shown!r} has an empty path segment")
    if any(_SEGMENT_FORBIDDEN.search(s) for s in segments):
        raise UsageError(f"{flag}: key {shown!r} holds whitespace, brackets or control characters "
                         "(list indexes are not supported)")
    return tuple(segments)


def _last_wins(flag: str, pairs: list[tuple[object, str]], label) -> dict:
    result: dict = {}
    for key, value in pairs:
        if key in result:
            warn(f"{flag} {label(key)} given more than once; the last value wins")
        result[key] = value
    return result


def parse_app_env(raw: Iterable[str] | None) -> dict[str, str]:
    pairs = parse_pairs("--app-env-override", raw)
    for key, _ in pairs:
        _check("--app-env-override", key, _ENV_KEY, "an environment variable name")
    return _last_wins("--app-env-override", pairs, str)


def parse_deployment_overrides(raw: Iterable[str] | None) -> dict[tuple[str, ...], str]:
    pairs = [(split_path("--deployment-override", k), v)
             for k, v in parse_pairs("--deployment-override", raw)]
    return _last_wins("--deployment-override", pairs, ".".join)


def build_deployment(
    config: Mapping[str, str],
    *,
    name: str | None,
    namespace: str | None = None,
    project_name: str | None = None,
    base_domain: str | None = None,
    tag: str | None = None,
    app_env_override: Iterable[str] | None = None,
    deployment_override: Iterable[str] | None = None,
) -> Deployment:
    """Validate Octopod's flags; --project-name, --base-domain, --namespace fall back to config."""
    name = validate_name(name)
    namespace = validate_namespace(_text("--namespace", namespace) or config.get("NAMESPACE", "").strip())
    project = _text("--project-name", project_name) or config.get("PROJECT_NAME", "").strip()
    if any(not c.isprintable() for c in project) or len(project) > 253:
        raise UsageError("--project-name: must be printable text of at most 253 characters")
    domain = _text("--base-domain", base_domain) or config.get("BASE_DOMAIN", "").strip()
    if domain:
        _check("--base-domain", domain, _DOMAIN, "a valid domain")
    return Deployment(
        name=name,
        namespace=namespace,
        project_name=project,
        base_domain=domain,
        tag=validate_tag(tag),
        app_env=parse_app_env(app_env_override),
        deployment=parse_deployment_overrides(deployment_override),
    )
