"""Child processes, bounded: argv lists only, a timeout on each, output teed to stderr.

Shared plumbing for helm, kubectl and helper commands. A missing binary or a
timeout becomes one clear line naming the command; values listed in ``secrets``
are replaced by ``***`` in everything we print.
"""
from __future__ import annotations

import base64
import codecs
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from typing import Iterable, Mapping, Sequence

from .errors import ExternalError

# Redacting one-character values would shred the log; such values are no secret.
_MIN_REDACTED = 3
_READ_SIZE = 65536
_HEAD = 32  # characters of each form the candidate search compiles
# Go's short escapes: encoding/json's (since Go 1.22 also \b and \f), and strconv.Quote's.
_JSON_SHORT = {'"': '\\"', "\\": "\\\\", "\b": "\\b", "\f": "\\f", "\n": "\\n", "\r": "\\r",
               "\t": "\\t"}
_QUOTE_SHORT = {**_JSON_SHORT, "\a": "\\a", "\v": "\\v"}


@dataclass
class Result:
    argv: list[str]
    returncode: int
    output: str  # stdout (and stderr when merged), redacted
    errors: str = ""  # stderr when not merged, redacted
    stopped: bool = False  # ended by the caller's stop event (its process group killed)

    @property
    def ok(self) -> bool:
        return self.returncode == 0


class Redactor:
    """Replaces every form of each secret by ``***``.

    A value is looked for as given, as helm, kubectl and the API quote it (Python/Go
    JSON, Go's ``%q`` and ``%+q``, and those once more inside a quoted document), and
    base64-encoded on its own (a Secret's ``data``; standard and URL-safe, with and
    without padding). Values under three characters are no secret. Matching runs
    over the whole text, so a value holding newlines is caught too; where forms
    overlap, the leftmost wins, and at one position the longest.
    """

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms = {form for s in secrets if len(s) >= _MIN_REDACTED for form in secret_forms(s)}
        self.secrets = sorted(forms, key=len, reverse=True)
        self._longest = len(self.secrets[0]) if forms else 0
        self._by_first: dict[str, list[str]] = {}  # longest first
        heads: dict[str, int] = {}  # each form's first _HEAD characters: the longest form so headed
        for form in self.secrets:
            self._by_first.setdefault(form[0], []).append(form)
            heads.setdefault(form[:_HEAD], len(form))
        self._tails: dict[str, list[tuple[str, int]]] = {}
        for head, longest in heads.items():
            self._tails.setdefault(head[0], []).append((head, longest))
        # Candidates are found by their first characters and then checked whole: compiling a
        # 100 KB value as a regular expression would take half a second.
        self._heads = re.compile("|".join(map(re.escape, heads))) if heads else None

    def __call__(self, text: str) -> str:
        done, rest = self._redact(text, final=True)
        text = done + rest
        return self._unclip(text) if CLIPPED in text and self._heads is not None else text

    def _unclip(self, text: str) -> str:
        """A message cut short (ending in CLIPPED) may end in the first part of a secret: what
        could begin one, right before the mark, goes too (a few harmless characters at worst)."""
        parts = text.split(CLIPPED)
        kept = []
        for part in parts[:-1]:
            done, tail = self.split(part)
            kept.append(done + ("***" if tail else ""))
        return CLIPPED.join(kept + parts[-1:])

    def stream(self) -> "StreamRedactor":
        return StreamRedactor(self)

    def split(self, text: str) -> tuple[str, str]:
        """(the redacted part of text that is final, the tail that may still begin a secret).

        The tail is held back only while it may be the start of some form (as far as its first
        _HEAD characters tell), so it is never longer than the longest form and usually empty:
        what cannot be a secret goes out at once.
        """
        return self._redact(text, final=False)

    def _redact(self, text: str, final: bool) -> tuple[str, str]:
        if self._heads is None:
            return text, ""
        out: list[str] = []
        cursor = 0
        hold = len(text) if final else self._open_tail(text, 0)
        while True:
            found = self._next_match(text, cursor)
            if found is None or found[0] >= hold:
                break
            out += (text[cursor:found[0]], "***")
            cursor = found[1]
            if cursor > hold:
                hold = self._open_tail(text, cursor)
        out.append(text[cursor:hold])
        return "".join(out), text[hold:]

    def _next_match(self, text: str, position: int) -> tuple[int, int] | None:
        """(start, end) of the leftmost form at or after position, the longest one there."""
        while True:
            head = self._heads.search(text, position)
            if head is None:
                return None
            start = head.start()
            for form in self._by_first[text[start]]:
                if text.startswith(form, start):
                    return start, start + len(form)
            position = start + 1

    def _open_tail(self, text: str, start: int) -> int:
        """The first position >= start from which text may still grow into a form; len(text) if none.

        Judged on at most _HEAD characters (a longer tail that agrees that far is held too: holding
        more than needed is safe), so the scan costs the same for a 100 KB value as for a short one.
        """
        for i in range(max(start, len(text) - self._longest + 1), len(text)):
            left = len(text) - i
            for head, longest in self._tails.get(text[i], ()):
                if longest > left and text.startswith(head[:left], i):
                    return i
        return len(text)


