"""Commands on plain hosts over SSH (fabric): what `cleanup` frees outside Kubernetes.

REMOTE_CLEANUP_HOSTS lists `[user@]host[:port]` entries; REMOTE_CLEANUP_COMMANDS holds
command templates, one a line, whose placeholders are filled with shell-quoted
values. Every host is tried and every command run even after a failure, because
Octopod never retries a cleanup: the caller gets one message per failure.
Host keys are checked strictly when known_hosts is configured or present: an
unknown or changed key is refused, never added. Remote output goes to our stderr
(the log), line by line, with configured secret values redacted.
Imports fabric at once: import this module only when there are hosts to reach.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import string
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import paramiko
from fabric import Config, Connection
from invoke.exceptions import CommandTimedOut

from .deadline import Deadline
from .errors import ConfigError
from .log import info as log
from .log import warn
from .process import Redactor
from .settings import Settings, is_secret

COMMAND_FIELDS = ("name", "namespace", "project_name", "base_domain")
KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
_HOST = re.compile(r"(?:(?P<user>[A-Za-z0-9._][A-Za-z0-9._-]*)@)?"
                   r"(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?)"
                   r"(?::(?P<port>[0-9]{1,5}))?")


@dataclass(frozen=True)
class Host:
    host: str
    user: str | None = None
    port: int | None = None

    def __str__(self) -> str:
        host = f"[{self.host}]" if ":" in self.host else self.host
        return (f"{self.user}@" if self.user else "") + host + (f":{self.port}" if self.port else "")


@dataclass(frozen=True)
class Options:
    key_files: tuple[str, ...]
    known_hosts: Path | None  # None: accept unknown host keys (with a warning)
    ssh_config: Path | None
    connect_timeout: float
    command_timeout: float
    secrets: tuple[str, ...]


def parse_hosts(raw: str) -> list[Host]:
    hosts = []
    for item in (i.strip() for i in raw.split(",")):
        if not item:
            continue
        match = _HOST.fullmatch(item)
        port = int(match.group("port")) if match and match.group("port") else None
        if not match or (port is not None and not 0 < port < 65536):
            raise ConfigError(f"REMOTE_CLEANUP_HOSTS: {item[:80]!r} is not [user@]host[:port]")
        hosts.append(Host(match.group("host").strip("[]"), match.group("user"), port))
    return hosts


def render_commands(raw: str, fields: Mapping[str, str]) -> list[str]:
    """One command a non-blank, non-# line; every placeholder replaced by its shell-quoted value."""
    quoted = {f: shlex.quote(fields.get(f, "")) for f in COMMAND_FIELDS}
    commands = []
    for line in raw.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        try:
            parsed = list(string.Formatter().parse(line))
        except ValueError as exc:
            raise ConfigError(f"REMOTE_CLEANUP_COMMANDS: {line[:80]!r}: {exc}") from None
        for _, field, spec, conversion in parsed:
            if field is not None and (field not in COMMAND_FIELDS or spec or conversion):
                allowed = ", ".join("{%s}" % f for f in COMMAND_FIELDS)
                raise ConfigError(f"REMOTE_CLEANUP_COMMANDS: {line[:80]!r}: unknown placeholder "
                                  f"{{{field}}}; use {allowed} (and {{{{ }}}} for literal braces)")
        commands.append(line.format_map(quoted))
    return commands


def options(settings: Settings) -> Options:
    home = Path(os.path.expanduser("~"))
    configured = settings.text("SSH_KEY_FILE")
    keys = [os.path.expanduser(configured)] if configured else \
        [str(home / ".ssh" / n) for n in KEY_NAMES if (home / ".ssh" / n).is_file()]
    known = home / ".ssh" / "known_hosts"
    strict = settings.text("REMOTE_STRICT_HOST_KEYS", "auto").lower() or "auto"
    if strict not in ("auto", "true", "false"):
        raise ConfigError(f"REMOTE_STRICT_HOST_KEYS={strict!r}: expected auto, true or false")
    if strict == "auto":
        strict = "true" if settings.text("SSH_KNOWN_HOSTS") or known.is_file() else "false"
    ssh_config = home / ".ssh" / "config"
    values = settings.environ()
    return Options(
        key_files=tuple(keys),
        known_hosts=known if strict == "true" else None,
        ssh_config=ssh_config if ssh_config.is_file() else None,
        connect_timeout=settings.seconds("REMOTE_CONNECT_TIMEOUT", 10),
        command_timeout=settings.seconds("REMOTE_COMMAND_TIMEOUT", 300),
        secrets=tuple(v for k, v in values.items() if v and is_secret(k)),
    )


def run_everywhere(hosts: list[Host], commands: list[str], opts: Options,
                   deadline: Deadline | None = None) -> list[str]:
    """Run every command on every host; one message per failure (empty: all succeeded)."""
    failures = []
    for host in hosts:
        for failure in run_on_host(host, commands, opts, deadline):
            warn(failure)  # in the log as it happens; the caller reports the list at the end
            failures.append(failure)
    return failures


class _LineLog:
    """A stream for fabric: remote output to our stderr, per line, prefixed and redacted."""

    def __init__(self, prefix: str, redact: Redactor) -> None:
        self.prefix, self.redact, self.pending = prefix, redact, ""

    def write(self, text: str) -> int:
        self.pending += text
        *lines, self.pending = self.pending.split("\n")
        for line in lines:
            sys.stderr.write(f"{self.prefix}{self.redact(line)}\n")
        return len(text)

    def flush(self) -> None:
        if self.pending:
            sys.stderr.write(f"{self.prefix}{self.redact(self.pending)}\n")
            self.pending = ""
        sys.stderr.flush()


