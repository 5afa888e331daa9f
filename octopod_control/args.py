"""Octopod's argv, validated: every flag an operation takes and what it may hold.

Everything here is pure: it turns raw flag values into a `Deployment` or raises
`UsageError` naming the flag, before any external command runs.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, NamedTuple, Union

from .errors import UsageError
from .log import warn

NAME_PATTERN = re.compile(r"[a-z](?:[-a-z0-9]{0,51}[a-z0-9])?")  # DNS-1123 label, helm's 53
NAMESPACE_PATTERN = re.compile(r"[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?")
_DOMAIN = re.compile(r"[A-Za-z0-9](?:[A-Za-z0-9.-]{0,251}[A-Za-z0-9])?(?::[0-9]{1,5})?")
_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")
_ENV_KEY = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SEGMENT_FORBIDDEN = re.compile(r"[\s\[\]\x00-\x1f\x7f]")
_NAME_FORBIDDEN = re.compile(r"[\s\x00-\x1f\x7f]")
_INDEX = re.compile(r"[-+]?[0-9]+")  # Go's strconv.Atoi, as helm reads an index
# helm's strvals limits (pkg/strvals/parser.go, the same in helm 3.18 and 4.1): the largest list
# index, and how many '.' may follow a name in one key.
MAX_INDEX = 65536
MAX_NESTING = 30

# A values path: map keys (str) and list indexes (int).
Path = tuple[Union[str, int], ...]


class Override(NamedTuple):
    """One --deployment-override: its key as written, the path it names, its value as given."""

    key: str
    path: Path
    value: str


@dataclass(frozen=True)
class Deployment:
    """One staging as Octopod names it, after the configuration fallbacks."""

    name: str
    namespace: str
    project_name: str = ""
    base_domain: str = ""
    tag: str = ""
    app_env: dict[str, str] = field(default_factory=dict)
    # Every --deployment-override in the order given (helm applies --set in order too).
    deployment: tuple[Override, ...] = ()

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
        return list(self.app_env.values()) + [o.value for o in self.deployment]


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
    """A setting's dotted values path (TAG_KEY, PROTECTED_VALUES...): map keys only; '\\.'
    keeps a dot inside a segment, as with helm --set."""
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
                         "(a setting's path is map keys only, no list index)")
    return tuple(segments)


def _read_until(text: str, start: int, stops: str) -> tuple[str, int, str]:
    """helm's runesUntil: (what was read, the position after the stop, the stop or '' at the
    end); a backslash takes the next character as it is."""
    out, i = [], start
    while i < len(text):
        char = text[i]
        if char in stops:
            return "".join(out), i + 1, char
        if char == "\\":
            if i + 1 == len(text):
                break  # a trailing backslash escapes nothing: the key never ends
            out.append(text[i + 1])
            i += 2
            continue
        out.append(char)
        i += 1
    return "".join(out), len(text), ""


def parse_override(flag: str, item: str) -> Override:
    """One KEY=VALUE whose key is read as helm's --set reads one (strvals): '.' between map
    keys, `[N]` a list index (`a[0].b`, `a[0][1]`), a backslash keeping the next character
    (`a\\.b` is one key holding a dot). The key ends at the first '=' no backslash escapes;
    the value is the rest, byte for byte (never split at ',' nor read as a `{a,b}` list).

    Refused as helm refuses them: an unescaped ',' in the key, anything but '.', '[' or '='
    after ']', an index that is not an integer, negative, or above helm's 65536. Refused
    here although helm takes them: an empty name (`.a`, `a..b`, `[0]`: helm ignores some of
    those silently) and whitespace or control characters in a name.
    """
    item = _text(flag, item)
    path: list[str | int] = []
    key_end = _key_end(item)
    # The key as written (never the value: up to the '=' that ends it, or the first '=').
    shown = item[:key_end if key_end >= 0 else len(item.partition("=")[0])][:80]

    def refuse(why: str) -> UsageError:
        return UsageError(f"{flag}: key {shown!r} {why}")

    position = 0
    while True:  # a name, then what follows it
        name, position, stop = _read_until(item, position, "=[,.")
        if stop == "":
            escaped = " (a backslash escapes the '=' after it)" if "=" in item else ""
            raise UsageError(f"{flag}: {shown!r} has no '=' (expected KEY=VALUE){escaped}")
        if not path and not name and stop == "=":
            raise UsageError(f"{flag}: empty key (expected KEY=VALUE)")
        if not name:
            raise refuse("has an empty path segment")
        if _NAME_FORBIDDEN.search(name):
            raise refuse("holds whitespace or control characters")
        if stop == ",":
            raise refuse("holds ',', which ends a --set pair in helm (write '\\,' for a comma "
                         "in a key)")
        path.append(name)
        if stop == "=":
            break
        if stop == ".":
            continue
        while True:  # stop == "[": indexes, then '.' or '=' (or another '[')
            raw, position, stop = _read_until(item, position, "]")
            if stop == "":
                raise refuse("has a '[' without its ']'")
            if not _INDEX.fullmatch(raw):
                raise refuse(f"has [{raw}], which is not a list index")
            index = int(raw)
            if index < 0:
                raise refuse(f"has the negative index {index}")
            if index > MAX_INDEX:
                raise refuse(f"has the index {index}, above helm's limit of {MAX_INDEX}")
            path.append(index)
            rest, position, stop = _read_until(item, position, "[.=")
            if rest:
                raise refuse(f"has {rest[:20]!r} after ']' (expected '.', '[' or '=')")
            if stop == "":
                raise UsageError(f"{flag}: {shown!r} has no '=' (expected KEY=VALUE)")
            if stop != "[":
                break
        if stop == "=":
            break
    return Override(item[:position - 1], tuple(path), item[position:])


def _key_end(item: str) -> int:
    """Where the first '=' no backslash escapes is, or -1."""
    i = 0
    while i < len(item):
        if item[i] == "\\":
            i += 2
        elif item[i] == "=":
            return i
        else:
            i += 1
    return -1


def nesting(path: Path) -> int:
    """How many '.' follow a name in the key (helm counts these against MAX_NESTING; a '.'
    after ']' does not count)."""
    return sum(1 for a, b in zip(path, path[1:]) if isinstance(a, str) and isinstance(b, str))


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


def parse_deployment_overrides(raw: Iterable[str] | None) -> tuple[Override, ...]:
    """Every override in the order given (applied in that order, as helm applies --set); a
    path given twice warns, and the last value wins."""
    overrides = tuple(parse_override("--deployment-override", item) for item in raw or ())
    seen: set[Path] = set()
    for override in overrides:
        if override.path in seen:
            warn(f"--deployment-override {override.key} given more than once; the last value wins")
        seen.add(override.path)
    return overrides


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
