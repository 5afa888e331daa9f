"""Commands on plain hosts over SSH (fabric): what `cleanup` frees outside Kubernetes.

REMOTE_CLEANUP_HOSTS lists `[user@]host[:port]` entries; REMOTE_CLEANUP_COMMANDS holds
command templates, one a line, whose placeholders are filled with shell-quoted
values. Quoting is ours, so a placeholder inside quotes (or right after `\\` or `$`)
is a configuration error (78); a value a template uses must be a plain non-empty
word (letters, digits, `.`, `-`, `_`, starting with a letter or digit), else the
flag is refused (64): `rm -rf -- /srv/{project_name}` must never run with an empty
project name, nor with `..`. All of it is checked before any host is contacted.
Every host is tried and every command run even after a failure, because
Octopod never retries a cleanup: the caller gets one message per failure.
Host keys are checked strictly by default (REMOTE_STRICT_HOST_KEYS=true): an
unknown or changed key is refused, never added. Each command's output (stdout and
stderr, as they arrive) is read from the SSH channel into a buffer that keeps only
the last 64 KiB, then goes to our stderr (the log), line by line, with configured
secret values redacted: a command printing gigabytes costs neither memory nor time.
Imports fabric at once: import this module only when there are hosts to reach.
"""
from __future__ import annotations

import math
import os
import re
import shlex
import socket
import string
import sys
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Mapping

import paramiko
from fabric import Config, Connection

from .deadline import Deadline
from .errors import ConfigError, UsageError
from .log import info as log
from .log import warn
from .process import Redactor
from .settings import Settings

COMMAND_FIELDS = ("name", "namespace", "project_name", "base_domain")
# Where each field comes from, for messages: the flag and its fallback variable.
FIELD_SOURCES = {"name": ("--name", ""), "namespace": ("--namespace", "NAMESPACE"),
                 "project_name": ("--project-name", "PROJECT_NAME"),
                 "base_domain": ("--base-domain", "BASE_DOMAIN")}
# A value in a remote command: a plain word. Not `-x` (an option), not `.` or `..` (a path).
_SAFE_VALUE = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
TAIL_BYTES = 64 * 1024  # remote output kept per command: the last 64 KiB
_READ_BYTES = 32 * 1024
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


def _lines(raw: str) -> list[str]:
    """The command templates: non-blank lines not starting with #."""
    return [line.strip() for line in raw.splitlines() if line.strip() and not line.strip().startswith("#")]


def _shown(line: str) -> str:
    return f"`{line[:200]}`"


def _shell_state(text: str, state: tuple[str, bool, bool]) -> tuple[str, bool, bool]:
    """The shell's quoting after `text`, from `state`: the open quote ('', "'" or '"'), and
    whether the last character was an unescaped backslash, or an unescaped `$` outside '...'."""
    quote, escaped, dollar = state
    for char in text:
        dollar = False
        if escaped:
            escaped = False
        elif quote == "'":
            quote = "" if char == "'" else quote
        elif char == "\\":
            escaped = True
        elif char == "$":
            dollar = True
        elif quote == '"':
            quote = "" if char == '"' else quote
        elif char in "'\"":
            quote = char
    return quote, escaped, dollar


def template_fields(line: str) -> list[str]:
    """The placeholders of one template, checked: known, bare, outside quotes (ConfigError).

    A shell-quoted value inside quotes would end them: `'{name}'` with `it's` breaks the
    command, and after `\\` or `$` a value is escaped or expanded. Quoting is ours.
    """
    try:
        parsed = list(string.Formatter().parse(line))
    except ValueError as exc:
        raise ConfigError(f"REMOTE_CLEANUP_COMMANDS: {_shown(line)}: {exc}") from None
    used: list[str] = []
    state = ("", False, False)
    for literal, field, spec, conversion in parsed:
        state = quote, escaped, dollar = _shell_state(literal, state)
        if field is None:
            continue
        if field not in COMMAND_FIELDS or spec or conversion:
            allowed = ", ".join("{%s}" % f for f in COMMAND_FIELDS)
            raise ConfigError(f"REMOTE_CLEANUP_COMMANDS: {_shown(line)}: unknown placeholder "
                              f"{{{field}}}; use {allowed} (and {{{{ }}}} for literal braces)")
        glued = "inside quotes" if quote else "right after `\\`" if escaped else \
            "right after `$`" if dollar else ""
        if glued:
            raise ConfigError(f"REMOTE_CLEANUP_COMMANDS: {_shown(line)}: {{{field}}} stands {glued}; "
                              "write placeholders bare: their values are shell-quoted for you")
        used.append(field)
        state = (quote, False, False)  # the quoted value ends with no quote open
    return used


def check_value(field: str, value: str, line: str) -> None:
    """A value a remote command uses: non-empty, a plain word (UsageError naming the flag)."""
    flag, variable = FIELD_SOURCES[field]
    if not value:
        fallback = f" or set {variable}" if variable else ""
        raise UsageError(f"{flag}: empty, but REMOTE_CLEANUP_COMMANDS {_shown(line)} needs "
                         f"{{{field}}} (an empty value would change what it acts on); pass {flag}{fallback}")
    if not _SAFE_VALUE.fullmatch(value):
        shown = value if len(value) <= 80 and value.isprintable() else repr(value[:80])
        raise UsageError(f"{flag}: {shown} cannot go into a remote command (REMOTE_CLEANUP_COMMANDS "
                         f"uses {{{field}}}): letters, digits, '.', '-' and '_' only, starting with a "
                         "letter or digit")


