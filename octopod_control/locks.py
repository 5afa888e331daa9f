"""Per-release locks, so two runs for the same deployment on one host take turns.

Runs for different deployments use different lock files and never wait on each
other. The lock lives in a private per-user directory.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import tempfile
import time
from pathlib import Path
from typing import Iterator

from .errors import ExternalError


def lock_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir()
    path = Path(base) / f"octopod-control-{os.getuid()}" / "locks"
    path.mkdir(mode=0o700, parents=True, exist_ok=True)
    return path


@contextlib.contextmanager
def release_lock(scope: str, release: str, namespace: str, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on (scope, namespace, release) or fail after timeout seconds."""
    digest = hashlib.sha256(f"{scope}\0{namespace}\0{release}".encode()).hexdigest()[:24]
    path = lock_dir() / f"{namespace}.{release}.{digest}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        deadline = time.monotonic() + timeout
        while True:
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                break
            except BlockingIOError:
                if time.monotonic() >= deadline:
                    raise ExternalError(
                        f"release {namespace}/{release}: another run still holds it after "
                        f"{timeout:g}s; try again later") from None
                time.sleep(0.2)
        yield
    finally:
        os.close(fd)
