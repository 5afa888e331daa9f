"""The helm values a deployment gets, and their serialisation.

Values never pass through ``helm --set``: they are written as a values document
(JSON, which is YAML) and handed to helm on stdin. Deployment overrides are
typed the way ``--set`` types a value; app-env overrides stay strings. Overrides
are checked first: none may touch the paths Octopod or the platform own, and none
may hold a template unless ALLOW_TEMPLATE_VALUES=true.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from .args import Deployment, split_path
from .errors import ConfigError, UsageError

_INT = re.compile(r"[-+]?[0-9]+")
# Characters YAML treats as line breaks or rejects as unprintable; JSON leaves
# them raw with ensure_ascii=False, so they are escaped by hand.
_YAML_UNSAFE = re.compile("[\x7f-\x9f\u2028\u2029\ufeff\ufffe\uffff]")


def helm_typed(value: str) -> Any:
    """Type a value as helm's strvals does for --set: bool, null, int64, else the string."""
    lowered = value.lower()
    if lowered == "true":
        return True
    if lowered == "false":
        return False
    if lowered == "null":
        return None
    # strvals: "0" is 0; otherwise Go's ParseInt, but only when the first character is not
    # a zero (so "0123" stays a string while "-012" and "+5" are ints).
    if value == "0" or (value[:1] != "0" and _INT.fullmatch(value)):
        number = int(value)
        if -(2**63) <= number < 2**63:
            return number
    return value


def _prefix(setting: str, raw: str) -> tuple[str, ...]:
    return split_path(setting, raw) if raw else ()


def set_path(tree: dict[str, Any], path: tuple[str, ...], value: Any) -> None:
    """Set tree[a][b]... = value, replacing any scalar met on the way by a map."""
    node = tree
    for segment in path[:-1]:
        child = node.get(segment)
        if not isinstance(child, dict):
            child = node[segment] = {}
        node = child
    node[path[-1]] = value


# Where create puts Octopod's own values: no deployment override may set, shadow or replace them.
PLATFORM_KEYS = ("TAG_KEY", "PROJECT_NAME_KEY", "BASE_DOMAIN_KEY", "APP_ENV_PREFIX")
TEMPLATE_MARK = "{{"


def build_values(deployment: Deployment, keys: dict[str, str], protected: list[str] | None = None,
                 allow_templates: bool = False) -> dict[str, Any]:
    """The values tree: project, domain and tag first, then app env, then deployment overrides.

    ``keys`` maps TAG_KEY, PROJECT_NAME_KEY, BASE_DOMAIN_KEY, APP_ENV_PREFIX and
    DEPLOYMENT_OVERRIDE_PREFIX to their configured dotted paths; ``protected`` is
    PROTECTED_VALUES (dotted paths from the root). Overrides are checked first
    (check_overrides): a refused one is a UsageError and nothing is built.
    """
    paths = {k: _setting_path(k, v) for k, v in keys.items()}
    for required in PLATFORM_KEYS:
        if not paths.get(required):
            raise ConfigError(f"{required}: must be a dotted values path")
    guarded = [(paths[k], k) for k in PLATFORM_KEYS]
    guarded += [(_setting_path("PROTECTED_VALUES", p), "PROTECTED_VALUES") for p in protected or ()]
    prefix = paths.get("DEPLOYMENT_OVERRIDE_PREFIX", ())
    check_overrides(deployment, prefix, guarded, allow_templates)
    tree: dict[str, Any] = {}
    if deployment.project_name:
        set_path(tree, paths["PROJECT_NAME_KEY"], deployment.project_name)
    if deployment.base_domain:
        set_path(tree, paths["BASE_DOMAIN_KEY"], deployment.base_domain)
    if deployment.tag:
        set_path(tree, paths["TAG_KEY"], deployment.tag)
    for key, value in deployment.app_env.items():
        set_path(tree, paths["APP_ENV_PREFIX"] + (key,), value)
    for path, value in deployment.deployment.items():
        set_path(tree, prefix + path, helm_typed(value))
    return tree


def _setting_path(setting: str, raw: str) -> tuple[str, ...]:
    try:
        return _prefix(setting, raw)
    except UsageError as exc:  # a bad path in a setting is a configuration problem
        raise ConfigError(str(exc)) from None


def check_overrides(deployment: Deployment, prefix: tuple[str, ...],
                    guarded: list[tuple[tuple[str, ...], str]], allow_templates: bool) -> None:
    """Refuse (UsageError, 64) what an override must not do; the value itself is never shown.

    A deployment override may not set a guarded path, lie under it, or be a prefix of it
    (it would replace it wholesale): where create puts Octopod's own values, and what the
    platform owns (PROTECTED_VALUES, e.g. serviceAccount.name). A value holding ``{{`` is a
    template: charts that pass values through ``tpl`` would run it with the tool's
    credentials, so it needs ALLOW_TEMPLATE_VALUES=true.
    """
    if not allow_templates:
        # Keys too: a chart running `tpl (toYaml .Values.podAnnotations)` renders them as well.
        for flag, key, value in _overrides(deployment):
            where = "key" if TEMPLATE_MARK in key else "value" if TEMPLATE_MARK in value else ""
            if where:
                raise UsageError(f"{flag} {key}: the {where} holds '{{{{' (a template, which a chart "
                                 "passing values through tpl would run); set "
                                 "ALLOW_TEMPLATE_VALUES=true to allow it")
    for path in deployment.deployment:
        full = prefix + path
        for guard, setting in guarded:
            clash = _clash(full, guard)
            if clash:
                where = f" (at {dotted(full)}, under DEPLOYMENT_OVERRIDE_PREFIX)" if prefix else ""
                raise UsageError(f"--deployment-override {dotted(path)}{where}: {clash} "
                                 f"{dotted(guard)}, which is protected ({setting})")


def _clash(path: tuple[str, ...], guard: tuple[str, ...]) -> str:
    if path == guard:
        return "sets"
    if path[:len(guard)] == guard:
        return "lies under"
    if guard[:len(path)] == path:
        return "would replace"
    return ""


def _overrides(deployment: Deployment) -> Iterator[tuple[str, str, str]]:
    """(flag, key as written, value) of every override."""
    yield from (("--app-env-override", k, v) for k, v in deployment.app_env.items())
    yield from (("--deployment-override", dotted(p), v) for p, v in deployment.deployment.items())


def dotted(path: tuple[str, ...]) -> str:
    """A path as it is written in a flag or setting: '.' between segments, '\\.' inside one."""
    return ".".join(segment.replace(".", "\\.") for segment in path)


def dump_values(tree: dict[str, Any]) -> str:
    """Serialise as JSON (valid YAML), escaping what YAML would fold or refuse."""
    text = json.dumps(tree, ensure_ascii=False, indent=1)
    return _YAML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), text) + "\n"
