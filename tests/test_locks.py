"""Per-release locks: private directory, exclusivity, independence of different releases."""
from __future__ import annotations

import os
import subprocess
import sys
import threading
import time
import types

import pytest

from octopod_control import locks
from octopod_control.errors import ExternalError
from octopod_control.settings import Settings
from octopod_control.target import Target
from tests.conftest import ROOT


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / f"octopod-control-{os.getuid()}"


def test_the_lock_directory_is_private(runtime_dir):
    path = locks.lock_dir()
    assert path.stat().st_mode & 0o777 == 0o700
    assert runtime_dir.stat().st_mode & 0o777 == 0o700


def test_a_readable_directory_of_ours_is_tightened(runtime_dir):
    runtime_dir.mkdir(mode=0o755)  # as an older version made it: no one else could write in it
    os.chmod(runtime_dir, 0o755)
    locks.lock_dir()
    assert runtime_dir.stat().st_mode & 0o777 == 0o700


@pytest.mark.parametrize("mode", [0o777, 0o770, 0o702])
def test_a_directory_of_ours_others_could_write_is_refused(runtime_dir, mode):
    # Entries planted while it was open (a lock file of theirs, a symlink) would stay: refuse it,
    # as the warm client refuses its socket directory.
    runtime_dir.mkdir()
    os.chmod(runtime_dir, mode)
    with pytest.raises(ExternalError, match="writable by other users"):
        locks.lock_dir()
    assert runtime_dir.stat().st_mode & 0o777 == mode  # left as it was


def test_a_symlinked_directory_is_refused(runtime_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    runtime_dir.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ExternalError, match="not a directory of ours"):
        locks.lock_dir()


# Another run, in its own process: takes the lock, says so on stdout, holds it until told (stdin).
HOLDER = """
import sys
from octopod_control import locks
from octopod_control.settings import Settings
from octopod_control.target import Target
with locks.deployment_lock(Settings({"KUBECONFIG": "kc"}), Target("a", "ns"), timeout=30):
    print("held", flush=True)
    sys.stdin.readline()
"""


def test_same_release_waits_other_releases_do_not(runtime_dir, monkeypatch):
    """Ordered by signals, not sleeps: the holder says when it holds the lock; the waiter's lock
    loop says when the lock was found taken; only then is the holder told to let go."""
    refused = threading.Event()

    def sleep(seconds: float) -> None:  # locks' retry pause: reached only after a refused flock
        refused.set()
        time.sleep(seconds)

    monkeypatch.setattr(locks, "time", types.SimpleNamespace(monotonic=time.monotonic, sleep=sleep))
    holder = subprocess.Popen([sys.executable, "-c", HOLDER], cwd=ROOT, text=True,
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE)
    order: list[str] = []
    try:
        assert holder.stdout.readline() == "held\n", "the holder never took the lock"
        with locks.deployment_lock(Settings({"KUBECONFIG": "kc"}), Target("b", "ns"), timeout=0.1):  # another release: no wait
            order.append("b")
        assert not refused.is_set()
        with pytest.raises(ExternalError, match="another run still holds it"):
            with locks.deployment_lock(Settings({"KUBECONFIG": "kc"}), Target("a", "ns"), timeout=0.3):
                pass
        refused.clear()

        def second() -> None:
            with locks.deployment_lock(Settings({"KUBECONFIG": "kc"}), Target("a", "ns"), timeout=60):
                order.append("second")

        thread = threading.Thread(target=second, daemon=True)
        thread.start()
        deadline = time.monotonic() + 60
        while not refused.wait(0.05):  # bounded: until the waiter has found the lock taken
            assert thread.is_alive(), f"the second run did not wait for the lock: {order}"
            assert time.monotonic() < deadline, "the second run never tried the lock"
        assert order == ["b"]  # still waiting
        order.append("first done")
        holder.stdin.write("release\n")
        holder.stdin.flush()
        thread.join(60)
        assert not thread.is_alive(), "the second run never got the lock once it was free"
    finally:
        if holder.poll() is None:
            holder.kill()
        holder.wait()
    assert holder.returncode == 0
    assert order == ["b", "first done", "second"]
