"""Child processes, bounded: argv lists only, a timeout on each, output teed to stderr.

Shared plumbing for helm, kubectl and helper commands. A missing binary or a
timeout becomes one clear line naming the command; values listed in ``secrets``
are replaced by ``***`` in everything we print.
"""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .errors import ExternalError

# Redacting one-character values would shred the log; such values are no secret.
_MIN_REDACTED = 3


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str  # stdout (and stderr when merged), redacted
    errors: str = ""  # stderr when not merged, redacted

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Each value also as helm and the API quote it in errors (JSON / Go %q escapes);
        # longest first, so a secret containing another is replaced whole.
        forms = {form for s in secrets if len(s) >= _MIN_REDACTED for form in _quoted_forms(s)}
        self.secrets = sorted(forms, key=len, reverse=True)

    def __call__(self, text: str) -> str:
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return text


def _quoted_forms(secret: str) -> set[str]:
    return {secret, json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1]}


def last_line(text: str, limit: int = 300) -> str:
    """The last non-blank line of a command's output (where helm and kubectl say why), shortened."""
    lines = [line.strip() for line in text.strip().splitlines() if line.strip()]
    return lines[-1][:limit] if lines else "failed"


def describe(argv: Sequence[str]) -> str:
    """A short name for a command in messages: the program and its subcommand."""
    words = [os.path.basename(argv[0])] + [a for a in argv[1:3] if not a.startswith("-")]
    return " ".join(words[:3])


def run(
    argv: Sequence[str],
    *,
    timeout: float,
    env: Mapping[str, str] | None = None,
    stdin: str | None = None,
    secrets: Iterable[str] = (),
    echo: bool = False,
    merge_stderr: bool = True,
    what: str | None = None,
) -> Result:
    """Run argv, bounded by timeout; with echo, stream its output to our stderr as it comes.

    Returns the (redacted) output whatever the exit code; raises ExternalError only
    when the command cannot start or runs out of time.
    """
    argv = list(argv)
    what = what or describe(argv)
    redact = Redactor(secrets)
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.PIPE if stdin is not None else subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT if merge_stderr else subprocess.PIPE,
            env=dict(env) if env is not None else None,
            start_new_session=True,  # so a timeout kills the whole process group
        )
    except FileNotFoundError as exc:
        missing = exc.filename or argv[0]
        hint = " (is it installed and on PATH?)" if missing == argv[0] else ""
        raise ExternalError(f"{what}: cannot start: {missing} not found{hint}") from None
    except PermissionError:
        raise ExternalError(f"{what}: {argv[0]} is not executable") from None

    chunks: list[str] = []
    errors: list[str] = []

    def pump(stream, sink: list[str], to_stderr: bool) -> None:
        for raw in iter(stream.readline, b""):
            line = redact(raw.decode("utf-8", "replace"))
            sink.append(line)
            if to_stderr:
                sys.stderr.write(line)
                sys.stderr.flush()
        stream.close()

    readers = [threading.Thread(target=pump, args=(proc.stdout, chunks, echo), daemon=True)]
    if not merge_stderr:
        readers.append(threading.Thread(target=pump, args=(proc.stderr, errors, echo), daemon=True))
    for reader in readers:
        reader.start()
    if stdin is not None:
        # Fed from a thread: a child that stalls before reading must not block us past the timeout.
        readers.append(threading.Thread(target=_feed, args=(proc.stdin, stdin.encode("utf-8")),
                                        daemon=True))
        readers[-1].start()
    try:
        proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ExternalError(f"{what}: timed out after {timeout:g}s") from None
    for reader in readers:
        reader.join(timeout=5)
    return Result(argv, proc.returncode, "".join(chunks), "".join(errors))


def _feed(stream, data: bytes) -> None:
    try:
        stream.write(data)
        stream.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # the child exited or was killed early; its exit code tells why


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=5)
    except (ProcessLookupError, subprocess.TimeoutExpired):
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        proc.wait()
