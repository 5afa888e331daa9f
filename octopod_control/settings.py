"""Configuration: dotenv files under env/, overridden by the process environment.

Precedence, later wins: the schema's defaults (config.py) < ``env/defaults.env`` (generated
from the schema) < ``env/$OCTOPOD_ENV.env`` < ``.env`` < the process environment (Octopod
passes its ConfigMap as environment). What each variable is, its type and its default are
written once, in config.py.
"""
from __future__ import annotations

import os
import re
import string
from pathlib import Path
from typing import Mapping

from .config import CHOICE, COUNT, FLAG, SCHEMA, SECONDS, TEMPLATE, VARIABLES, WORDS
from .errors import ConfigError
from .frozen import child_environ

PROJECT_ROOT = Path(__file__).resolve().parent.parent
ENV_DIR = PROJECT_ROOT / "env"

# Names the schema does not know (a variable of the user's, a plugin's) are judged by their
# name: better masked in `invoke config` than shown.
_SECRET_NAME = re.compile(r"PASSWORD|TOKEN|SECRET|PRIVATE|CONTENT|CONFIG_JSON|CREDENTIAL")
TRUE_WORDS = frozenset({"1", "true", "yes", "on"})
FALSE_WORDS = frozenset({"0", "false", "no", "off", ""})
TEMPLATE_FIELDS = ("name", "namespace", "project_name", "base_domain", "tag")


def is_secret(name: str) -> bool:
    """A secret by the schema; for a name it does not declare, by the look of the name."""
    var = SCHEMA.get(name)
    return var.secret if var is not None else bool(_SECRET_NAME.search(name))


def is_withheld(name: str) -> bool:
    """Whether a variable stays out of every child's environment: the schema's withheld ones
    (read by this tool alone: init writes the key, kubeconfig and docker config into files,
    the passwords go over HTTP or on helm's stdin) and any other *_PASSWORD.

    Not every secret-looking name: cloud credentials such as AWS_SECRET_ACCESS_KEY are what a
    kubeconfig exec plugin needs to run, and helm, kubectl, exec plugins and credential
    helpers run third-party code whose environment is readable in /proc.
    """
    var = SCHEMA.get(name)
    return (var is not None and var.withheld) or name.endswith("_PASSWORD")


def _read_env_file(path: Path) -> dict[str, str]:
    if not path.is_file():
        return {}
    plain = _parse_plain(path.read_text(encoding="utf-8"))
    if plain is not None:
        return plain
    from dotenv import dotenv_values  # quotes, escapes, ${VAR}, export: python-dotenv's job

    return {k: v or "" for k, v in dotenv_values(path).items()}


_PLAIN_LINE = re.compile(r"[A-Za-z_][A-Za-z0-9_.]*=[^'\"\\$#]*")


def _parse_plain(text: str) -> dict[str, str] | None:
    """Files of only comments and bare KEY=value lines (env/defaults.env), read without
    importing python-dotenv (~8 ms of every script's start); None for anything else."""
    values = {}
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not _PLAIN_LINE.fullmatch(line):
            return None
        key, _, value = line.partition("=")
        values[key] = value.strip()
    return values


def load_layers(environ: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT) -> dict[str, str]:
    """Merge the env files and the environment, later layers winning."""
    environ = os.environ if environ is None else environ
    merged = _read_env_file(root / "env" / "defaults.env")
    profile = environ.get("OCTOPOD_ENV", "")
    if profile:
        if not re.fullmatch(r"[A-Za-z0-9_.-]+", profile) or profile.startswith("."):
            raise ConfigError(f"OCTOPOD_ENV={profile!r}: a profile name is letters, digits, '_', '-', '.'")
        path = root / "env" / f"{profile}.env"
        if not path.is_file():
            raise ConfigError(f"OCTOPOD_ENV={profile}: no file env/{profile}.env")
        merged.update(_read_env_file(path))
    merged.update(_read_env_file(root / ".env"))
    merged.update(environ)
    return merged


