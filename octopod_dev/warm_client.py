"""The warm path's C client for the venv (build/warm/octopod-warm), and its servers' housekeeping.

scripts/<name> execs build/warm/octopod-warm when it is there (octopod_dev/wrappers.py);
`invoke warm-client` builds it, and so does the test session (tests/conftest.py) and the
benchmarks, so a clean clone's `./run test` has it. The bundle's launcher compiles the same
source (bundle/warm_client.c) with the same definitions (`defines()`): the warm tasks, the
flag words of the configuration schema and the start-up variables, each written once in
Python. `stop_servers` ends the servers a test session or a benchmark started, by the PIDs
they write in their lock files.
"""
from __future__ import annotations

import fcntl
import hashlib
import json
import os
import signal
import subprocess
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SOURCE = ROOT / "bundle" / "warm_client.c"
CLIENT = ROOT / "build" / "warm" / "octopod-warm"


class BuildError(Exception):
    pass


def _c_strings(words) -> str:
    return ",".join(json.dumps(w) for w in words)


def defines() -> list[str]:
    """-D flags for bundle/warm_client.c: lists whose one home is the Python side."""
    from octopod_control.settings import FALSE_WORDS, TRUE_WORDS
    from octopod_control.warm import STARTUP_PREFIXES, WARM_TASKS

    return [f"-DWARM_TASKS={_c_strings(WARM_TASKS)}",
            f"-DWARM_FALSE_WORDS={_c_strings(sorted(FALSE_WORDS))}",
            f"-DWARM_TRUE_WORDS={_c_strings(sorted(TRUE_WORDS))}",
            f"-DWARM_STARTUP_VARS={_c_strings(STARTUP_PREFIXES)}"]


def _inputs_key() -> str:
    return hashlib.sha256(SOURCE.read_bytes() + "\0".join(defines()).encode()).hexdigest()


def build(out: Path = CLIENT) -> Path:
    """The static venv client, rebuilt only when its source or definitions changed."""
    stamp = out.with_name(f".{out.name}.sha256")
    key = _inputs_key()
    if out.is_file() and os.access(out, os.X_OK) and stamp.is_file() and stamp.read_text() == key:
        return out
    out.parent.mkdir(parents=True, exist_ok=True)
    partial = out.with_name(f".{out.name}.partial")
    argv = ["gcc", "-static", "-O2", "-s", "-Wall", "-Wno-format-truncation", "-DWARM_CLIENT_MAIN",
            *defines(), "-o", str(partial), str(SOURCE)]
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=120)
    except FileNotFoundError:
        raise BuildError("gcc not found: apt-get install gcc libc6-dev (./run does)") from None
    if done.returncode != 0:
        raise BuildError(f"gcc failed ({done.returncode}):\n{done.stderr[-3000:]}")
    partial.chmod(0o755)
    partial.rename(out)
    stamp.write_text(key)
    return out


def socket_dir(base: str | Path, uid: int | None = None) -> Path:
    """Where the clients put the sockets for one runtime base ($XDG_RUNTIME_DIR, $TMPDIR or /tmp)."""
    return Path(base) / f"octopod-control-warm-{os.getuid() if uid is None else uid}"


def server_pids(directory: Path) -> list[int]:
    """The live servers of a socket directory: the PIDs in the lock files a server still holds
    (a lock nobody holds names a server gone, whose PID may be another process's by now)."""
    pids = []
    for lock in sorted(directory.glob("*.lock")) if directory.is_dir() else []:
        try:
            with open(lock) as handle:
                try:
                    fcntl.flock(handle, fcntl.LOCK_SH | fcntl.LOCK_NB)
                    continue  # nobody holds it
                except BlockingIOError:
                    pid = int(handle.read().split()[0])
            os.kill(pid, 0)
        except (ValueError, IndexError, OSError):
            continue
        pids.append(pid)
    return pids


def stop_servers(directory: Path, timeout: float = 5.0) -> list[int]:
    """SIGTERM the servers of a socket directory (they retire), SIGKILL what is left; their PIDs."""
    return stop(server_pids(directory), timeout)


def stop(pids: list[int], timeout: float = 5.0) -> list[int]:
    """SIGTERM these servers (they retire), SIGKILL what is left after timeout seconds."""
    for pid in pids:
        try:
            os.kill(pid, signal.SIGTERM)
        except OSError:
            pass
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and any(_alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        if _alive(pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
    return pids


def _alive(pid: int) -> bool:
    """Running (a zombie, reparented to an init that has not reaped it yet, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
