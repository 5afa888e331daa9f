"""Per-release locks: private directory, exclusivity, independence of different releases."""
from __future__ import annotations

import os
import threading
import time

import pytest

from octopod_control import locks
from octopod_control.errors import ExternalError


@pytest.fixture
def runtime_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    return tmp_path / f"octopod-control-{os.getuid()}"


def test_the_lock_directory_is_private(runtime_dir):
    path = locks.lock_dir()
    assert path.stat().st_mode & 0o777 == 0o700
    assert runtime_dir.stat().st_mode & 0o777 == 0o700


def test_an_open_directory_of_ours_is_tightened(runtime_dir):
    runtime_dir.mkdir(mode=0o755)
    os.chmod(runtime_dir, 0o777)
    locks.lock_dir()
    assert runtime_dir.stat().st_mode & 0o777 == 0o700


def test_a_symlinked_directory_is_refused(runtime_dir, tmp_path):
    (tmp_path / "elsewhere").mkdir()
    runtime_dir.symlink_to(tmp_path / "elsewhere")
    with pytest.raises(ExternalError, match="not a directory of ours"):
        locks.lock_dir()


def test_same_release_waits_other_releases_do_not(runtime_dir):
    order: list[str] = []
    with locks.release_lock("kc", "a", "ns", timeout=5):
        with locks.release_lock("kc", "b", "ns", timeout=0.1):  # another release: no wait
            order.append("b")
        with pytest.raises(ExternalError, match="another run still holds it"):
            with locks.release_lock("kc", "a", "ns", timeout=0.3):
                pass

        def second() -> None:
            with locks.release_lock("kc", "a", "ns", timeout=5):
                order.append("second")

        thread = threading.Thread(target=second)
        thread.start()
        time.sleep(0.3)
        order.append("first done")
    thread.join(5)
    assert order == ["b", "first done", "second"]
