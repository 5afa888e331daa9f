"""A private OpenSSH server on 127.0.0.1 for tests: its own host key, one authorized test key.

    with Sshd(tmp_path) as server:
        server.port, server.client_key (path), server.known_hosts_line(), server.user

Needs Debian's openssh-server (`/usr/sbin/sshd`). Stopped by PID and waited for.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path


class Sshd:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.proc: subprocess.Popen | None = None
        self.user = getpass.getuser()
        self.host_key = keygen(self.dir / "host_key")
        self.client_key = keygen(self.dir / "client_key")
        self.log = self.dir / "sshd.log"

    def __enter__(self) -> "Sshd":
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def start(self) -> None:
        if not os.path.exists(SSHD):
            raise RuntimeError("sshd not installed (apt-get install openssh-server)")
        if os.geteuid() == 0:
            os.makedirs("/run/sshd", mode=0o755, exist_ok=True)  # privilege separation dir
        authorized = self.dir / "authorized_keys"
        authorized.write_text((self.dir / "client_key.pub").read_text())
        self.port = free_port()
        config = self.dir / "sshd_config"
        config.write_text("\n".join([
            f"Port {self.port}", "ListenAddress 127.0.0.1", f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "PermitRootLogin prohibit-password", "PidFile none",
            "LogLevel VERBOSE", "",
        ]))
        with open(self.log, "wb") as log:
            self.proc = subprocess.Popen([SSHD, "-D", "-e", "-f", str(config)],
                                         stdout=log, stderr=subprocess.STDOUT)
        self._wait_ready()

    def _wait_ready(self, timeout: float = 15) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"sshd exited: {self.log.read_text()[-2000:]}")
            if self.keyscan():
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError("sshd did not answer ssh-keyscan in time")

    def keyscan(self) -> str:
        """known_hosts lines for this server, as `ssh-keyscan` prints them ('' until it answers)."""
        done = subprocess.run(["ssh-keyscan", "-T", "2", "-t", "ed25519", "-p", str(self.port),
                               "127.0.0.1"], capture_output=True, text=True, timeout=10)
        return done.stdout if done.returncode == 0 and done.stdout.strip() else ""

    def known_hosts_line(self) -> str:
        """The known_hosts line for this server, built from its host key file."""
        kind, key = (self.dir / "host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def stop(self) -> None:
        if self.proc is None:
            return
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None
