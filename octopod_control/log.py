"""Logs go to stderr: stdout belongs to what the contract says an operation prints."""
from __future__ import annotations

import sys


def info(message: str) -> None:
    print(f"[octopod] {message}", file=sys.stderr, flush=True)


def warn(message: str) -> None:
    print(f"warning: {message}", file=sys.stderr, flush=True)