class StreamRedactor:
    """Redacts a byte stream as it arrives (helm's output, teed live to our stderr).

    Bytes are decoded incrementally (a character split across reads stays whole) and
    only a tail that may begin a secret is held back until more comes or the stream ends.
    """

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._decoder = codecs.getincrementaldecoder("utf-8")("replace")
        self._pending = ""

    def feed(self, data: bytes) -> str:
        done, self._pending = self._redactor.split(self._pending + self._decoder.decode(data))
        return done

    def finish(self) -> str:
        rest, self._pending = self._pending + self._decoder.decode(b"", final=True), ""
        return self._redactor(rest)


class TimedOut(ExternalError):
    """A child process stopped by its timeout (its process group killed)."""


CLIPPED = "…"  # the mark a message cut short ends with (kinds/, rollout.py)


def secret_forms(secret: str) -> set[str]:
    """The ways a value shows up in tools' output: raw, quoted (once and twice), base64."""
    quoted = {json.dumps(secret)[1:-1], go_json(secret), go_json(secret, escape_html=False),
              go_quote(secret), go_quote(secret, ascii_only=True)}
    # Quoted inside a quoted document (an API error citing a JSON body): once more.
    twice = {again for form in quoted - {secret} for again in (go_json(form), go_quote(form))}
    raw = secret.encode("utf-8")
    encoded = (base64.b64encode(raw).decode("ascii"), base64.urlsafe_b64encode(raw).decode("ascii"))
    # As a summary shows it: whitespace runs (newlines too) collapsed to one space.
    collapsed = {" ".join(secret.split())} - {""}
    return {secret} | quoted | twice | collapsed | {e for b64 in encoded for e in (b64, b64.rstrip("="))}


def go_json(text: str, escape_html: bool = True) -> str:
    """A string as Go's encoding/json writes it (json.Marshal), without the quotes.

    Control characters as \\b \\f \\n \\r \\t or \\u00XX, U+2028/U+2029 always as \\u2028/9,
    and with escape_html (Marshal's default; sprig's toJson, the API server) <, > and & as
    \\u003c, \\u003e, \\u0026. Everything else, non-ASCII included, stays as it is.
    """
    out = []
    for char in text:
        code = ord(char)
        if char in _JSON_SHORT:
            out.append(_JSON_SHORT[char])
        elif code < 0x20 or code in (0x2028, 0x2029) or (escape_html and char in "<>&"):
            out.append("\\u%04x" % code)
        else:
            out.append(char)
    return "".join(out)


def go_quote(text: str, ascii_only: bool = False) -> str:
    """A string as Go's strconv.Quote (``%q``) writes it, or QuoteToASCII (``%+q``), without the quotes.

    `"` and `\\` backslashed; \\a \\b \\f \\n \\r \\t \\v; other bytes below 0x20 and DEL as \\xXX;
    printable runes as they are (ascii_only: printable ASCII only), others as \\uXXXX or,
    beyond the BMP, \\UXXXXXXXX. Go's unicode.IsPrint and str.isprintable agree: letters,
    marks, numbers, punctuation, symbols and the ASCII space.
    """
    out = []
    for char in text:
        code = ord(char)
        if char in _QUOTE_SHORT:
            out.append(_QUOTE_SHORT[char])
        elif char.isprintable() and (code < 0x7f or not ascii_only):
            out.append(char)
        elif code < 0x20 or code == 0x7f:
            out.append("\\x%02x" % code)
        elif code < 0x10000:
            out.append("\\u%04x" % code)
        else:
            out.append("\\U%08x" % code)
    return "".join(out)


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
    stop: threading.Event | None = None,
) -> Result:
    """Run argv, bounded by timeout; with echo, stream its output to our stderr as it comes.

    Returns the (redacted) output whatever the exit code; raises ExternalError only
    when the command cannot start or runs out of time. Once `stop` is set (by another
    thread), the process group is ended as on a timeout (SIGTERM, SIGKILL 5 s later) and
    the Result says `stopped`.
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
        # Redacted over the whole stream, not line by line (a value may hold newlines);
        # what cannot begin a secret is passed on as soon as it is read.
        redacting = redact.stream()
        for data in iter(lambda: stream.read1(_READ_SIZE), b""):
            _emit(redacting.feed(data), sink, to_stderr)
        _emit(redacting.finish(), sink, to_stderr)
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
        stopped = _wait(proc, timeout, stop)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise TimedOut(f"{what}: timed out after {timeout:g}s") from None
    for reader in readers:
        reader.join(timeout=5)
    return Result(argv, proc.returncode, "".join(chunks), "".join(errors), stopped)


def _wait(proc: subprocess.Popen, timeout: float, stop: threading.Event | None) -> bool:
    """Wait for the process; True when `stop` was set first and its group has been ended."""
    if stop is None:
        proc.wait(timeout=timeout)
        return False
    end = time.monotonic() + timeout
    while True:
        left = end - time.monotonic()
        if left <= 0:
            raise subprocess.TimeoutExpired(proc.args, timeout)
        if stop.wait(min(left, 0.1)):
            if proc.poll() is not None:
                return False  # it had ended on its own: its exit code stands
            _kill_group(proc)
            return True
        if proc.poll() is not None:
            return False


def _emit(text: str, sink: list[str], to_stderr: bool) -> None:
    if not text:
        return
    sink.append(text)
    if to_stderr:
        sys.stderr.write(text)
        sys.stderr.flush()


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
