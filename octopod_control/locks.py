"""The per-deployment lock, so two runs for the same deployment on one host take turns.

One API, `deployment_lock(settings, target)`: create, archive and cleanup hold it (a
restore runs inside create's). Runs for different deployments use different lock files
and never wait on each other. The locks live in a private per-user directory that we verify is ours
(owner, not a symlink; mode tightened to 0700) before trusting it: another local user must not
be able to hold our locks or plant links in their place.
"""
from __future__ import annotations

import contextlib
import fcntl
import hashlib
import os
import stat
import tempfile
import time
from pathlib import Path
from typing import TYPE_CHECKING, Iterator

from .errors import ExternalError

if TYPE_CHECKING:
    from .settings import Settings
    from .target import Target


def _private_dir(path: Path) -> Path:
    """Create path 0700 if absent; refuse it unless it is a real directory of ours that no one
    else could have written to; make it 0700."""
    try:
        path.mkdir(mode=0o700)
    except FileExistsError:
        pass
    info = os.lstat(path)
    if not stat.S_ISDIR(info.st_mode) or info.st_uid != os.getuid():
        raise ExternalError(f"{path} is not a directory of ours (a symlink, or "
                            "another user's); remove it or set XDG_RUNTIME_DIR")
    if info.st_mode & 0o022:  # others may have planted entries in it while it was open
        raise ExternalError(f"{path} is writable by other users; remove it or set XDG_RUNTIME_DIR")
    if info.st_mode & 0o077:
        os.chmod(path, 0o700)  # ours, readable only (an older version made it 0755): tighten it
    return path


def runtime_dir() -> Path:
    """Our private per-user directory: octopod-control-<uid> under XDG_RUNTIME_DIR or the
    temp dir, verified ours and 0700 (the locks; the in-cluster kubeconfig, incluster.py)."""
    base = Path(os.environ.get("XDG_RUNTIME_DIR") or tempfile.gettempdir())
    return _private_dir(base / f"octopod-control-{os.getuid()}")


def lock_dir() -> Path:
    return _private_dir(runtime_dir() / "locks")


def deployment_lock(settings: "Settings", target: "Target",
                    timeout: float | None = None) -> contextlib.AbstractContextManager:
    """The lock on one release of one cluster; ExternalError when another run keeps it too long.

    By default it waits as long as a create may hold it: an upgrade, a pending-release
    recovery and a second upgrade, each helm's HELM_TIMEOUT plus its grace. A run with a
    deadline of its own (cleanup's CLEANUP_TIMEOUT) passes what is left of it instead.
    """
    if timeout is None:
        from .helm import process_timeout

        timeout = 2 * process_timeout(settings.helm_timeout)
    kubeconfig = settings.text("KUBECONFIG")  # which cluster: a kubeconfig's path, or the pod's own
    scope = f"kubeconfig:{kubeconfig}" if kubeconfig else "in-cluster"
    return _exclusive(scope, target.release, target.namespace, timeout)


@contextlib.contextmanager
def _exclusive(scope: str, release: str, namespace: str, timeout: float) -> Iterator[None]:
    """Hold an exclusive lock on (scope, namespace, release) or fail after timeout seconds."""
    digest = hashlib.sha256(f"{scope}\0{namespace}\0{release}".encode()).hexdigest()[:24]
    path = lock_dir() / f"{namespace}.{release}.{digest}.lock"
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, 0o600)
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