def bounded(opts: Options, deadline: Deadline | None) -> Options:
    """opts with the connect and command timeouts cut to what is left of the deadline."""
    if deadline is None:
        return opts
    left = round(deadline.remaining(), 2)
    return replace(opts, connect_timeout=min(opts.connect_timeout, left),
                   command_timeout=min(opts.command_timeout, left))


def run_on_host(host: Host, commands: list[str], opts: Options,
                deadline: Deadline | None = None) -> list[str]:
    """Connect once, then run each command in turn; a failed one does not stop the next.

    With a deadline (cleanup's CLEANUP_TIMEOUT), the connect and each command get at most
    what is left of it, and what cannot start in time is reported as not run.
    """
    redact = Redactor(opts.secrets)
    network = (OSError, EOFError, paramiko.SSHException)
    if not bounded(opts, deadline).connect_timeout:
        return [f"{host}: {_spent(deadline)}; commands not run: " + "; ".join(redact(c) for c in commands)]
    try:
        conn = connect(host, bounded(opts, deadline))
    except network as exc:
        return [f"{host}: could not connect ({_reason(exc)}); commands not run: "
                + "; ".join(redact(c) for c in commands)]
    failures = []
    with conn:
        for command in commands:
            shown = redact(command)
            limit = bounded(opts, deadline).command_timeout
            if not limit:
                failures.append(f"{host}: `{shown}` not run: {_spent(deadline)}")
                continue
            log(f"{host}: $ {shown}")
            stream = _LineLog(f"[{host}] ", redact)
            started = time.monotonic()
            try:
                result = conn.run(command, warn=True, hide=False, pty=False, in_stream=False,
                                  out_stream=stream, err_stream=stream, timeout=limit)
                code = result.exited
                if code == -1 and time.monotonic() - started >= limit:
                    # Invoke's timer closed the channel before it raised: no exit status came.
                    code = None
            except CommandTimedOut:
                code = None
            except network as exc:
                failures.append(f"{host}: `{shown}` failed: {_reason(exc)}")
                continue
            finally:
                stream.flush()
            if code is None:
                failures.append(f"{host}: `{shown}` timed out after {limit:g}s")
            elif code != 0:
                failures.append(f"{host}: `{shown}` exited with {code}")
    return failures


def _spent(deadline: Deadline | None) -> str:
    return f"{deadline.setting} ({deadline.seconds:g}s) reached" if deadline else "no time left"


def connect(host: Host, opts: Options) -> Connection:
    """An open fabric Connection whose host key was checked as configured."""
    if opts.ssh_config:  # the file init appends SSH_CONFIG to; never the system-wide one
        config = Config(runtime_ssh_path=str(opts.ssh_config))
    else:
        config = Config(overrides={"load_ssh_configs": False})
    conn = Connection(
        host.host, user=host.user, port=host.port, config=config,
        connect_timeout=max(1, math.ceil(opts.connect_timeout)),  # fabric takes whole seconds
        connect_kwargs={
            "key_filename": list(opts.key_files), "allow_agent": False, "look_for_keys": False,
            "banner_timeout": opts.connect_timeout, "auth_timeout": opts.connect_timeout,
            "channel_timeout": opts.connect_timeout,
        },
    )
    # fabric installs AutoAddPolicy and loads no known_hosts: replace both.
    if opts.known_hosts is not None:
        if opts.known_hosts.is_file():
            conn.client.load_system_host_keys(str(opts.known_hosts))  # read-only: never saved
        conn.client.set_missing_host_key_policy(_Refuse(opts.known_hosts))
    else:
        conn.client.set_missing_host_key_policy(_AcceptWithWarning())
    conn.open()
    return conn


def _fingerprint(key: paramiko.PKey) -> str:
    return key.fingerprint  # e.g. SHA256:...; public, fine in a log


class _Refuse(paramiko.MissingHostKeyPolicy):
    """Strict checking: a host whose key is not in known_hosts is refused."""

    def __init__(self, known_hosts: Path) -> None:
        self.known_hosts = known_hosts

    def missing_host_key(self, client, hostname, key) -> None:
        where = self.known_hosts if self.known_hosts.is_file() else f"{self.known_hosts} (missing)"
        raise paramiko.SSHException(f"host key {_fingerprint(key)} of {hostname} is not in {where}; refused")


class _AcceptWithWarning(paramiko.MissingHostKeyPolicy):
    """No known_hosts configured: go on, but say so (and remember nothing)."""

    def missing_host_key(self, client, hostname, key) -> None:
        warn(f"{hostname}: accepting unverified host key {_fingerprint(key)} "
             "(no known_hosts configured; set SSH_KNOWN_HOSTS to check host keys)")


def _reason(exc: BaseException) -> str:
    if isinstance(exc, paramiko.BadHostKeyException):
        return (f"host key CHANGED: got {_fingerprint(exc.key)}, known_hosts has "
                f"{_fingerprint(exc.expected_key)}; refused")
    if isinstance(exc, paramiko.AuthenticationException):
        return f"authentication failed ({exc}); is the key from init (SSH_PRIVATE_KEY) authorized?"
    text = (exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)) or type(exc).__name__
    if isinstance(exc, TimeoutError) or "timed out" in text:
        return f"timed out: {text}"
    return text
