"""Errors a user can cause or meet, each with the exit code Octopod sees.

Foreseeable failures are raised as these and reported as one line on stderr;
only a bug produces a traceback (and only with OCTOPOD_DEBUG=1).
"""
from __future__ import annotations

EXIT_FAILURE = 1
EXIT_PARTIAL = 2  # check: some pods available, not all
EXIT_TAG_MISMATCH = 3  # check: the running tag is not the requested one
EXIT_USAGE = 64  # EX_USAGE: bad arguments (never 2 or 3, which check reserves)
EXIT_CONFIG = 78  # EX_CONFIG: a bad configuration value


class OctopodError(Exception):
    """A failure with a message fit for the user and an exit code."""

    exit_code = EXIT_FAILURE

    def __init__(self, message: str, exit_code: int | None = None) -> None:
        super().__init__(message)
        if exit_code is not None:
            self.exit_code = exit_code


class UsageError(OctopodError):
    """Bad command-line input; nothing was run."""

    exit_code = EXIT_USAGE


class ConfigError(OctopodError):
    """A configuration variable holds a value we cannot use."""

    exit_code = EXIT_CONFIG


class ExternalError(OctopodError):
    """helm, kubectl, an API, a registry or a host failed or timed out."""
