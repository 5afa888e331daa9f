"""The Invoke program every script runs, the one way it boots, and the task decorator.

Invoke's own CLI reports parse errors with exit 1 and runs several tasks named
in one argv; Octopod's scripts must answer bad input with exit 64 and take
exactly one operation's flags, so they go through `OctopodProgram`.

One boot for both homes: `main()` runs `OctopodProgram` over `octopod_control.tasks.ns`,
given explicitly (Invoke's "bundled namespace": no tasks file is looked for, no
`--search-root`). scripts/* reach it as `python -P -m octopod_control <task>` (__main__.py),
the bundle's octopod-control through `frozen.main`, which cleans the environment first.
"""
from __future__ import annotations

import functools
import os
import re
import sys
import traceback
from typing import Any, Callable

from invoke import Exit, ParseError, Program, task as invoke_task

from .errors import EXIT_USAGE, OctopodError


def _usage(exc: ParseError) -> Exit:
    """Invoke's parse errors, reworded as one line naming the flag, with exit 64."""
    text = str(exc)
    match = re.search(r"Flag <Argument: ([^>]+?)> needed value", text)
    if match:
        text = f"--{match.group(1).split(' ')[0].replace('_', '-')}: needs a value"
    match = re.match(r"No idea what '(.*)' is!", text, re.S)
    if match:
        text = f"unexpected argument {match.group(1)[:80]!r}"
    return Exit(f"error: {text}", code=EXIT_USAGE)


def octopod_task(*args: Any, **kwargs: Any) -> Callable:
    """`invoke.task` whose foreseeable errors end as one stderr line and their exit code.

    Octopod's flags are long only: no automatic short flags.
    """
    kwargs.setdefault("auto_shortflags", False)

    def decorate(body: Callable) -> Any:
        @functools.wraps(body)
        def reported(*a: Any, **kw: Any) -> Any:
            try:
                return body(*a, **kw)
            except OctopodError as exc:
                raise Exit(f"error: {exc}", code=exc.exit_code) from None
            except Exit:  # a task's deliberate exit code (check's 2 and 3), not a bug
                raise
            except KeyboardInterrupt:
                raise Exit("error: interrupted", code=130) from None
            except Exception as exc:  # a bug: one line, the traceback only on request
                if os.environ.get("OCTOPOD_DEBUG"):
                    traceback.print_exc()
                raise Exit(f"error: internal error: {type(exc).__name__}: {exc} "
                           "(set OCTOPOD_DEBUG=1 for the traceback)", code=70) from None

        return invoke_task(**kwargs)(reported)

    if len(args) == 1 and callable(args[0]) and not kwargs.keys() - {"auto_shortflags"}:
        return decorate(args[0])  # used bare: @octopod_task
    return decorate


class OctopodProgram(Program):
    """Invoke's Program, strict the way a control script must be."""

    def parse_core(self, argv: list[str] | None) -> None:
        try:
            super().parse_core(argv)
        except ParseError as exc:
            raise _usage(exc) from None

    def parse_tasks(self) -> None:
        self._refuse_repeated_flags()
        try:
            super().parse_tasks()
        except ParseError as exc:
            raise _usage(exc) from None
        stray = [a.name for a in self.core_via_tasks.args.values()
                 if a.got_value and a.name != "help"]
        if stray:
            raise Exit(f"error: unknown flag --{stray[0]}", code=EXIT_USAGE)
        if len(self.tasks) > 1:
            raise Exit(f"error: unexpected argument {self.tasks[1].name!r}", code=EXIT_USAGE)

    def _refuse_repeated_flags(self) -> None:
        """A single-valued flag given twice is ambiguous: refuse it rather than guess."""
        tokens = self.core.unparsed
        if not tokens or tokens[0] not in self.collection.task_names:
            return
        arguments = self.collection[tokens[0]].get_arguments()
        single = {f"--{a.name.replace('_', '-')}" for a in arguments if a.kind is not list}
        seen: set[str] = set()
        for token in tokens[1:]:
            flag = token.split("=", 1)[0]
            if flag in single and flag in seen:
                raise Exit(f"error: {flag}: given more than once", code=EXIT_USAGE)
            seen.add(flag)

    def parse_cleanup(self) -> None:
        try:
            super().parse_cleanup()
        except ParseError as exc:
            raise _usage(exc) from None


def main() -> None:
    from .tasks import ns  # here: tasks.py imports octopod_task from this module

    OctopodProgram(name="Octopod control scripts", binary="octopod-control", namespace=ns).run(sys.argv)