def render_commands(raw: str, fields: Mapping[str, str]) -> list[str]:
    """One command a template line, every placeholder replaced by its shell-quoted value.

    Every template is checked first (ConfigError), then every value a template uses
    (UsageError), so nothing is rendered from a bad template or a bad value.
    """
    lines = _lines(raw)
    used = [template_fields(line) for line in lines]
    for line, names in zip(lines, used):
        for field in names:
            check_value(field, fields.get(field, ""), line)
    quoted = {f: shlex.quote(fields.get(f, "")) for f in COMMAND_FIELDS}
    return [line.format_map(quoted) for line in lines]


def options(settings: Settings) -> Options:
    home = Path(os.path.expanduser("~"))
    configured = settings.text("SSH_KEY_FILE")
    keys = [os.path.expanduser(configured)] if configured else \
        [str(home / ".ssh" / n) for n in KEY_NAMES if (home / ".ssh" / n).is_file()]
    known = home / ".ssh" / "known_hosts"
    strict = settings.choice("REMOTE_STRICT_HOST_KEYS")
    if strict == "auto":
        strict = "true" if settings.text("SSH_KNOWN_HOSTS") or known.is_file() else "false"
    ssh_config = home / ".ssh" / "config"
    return Options(
        key_files=tuple(keys),
        known_hosts=known if strict == "true" else None,
        ssh_config=ssh_config if ssh_config.is_file() else None,
        connect_timeout=settings.seconds("REMOTE_CONNECT_TIMEOUT"),
        command_timeout=settings.seconds("REMOTE_COMMAND_TIMEOUT"),
        secrets=tuple(settings.secret_values()),  # withheld ones too: a command may print any
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


class Tail:
    """The last `limit` bytes of a stream, and how many came before them; memory stays bounded."""

    def __init__(self, limit: int = TAIL_BYTES) -> None:
        self.limit, self.data, self.dropped = limit, bytearray(), 0
        self.line_start = True  # the kept bytes begin a line (the last dropped byte was a newline)

    def add(self, chunk: bytes) -> None:
        self.data += chunk
        if len(self.data) > 2 * self.limit:  # trimmed in batches: each byte is moved O(1) times
            self._trim()

    def _trim(self) -> None:
        excess = len(self.data) - self.limit
        if excess > 0:
            self.line_start = self.data[excess - 1] == ord("\n")
            del self.data[:excess]
            self.dropped += excess

    def text(self) -> tuple[str, int]:
        """The kept output as text, from its first whole line when bytes were dropped; and how many."""
        self._trim()
        data = bytes(self.data)
        if not self.line_start:  # a partial first line could hold the end of a secret: not shown
            cut = data.find(b"\n") + 1 or len(data)
            data, dropped = data[cut:], self.dropped + cut
        else:
            dropped = self.dropped
        return data.decode("utf-8", errors="replace"), dropped


def report_output(host: Host, tail: Tail, redact: Redactor) -> None:
    """A command's kept output to our stderr, redacted, one prefixed line a line."""
    text, dropped = tail.text()
    if dropped:
        log(f"{host}: {dropped} earlier bytes of output not shown (only the last "
            f"{tail.limit // 1024} KiB are kept)")
    if text:
        lines = "".join(f"[{host}] {line}\n" for line in redact(text).rstrip("\n").split("\n"))
        sys.stderr.write(lines)
        sys.stderr.flush()


def run_command(conn: Connection, command: str, limit: float,
                open_timeout: float) -> tuple[int | None, Tail]:
    """Run command on one session channel: (its exit status, or None on timeout; its output tail).

    Read straight from paramiko, not through fabric's `run`, whose Invoke runner keeps the
    whole output and re-joins it on every 1000-byte read (quadratic time, unbounded memory).
    stderr is combined into stdout as it arrives; no pty, no stdin. At `limit` seconds the
    channel is closed and the command counts as timed out.
    """
    end = time.monotonic() + limit
    tail = Tail()
    channel = conn.client.get_transport().open_session(timeout=open_timeout)
    try:
        channel.set_combine_stderr(True)
        channel.exec_command(command)
        channel.shutdown_write()
        while True:
            left = end - time.monotonic()
            if left <= 0:
                return None, tail
            channel.settimeout(min(left, 1.0))
            try:
                chunk = channel.recv(_READ_BYTES)
            except socket.timeout:
                continue
            if not chunk:
                break
            tail.add(chunk)
        while not channel.exit_status_ready():  # EOF came; the status follows at once
            if time.monotonic() >= end:
                return None, tail
            time.sleep(0.01)
        return channel.recv_exit_status(), tail
    finally:
        channel.close()


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
            try:
                code, tail = run_command(conn, command, limit, min(opts.connect_timeout, limit))
            except network as exc:
                failures.append(f"{host}: `{shown}` failed: {_reason(exc)}")
                continue
            report_output(host, tail, redact)
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
