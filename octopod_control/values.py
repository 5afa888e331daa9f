"""The helm values a deployment gets, and their serialisation.

Values never pass through ``helm --set``: they are written as a values document
(JSON, which is YAML) and handed to helm on stdin. Deployment overrides are
applied as ``helm --set`` applies its keys (pkg/strvals: maps, list indexes padded
with nulls, the same refusals) and typed the way ``--set`` types a value; app-env
overrides stay strings. Overrides are checked first: none may touch the paths
Octopod or the platform own, and none may hold a template unless
ALLOW_TEMPLATE_VALUES=true.
"""
from __future__ import annotations

import json
import re
from typing import Any, Iterator

from .args import MAX_INDEX, MAX_NESTING, Deployment, Override, Path, nesting, split_path
from .errors import ConfigError, UsageError
from .log import warn

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
# Set empty, PROJECT_NAME_KEY, BASE_DOMAIN_KEY and APP_ENV_PREFIX switch their value off (a chart
# whose values.schema.json refuses other keys); TAG_KEY cannot be: check reads the running tag there.
TEMPLATE_MARK = "{{"
# helm reads a values document's numbers as 64-bit floats: integers beyond this would round.
_EXACT_FLOAT_INT = 2**53
# List items the overrides may make in all (helm's index limit is per key: a few hundred keys at
# index 65536 would take gigabytes, here and in helm).
MAX_LIST_ITEMS = 16 * (MAX_INDEX + 1)


def build_values(deployment: Deployment, keys: dict[str, str], protected: list[str] | None = None,
                 allow_templates: bool = False) -> dict[str, Any]:
    """The values tree: project, domain and tag first, then app env, then deployment overrides.

    ``keys`` maps TAG_KEY, PROJECT_NAME_KEY, BASE_DOMAIN_KEY, APP_ENV_PREFIX and
    DEPLOYMENT_OVERRIDE_PREFIX to their configured dotted paths (an empty one but TAG_KEY's
    means that value is not set); ``protected`` is PROTECTED_VALUES (dotted paths from the
    root). Overrides are checked first (check_overrides): a refused one is a UsageError and
    nothing is built.
    """
    paths = {k: _setting_path(k, v) for k, v in keys.items()}
    if not paths.get("TAG_KEY"):
        raise ConfigError("TAG_KEY: must be a dotted values path (it cannot be switched off: "
                          "check reads the running tag there)")
    active = [k for k in PLATFORM_KEYS if paths.get(k)]
    guarded = [(paths[k], k) for k in active]
    guarded += [(_setting_path("PROTECTED_VALUES", p), "PROTECTED_VALUES") for p in protected or ()]
    prefix = paths.get("DEPLOYMENT_OVERRIDE_PREFIX", ())
    if deployment.app_env and not paths.get("APP_ENV_PREFIX"):
        key = next(iter(deployment.app_env))
        raise UsageError(f"--app-env-override {key}: app-env overrides are switched off "
                         "(APP_ENV_PREFIX is empty), so nothing would receive them")
    check_overrides(deployment, prefix, guarded, allow_templates)
    tree: dict[str, Any] = {}
    if deployment.project_name and paths.get("PROJECT_NAME_KEY"):
        set_path(tree, paths["PROJECT_NAME_KEY"], deployment.project_name)
    if deployment.base_domain and paths.get("BASE_DOMAIN_KEY"):
        set_path(tree, paths["BASE_DOMAIN_KEY"], deployment.base_domain)
    if deployment.tag:
        set_path(tree, paths["TAG_KEY"], deployment.tag)
    for key, value in deployment.app_env.items():
        set_path(tree, paths["APP_ENV_PREFIX"] + (key,), value)
    budget = [MAX_LIST_ITEMS]
    for override in deployment.deployment:
        apply_override(tree, prefix, override, budget)
    return tree


def document_typed(override: Override) -> Any:
    """The override's value as `--set` types it, fit for a values document: an integer helm
    would round (it reads a values document's numbers as floats) stays the string of its digits."""
    value = helm_typed(override.value)
    if isinstance(value, int) and not isinstance(value, bool) and abs(value) > _EXACT_FLOAT_INT:
        warn(f"--deployment-override {override.key}: an integer beyond 2^53 is passed as a string "
             "(helm reads a values document's numbers as 64-bit floats, which would round it)")
        return override.value
    return value


def apply_override(tree: dict[str, Any], prefix: tuple[str, ...], override: Override,
                   budget: list[int] | None = None) -> None:
    """Set one override into the tree as `helm --set PREFIX.KEY=VALUE` sets it (pkg/strvals).

    A map on the way is entered, a missing one made; an index pads its list with nulls; an
    item entered with '.' that is not a map becomes one; a value met where the key needs a
    map or a list (set by an earlier override or by Octopod's own keys) is refused, as helm
    refuses that --set. `budget` ([items left]) bounds the list items all overrides make.
    """
    budget = budget if budget is not None else [MAX_LIST_ITEMS]

    def pad(items: list, index: int) -> None:
        missing = index + 1 - len(items)
        if missing > 0:
            budget[0] -= missing
            if budget[0] < 0:
                raise UsageError(f"--deployment-override {override.key}: the overrides would make "
                                 f"more than {MAX_LIST_ITEMS} list items in all")
            items.extend([None] * missing)

    path: Path = prefix + override.path
    if nesting(path) > MAX_NESTING:
        counted = " (DEPLOYMENT_OVERRIDE_PREFIX included)" if prefix else ""
        raise UsageError(f"--deployment-override {override.key}: nests deeper than helm's limit of "
                         f"{MAX_NESTING} '.'-separated levels{counted}")
    value = document_typed(override)
    node: Any = tree
    for position, step in enumerate(path):
        if position == len(path) - 1:
            if isinstance(step, int):
                pad(node, step)
            node[step] = value
            return
        wanted = list if isinstance(path[position + 1], int) else dict
        if isinstance(step, str):
            if step not in node:
                node[step] = wanted()
            elif not isinstance(node[step], wanted):
                raise _conflict(override, path[:position + 1], node[step], wanted, prefix)
        else:
            pad(node, step)
            if wanted is dict and not isinstance(node[step], dict):
                node[step] = {}  # helm makes a map of a list item entered with '.', whatever it held
            elif wanted is list and node[step] is None:
                node[step] = []
            elif not isinstance(node[step], wanted):
                raise _conflict(override, path[:position + 1], node[step], wanted, prefix)
        node = node[step]