class Settings:
    """Typed, validated access to the effective configuration, by the schema (config.py).

    Every accessor takes a variable the schema declares (another name is a bug: KeyError)
    and applies its default; a malformed value is a ConfigError naming the variable,
    raised when the value is read (a bad REMOTE_* value must not stop a check).
    """

    def __init__(self, values: Mapping[str, str]) -> None:
        self._values = dict(values)

    @classmethod
    def load(cls, environ: Mapping[str, str] | None = None, root: Path = PROJECT_ROOT) -> "Settings":
        return cls(load_layers(environ, root))

    # -- typed accessors
    def text(self, name: str) -> str:
        """The value, stripped; the default when unset (or, for `blank="default"`, empty)."""
        var = SCHEMA[name]
        value = self._values.get(name)
        if value is None:
            return var.default
        value = value.strip()
        return var.default if not value and var.blank == "default" else value

    def raw(self, name: str) -> str:
        """A value as given, not stripped (a password may begin or end with a space)."""
        return self._values.get(name, SCHEMA[name].default)

    def flag(self, name: str) -> bool:
        raw = self.text(_typed(name, FLAG)).lower()
        if raw in TRUE_WORDS:
            return True
        if raw in FALSE_WORDS:
            return False
        raise ConfigError(f"{name}={raw!r}: expected true or false")

    def seconds(self, name: str) -> float:
        raw = self.text(_typed(name, SECONDS))
        try:
            value = float(raw)
        except ValueError:
            raise ConfigError(f"{name}={raw!r}: expected a number of seconds") from None
        if not 0 < value <= 86400:
            raise ConfigError(f"{name}={raw!r}: expected between 0 and 86400 seconds")
        return value

    def count(self, name: str) -> int:
        """A whole number from 0 to 1000 (restarts, lines)."""
        raw = self.text(_typed(name, COUNT))
        if not (raw.isascii() and raw.isdigit()) or int(raw) > 1000:
            raise ConfigError(f"{name}={raw!r}: expected a whole number from 0 to 1000")
        return int(raw)

    def words(self, name: str) -> list[str]:
        return self.text(_typed(name, WORDS)).split()

    def choice(self, name: str) -> str:
        """One of the variable's words (case-insensitive), as the value it stands for."""
        var = SCHEMA[_typed(name, CHOICE)]
        raw = self.text(name).lower()
        if raw not in var.choices:
            shown = list(dict.fromkeys(var.choices.values()))  # as declared
            allowed = ", ".join(shown[:-1]) + f" or {shown[-1]}" if len(shown) > 1 else shown[0]
            raise ConfigError(f"{name}={raw!r}: expected {allowed}")
        return var.choices[raw]

    def render(self, name: str, fields: Mapping[str, str]) -> str:
        """Fill a template variable's {placeholders}; unknown ones are a ConfigError."""
        return render_template(name, self.text(_typed(name, TEMPLATE)), fields)

    def environ(self) -> dict[str, str]:
        """The environment for child processes: the process environment plus file settings.

        Without the variables only this tool reads (is_withheld: the SSH key, the kubeconfig and
        docker config contents, every *_PASSWORD); in the /utils bundle, also without the
        bundle's own loader and PyInstaller variables. Read those through text() or raw().
        """
        return {k: v for k, v in child_environ(self._values).items() if not is_withheld(k)}

    def secret_values(self) -> list[str]:
        """Every non-empty value of a secret setting, withheld ones included (for redaction)."""
        return [v for k, v in self._values.items() if v and is_secret(k)]

    # -- the values nearly every operation reads
    @property
    def helm_bin(self) -> str:
        return self.text("HELM_BIN")

    @property
    def kubectl_bin(self) -> str:
        return self.text("KUBECTL_BIN")

    @property
    def helm_timeout(self) -> float:
        return self.seconds("HELM_TIMEOUT")

    @property
    def kube_timeout(self) -> float:
        return self.seconds("KUBE_TIMEOUT")

    @property
    def helm_driver(self) -> str:
        return self.choice("HELM_DRIVER")

    def describe(self) -> list[tuple[str, str]]:
        """Every schema variable and its effective value, then other variables of ours; secrets masked."""
        described = [(v.name, self.raw(v.name)) for v in VARIABLES if not v.environment_only]
        described += [(n, self._values.get(n, "")) for n in sorted(self._values)
                      if n not in SCHEMA and _is_ours(n)]
        return [(n, mask(n, value)) for n, value in described]


def _typed(name: str, kind: str) -> str:
    """name, after checking the schema declares it of this type (a mismatch is a bug)."""
    if SCHEMA[name].type != kind:
        raise TypeError(f"{name} is a {SCHEMA[name].type} variable, not {kind}")
    return name


def _is_ours(name: str) -> bool:
    return name.startswith(("OCTOPOD_", "REGISTRY_", "SSH_", "REMOTE_", "CLEANUP_", "ARCHIVE_", "HELM_"))


def mask(name: str, value: str) -> str:
    return "****" if value and is_secret(name) else value


def render_template(name: str, template: str, fields: Mapping[str, str]) -> str:
    try:
        parsed = list(string.Formatter().parse(template))
    except ValueError as exc:
        raise ConfigError(f"{name}={template!r}: {exc}") from None
    for _, field, spec, conversion in parsed:
        if field is None:
            continue
        if field not in TEMPLATE_FIELDS or spec or conversion:
            allowed = ", ".join("{%s}" % f for f in TEMPLATE_FIELDS)
            raise ConfigError(f"{name}={template!r}: unknown placeholder {{{field}}}; use {allowed}")
    return template.format_map({f: fields.get(f, "") for f in TEMPLATE_FIELDS})
