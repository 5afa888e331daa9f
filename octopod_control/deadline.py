"""A time budget shared by several external calls: each gets what is left of it."""
from __future__ import annotations

import time

from .errors import ExternalError


class Deadline:
    def __init__(self, seconds: float, setting: str) -> None:
        self.seconds = seconds
        self.setting = setting  # the variable that set the budget, named when it runs out
        self.end = time.monotonic() + seconds

    def remaining(self) -> float:
        return max(0.0, self.end - time.monotonic())

    def check(self, what: str) -> None:
        """Raise when the budget is spent, naming what could not start."""
        if not self.remaining():
            raise ExternalError(f"{self.setting} ({self.seconds:g}s) reached before {what}")