def _conflict(override: Override, where: Path, found: Any, wanted: type,
              prefix: tuple[str, ...]) -> UsageError:
    held = ("null" if found is None else "a map" if isinstance(found, dict) else
            "a list" if isinstance(found, list) else "a value")
    return UsageError(f"--deployment-override {override.key}: {path_text(where[len(prefix):])} "
                      f"already holds {held} (from an earlier override or Octopod's own keys), not "
                      f"{'a list' if wanted is list else 'a map'}; helm refuses such a --set as well")


def _setting_path(setting: str, raw: str) -> tuple[str, ...]:
    try:
        return _prefix(setting, raw)
    except UsageError as exc:  # a bad path in a setting is a configuration problem
        raise ConfigError(str(exc)) from None


def check_overrides(deployment: Deployment, prefix: tuple[str, ...],
                    guarded: list[tuple[tuple[str, ...], str]], allow_templates: bool) -> None:
    """Refuse (UsageError, 64) what an override must not do; the value itself is never shown.

    A deployment override may not set a guarded path, lie under it, or replace it: be a
    prefix of it, or (given by index) replace the list that holds it, since a list given by
    index replaces the chart's whole list. Guarded are where create puts Octopod's own
    values, and what the platform owns (PROTECTED_VALUES, e.g. serviceAccount.name). A value
    holding ``{{`` is a template: charts that pass values through ``tpl`` would run it with
    the tool's credentials, so it needs ALLOW_TEMPLATE_VALUES=true.
    """
    if not allow_templates:
        # Keys too: a chart running `tpl (toYaml .Values.podAnnotations)` renders them as well.
        for flag, key, names, value in _overrides(deployment):
            # The key as parsed too: `a\{\{x\}\}` is the name `a{{x}}`.
            in_key = TEMPLATE_MARK in key or any(TEMPLATE_MARK in str(n) for n in names)
            where = "key" if in_key else "value" if TEMPLATE_MARK in value else ""
            if where:
                raise UsageError(f"{flag} {key}: the {where} holds '{{{{' (a template, which a chart "
                                 "passing values through tpl would run); set "
                                 "ALLOW_TEMPLATE_VALUES=true to allow it")
    for override in deployment.deployment:
        full = prefix + override.path
        for guard, setting in guarded:
            clash = _clash(full, guard)
            if clash:
                where = (f" (at {path_text(full)}, under DEPLOYMENT_OVERRIDE_PREFIX)"
                         if prefix else "")
                raise UsageError(f"--deployment-override {override.key}{where}: {clash} "
                                 f"{dotted(guard)}, which is protected ({setting})")


def _clash(path: Path, guard: tuple[str, ...]) -> str:
    if path == guard:
        return "sets"
    if path[:len(guard)] == guard:
        return "lies under"
    # What the override replaces wholesale: its path, or up to its first index the whole list.
    first_index = next((i for i, step in enumerate(path) if isinstance(step, int)), len(path))
    replaced = path[:first_index]
    if guard[:len(replaced)] == replaced:
        return "would replace"
    return ""


def _overrides(deployment: Deployment) -> Iterator[tuple[str, str, tuple, str]]:
    """(flag, key as written, its path as parsed, value) of every override."""
    yield from (("--app-env-override", k, (k,), v) for k, v in deployment.app_env.items())
    yield from (("--deployment-override", o.key, tuple(o.path), o.value) for o in deployment.deployment)


def dotted(path: tuple[str, ...]) -> str:
    """A path as it is written in a flag or setting: '.' between segments, '\\.' inside one."""
    return ".".join(segment.replace(".", "\\.") for segment in path)


_KEY_SPECIAL = re.compile(r"([\\.\[,=])")


def path_text(path: Path) -> str:
    """A path as a --set key: names '.'-separated (their '\\', '.', '[', ',', '=' escaped), `[N]`
    for an index."""
    out = ""
    for step in path:
        if isinstance(step, int):
            out += f"[{step}]"
        else:
            out += ("." if out else "") + _KEY_SPECIAL.sub(r"\\\1", step)
    return out


def dump_values(tree: dict[str, Any]) -> str:
    """Serialise as JSON (valid YAML), escaping what YAML would fold or refuse."""
    text = json.dumps(tree, ensure_ascii=False, indent=1)
    return _YAML_UNSAFE.sub(lambda m: "\\u%04x" % ord(m.group()), text) + "\n"
