"""The warm path's C client for the venv (build/warm/octopod-warm), and its servers' housekeeping.

scripts/<name> execs build/warm/octopod-warm when it is there (octopod_dev/wrappers.py);
`invoke warm-client` builds it, and so does the test session (tests/conftest.py) and the
benchmarks, so a clean clone's `./run test` has it. The bundle's launcher compiles the same
source (bundle/warm_client.c) with the same definitions (`defines()`): the warm tasks, the
flag words of the configuration schema and the start-up variables, each written once in
Python. `stop_servers` ends the servers a test session or a benchmark started: the processes
holding their keys' locks (the kernel's lock table says which), signalled through a pidfd, so
a PID reused meanwhile is never signalled.
"""
from __future__ import annotations

import errno
import hashlib
import json
import os
import select
import signal
import subprocess
import time
from dataclasses import dataclass
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
    from octopod_control import warm
    from octopod_control.settings import FALSE_WORDS, TRUE_WORDS

    return [f"-DWARM_TASKS={_c_strings(warm.WARM_TASKS)}",
            f"-DWARM_FALSE_WORDS={_c_strings(sorted(FALSE_WORDS))}",
            f"-DWARM_TRUE_WORDS={_c_strings(sorted(TRUE_WORDS))}",
            f"-DWARM_STARTUP_VARS={_c_strings(warm.STARTUP_PREFIXES)}",
            f"-DWARM_PROTOCOL={warm.PROTOCOL}",
            f"-DWARM_GRACE_MS={int(warm.GRACE * 1000)}",
            f"-DWARM_BACKOFF_S={int(warm.BACKOFF)}"]


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


@dataclass(frozen=True)
class Held:
    """A server as found: the lock file of its key, and the process holding that lock."""
    lock: Path
    pid: int


def lock_holder(lock: Path) -> int | None:
    """The PID holding lock exclusively, from the kernel's lock table (/proc/locks): not the PID
    written in the file, which a server starting this instant has not rewritten yet."""
    try:
        info = lock.stat()
        table = Path("/proc/locks").read_text()
    except OSError:
        return None
    device = f"{os.major(info.st_dev):02x}:{os.minor(info.st_dev):02x}:{info.st_ino}"
    for line in table.splitlines():
        fields = line.split()  # "1: FLOCK ADVISORY WRITE <pid> <maj:min:inode> 0 EOF"; "->" waits
        if len(fields) >= 6 and fields[1:4] == ["FLOCK", "ADVISORY", "WRITE"] and fields[5] == device:
            return int(fields[4])
    return None


def servers(directory: Path) -> list[Held]:
    """The live servers of a socket directory: who holds each key's lock (a lock nobody holds
    names no server)."""
    found = []
    for lock in sorted(directory.glob("*.lock")) if directory.is_dir() else []:
        pid = lock_holder(lock)
        if pid is not None and _alive(pid):
            found.append(Held(lock, pid))
    return found


def server_pids(directory: Path) -> list[int]:
    return [held.pid for held in servers(directory)]


def stop_servers(directory: Path, timeout: float = 5.0) -> list[int]:
    """SIGTERM the servers of a socket directory (they retire), SIGKILL what is left; their PIDs."""
    return stop(servers(directory), timeout)


def stop(found: list[Held], timeout: float = 5.0) -> list[int]:
    """SIGTERM these servers (they retire), SIGKILL what is left after timeout seconds."""
    pinned = [pin for pin in map(_Pin.of, found) if pin is not None]
    try:
        for pin in pinned:
            pin.signal(signal.SIGTERM)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and not all(pin.exited() for pin in pinned):
            time.sleep(0.05)
        for pin in pinned:
            if not pin.exited():
                pin.signal(signal.SIGKILL)
    finally:
        for pin in pinned:
            pin.close()
    return sorted(pin.held.pid for pin in pinned)


class _Pin:
    """A server to signal, pinned by a pidfd taken while it held the lock it was found by: a
    server gone since, its PID another process's by now, is never signalled; the SIGKILL too
    reaches only that process (which, retiring, has released its lock by then). A kernel
    without pidfd_open: by PID, each time only while it still holds that lock."""

    def __init__(self, held: Held, fd: int) -> None:
        self.held, self.fd = held, fd

    @classmethod
    def of(cls, held: Held) -> "_Pin | None":
        try:
            fd = os.pidfd_open(held.pid)
        except OSError as exc:
            if exc.errno != errno.ENOSYS:
                return None  # gone
            fd = -1
        if lock_holder(held.lock) != held.pid:
            if fd >= 0:
                os.close(fd)
            return None
        return cls(held, fd)

    def signal(self, sig: int) -> None:
        try:
            if self.fd >= 0:
                signal.pidfd_send_signal(self.fd, sig)
            elif lock_holder(self.held.lock) == self.held.pid:
                os.kill(self.held.pid, sig)
        except OSError:
            pass

    def exited(self) -> bool:
        """Ended (its pidfd readable: a zombie nobody reaps counts as ended too)."""
        if self.fd < 0:
            return not _alive(self.held.pid) or lock_holder(self.held.lock) != self.held.pid
        poller = select.poll()
        poller.register(self.fd, select.POLLIN)
        return bool(poller.poll(0))

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)


def this_checkouts(pid: int, root: Path = ROOT) -> bool:
    """A venv server of this checkout (started as root/.venv/bin/python): the test session's
    clean-up leaves alone the servers another checkout's session started in a shared /tmp."""
    try:
        argv0 = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")[0].decode()
    except (OSError, UnicodeDecodeError):
        return False
    return argv0.startswith(f"{root}/")


def _alive(pid: int) -> bool:
    """Running (a zombie, reparented to an init that has not reaped it yet, counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().rsplit(")", 1)[1].split()[0] != "Z"
    except (OSError, IndexError):
        return False
