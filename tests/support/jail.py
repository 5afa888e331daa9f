"""A chroot shaped like Octopod's server image where it matters: busybox only, no Python, no loader.

It holds busybox-static (and its applets), /dev/null, a home for uid 1000, a writable /tmp,
/copy (the init container's target), /kube (for a kubeconfig) and whatever is put in /utils;
no /etc/passwd, no /proc. Scripts run as uid 1000 under Octopod's minimal environment. A chroot
keeps the network namespace, so the API emulator on 127.0.0.1 is reachable. Root only.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
from pathlib import Path

import pytest

BUSYBOX = Path("/bin/busybox")
UID = 1000
OCTOPOD_ENV = ["PATH=/utils:/bin", "USER=octopod", "HOME=/home/octopod"]


def require_root(why: str) -> None:
    """Skip unless root; under OCTOPOD_TESTS_AS_ROOT (CI, as root) a non-root run fails instead."""
    if os.geteuid() == 0:
        return
    reason = f"{why} (this run is uid {os.geteuid()})"
    if os.environ.get("OCTOPOD_TESTS_AS_ROOT"):  # .ci/run sets it: CI must run these, not skip them
        pytest.fail(f"{reason}; OCTOPOD_TESTS_AS_ROOT is set, so this is an error, not a skip")
    pytest.skip(f"{reason}; CI runs them as root")


def make_root(root: Path) -> Path:
    """busybox, the directories and /dev/null in root (which may already hold /utils)."""
    if not BUSYBOX.exists():
        pytest.fail("/bin/busybox missing: apt-get install busybox-static (./run does)")
    os.chmod(root, 0o755)
    (root / "bin").mkdir()
    shutil.copy2(BUSYBOX, root / "bin" / "busybox")
    applets = subprocess.run([str(BUSYBOX), "--list"], capture_output=True, text=True,
                             timeout=30).stdout.split()
    for applet in applets:
        if applet != "busybox":
            (root / "bin" / applet).symlink_to("busybox")
    for name, mode, owner in (("home/octopod", 0o755, UID), ("copy", 0o755, UID), ("tmp", 0o1777, 0),
                              ("kube", 0o755, 0), ("dev", 0o755, 0)):
        path = root / name
        path.mkdir(parents=True)
        os.chown(path, owner, owner)
        path.chmod(mode)
    # Every container has /dev/null; subprocess opens it for a child's empty stdin.
    os.mknod(root / "dev" / "null", 0o666 | stat.S_IFCHR, os.makedev(1, 3))
    (root / "dev" / "null").chmod(0o666)
    return root


def in_jail(root: Path, *argv: str, env: tuple[str, ...] = (), timeout: float = 180,
            ) -> subprocess.CompletedProcess:
    """argv inside the chroot as uid 1000 with Octopod's environment (plus env)."""
    command = ["chroot", f"--userspec={UID}:{UID}", str(root), "/bin/env", "-i",
               *OCTOPOD_ENV, *env, *argv]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


def reset_home(root: Path) -> Path:
    home = root / "home" / "octopod"
    shutil.rmtree(home)
    home.mkdir()
    os.chown(home, UID, UID)
    return home


def add_kubeconfig(root: Path, kubeconfig: Path) -> str:
    """The cluster's kubeconfig at /kube/config in root; the KUBECONFIG=… setting naming it."""
    shutil.copyfile(kubeconfig, root / "kube" / "config")
    (root / "kube" / "config").chmod(0o644)
    return "KUBECONFIG=/kube/config"
