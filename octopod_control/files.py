"""Private files under $HOME, written atomically and created with their final mode.

A reader (ssh, helm, kubectl, a concurrent script) sees the old file or the new
one, never half of one; a secret is never readable by others, not even briefly.
"""
from __future__ import annotations

import os
import stat
import tempfile
from pathlib import Path

from .errors import OctopodError


def ensure_dir(path: Path, mode: int = 0o700, *, enforce: bool = True) -> None:
    """Create the directory (and parents) with `mode`; with `enforce`, fix an existing one's mode.

    Without `enforce` an existing directory keeps its mode: it may be $HOME or shared.
    """
    try:
        path.mkdir(mode=mode, parents=True, exist_ok=True)
        if enforce and stat.S_IMODE(path.stat().st_mode) != mode:
            path.chmod(mode)
    except OSError as exc:
        raise OctopodError(f"cannot create {path}: {exc.strerror}") from None


def same_file(path: Path, data: bytes, mode: int) -> bool:
    """Whether `path` already holds exactly `data` with exactly `mode` (so there is nothing to do)."""
    try:
        return stat.S_IMODE(path.stat().st_mode) == mode and path.read_bytes() == data
    except OSError:
        return False


def write_atomic(path: Path, data: bytes, mode: int) -> bool:
    """Replace `path` with `data` (temp file in the same directory, then rename).

    Returns False when the file was already exactly so and nothing was written.
    """
    if same_file(path, data, mode):
        return False
    tmp = ""
    try:
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")  # created 0600
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), mode)
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        if tmp:
            try:
                os.unlink(tmp)
            except OSError:
                pass
        raise OctopodError(f"cannot write {path}: {exc.strerror}") from None
    return True
