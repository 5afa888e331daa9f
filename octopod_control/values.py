"""The helm values a deployment gets, and their serialisation.

Values never pass through ``helm --set``: they are written as a values document
(JSON, which is YAML) and handed to helm on stdin. Deployment overrides are
typed the way ``--set`` types a value; app-env overrides stay strings.
"""
from __future__ import annotations

import json
import re
from typing import Any

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


def build_values(deployment: Deployment, keys: dict[str, str]) -> dict[str, Any]:
    """The values tree: project, domain and tag first, then app env, then deployment overrides.

    ``keys`` maps TAG_KEY, PROJECT_NAME_KEY, BASE_DOMAIN_KEY, APP_ENV_PREFIX and
    DEPLOYMENT_OVERRIDE_PREFIX to their configured dotted paths.
    """
    try:
        paths = {k: _prefix(k, v) for k, v in keys.items()}
    except UsageError as exc:  # a bad path in a setting is a configuration problem
        raise ConfigError(str(exc)) from None
    for required in ("TAG_KEY", "PROJECT_NAME_KEY", "BASE_DOMAIN_KEY", "APP_ENV_PREFIX"):
        if not paths.get(required):
            raise ConfigError(f"{required}: must be a dotted values path")
    tree: dict[str, Any] = {}
    if deployment.project_name:
        set_path(tree, paths["PROJECT_NAME_KEY"], deployment.project_name)
    if deployment.base_domain:
        set_path(tree, paths["BASE_DOMAIN_KEY"], deployment.base_domain)
    if deployment.tag:
        set_path(tree, paths["TAG_KEY"], deployment.tag)
    for key, value in deployment.app_env.items():
        set_path(tree, paths["APP_ENV_PREFIX"] + (key,), value)
    prefix = paths.get("DEPLOYMENT_OVERRIDE_PREFIX", ())
    for path, value in deployment.deployment.items():
        set_path(tree, prefix + path, helm_typed(value))
    return tree


def dump_values(tree: dict[str, Any]) -> str:
    """Serialise as JSON (valid YAML), escaping what YAML would fold or refuse."""
    text = json.dumps(tree, ensure_ascii=False, indent=1)
    return _YAML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), text) + "\n"
