"""A private OpenSSH server on 127.0.0.1 for tests: its own host key, one authorized test key.

    with Sshd(tmp_path) as server:
        server.port, server.client_key (path), server.known_hosts_line(), server.user

Needs Debian's openssh-server (`/usr/sbin/sshd`). sshd cannot listen on port 0 (it would not say
which port it got), and a probed free port may be taken before sshd binds it. So this class
listens itself, on port 0, and runs sshd in inetd mode (`sshd -i`): one sshd per connection, the
accepted socket as its stdin and stdout, as inetd would. Each such sshd is stopped by PID and
waited for.
"""
from __future__ import annotations

import getpass
import os
import shutil
import socket
import subprocess
import threading
import time
from pathlib import Path

SSHD = shutil.which("sshd") or "/usr/sbin/sshd"


def keygen(path: Path, kind: str = "ed25519") -> Path:
    subprocess.run(["ssh-keygen", "-q", "-t", kind, "-N", "", "-C", "test", "-f", str(path)],
                   check=True, capture_output=True, timeout=30)
    return path


class Sshd:
    def __init__(self, directory: Path) -> None:
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.port = 0
        self.user = getpass.getuser()
        self.host_key = keygen(self.dir / "host_key")
        self.client_key = keygen(self.dir / "client_key")
        self.log = self.dir / "sshd.log"
        self.config = self.dir / "sshd_config"
        self._listener: socket.socket | None = None
        self._thread: threading.Thread | None = None
        self._sessions: list[subprocess.Popen] = []
        self._lock = threading.Lock()

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
        self.config.write_text("\n".join([
            f"HostKey {self.host_key}",
            f"AuthorizedKeysFile {authorized}", "PubkeyAuthentication yes",
            "PasswordAuthentication no", "KbdInteractiveAuthentication no", "UsePAM no",
            "StrictModes no", "PermitRootLogin prohibit-password", "PidFile none",
            "LogLevel VERBOSE", "",
        ]))
        # A configuration error would otherwise only show as connections closing at once.
        checked = subprocess.run([SSHD, "-t", "-f", str(self.config)], capture_output=True, text=True,
                                 timeout=30)
        if checked.returncode != 0:
            raise RuntimeError(f"sshd -t: {checked.stderr.strip()}")
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(16)
        self.port = self._listener.getsockname()[1]
        self._thread = threading.Thread(target=self._serve, args=(self._listener,), daemon=True)
        self._thread.start()
        self._wait_ready()

    def _serve(self, listener: socket.socket) -> None:
        """Accept connections; hand each to a fresh `sshd -i` (inetd mode)."""
        while True:
            try:
                conn, _ = listener.accept()
            except OSError:  # the listener was shut down: stop()
                return
            with conn, open(self.log, "ab") as log:
                conn.setblocking(True)
                with self._lock:
                    self._sessions = [p for p in self._sessions if p.poll() is None]
                    if self._listener is None:
                        return
                    self._sessions.append(subprocess.Popen(
                        [SSHD, "-i", "-e", "-f", str(self.config)],
                        stdin=conn, stdout=conn, stderr=log))
            # The child holds the connection now; our copies of the socket and log are closed.

    def _wait_ready(self, timeout: float = 30) -> None:
        """The listener is up at once; this checks that sshd itself answers through it."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.keyscan():
                return
            time.sleep(0.1)
        log = self.log.read_text() if self.log.exists() else ""
        self.stop()
        raise RuntimeError(f"sshd did not answer ssh-keyscan in time: {log[-2000:]}")

    def keyscan(self) -> str:
        """known_hosts lines for this server, as `ssh-keyscan` prints them ('' until it answers)."""
        done = subprocess.run(["ssh-keyscan", "-T", "5", "-t", "ed25519", "-p", str(self.port),
                               "127.0.0.1"], capture_output=True, text=True, timeout=30)
        return done.stdout if done.returncode == 0 and done.stdout.strip() else ""

    def known_hosts_line(self) -> str:
        """The known_hosts line for this server, built from its host key file."""
        kind, key = (self.dir / "host_key.pub").read_text().split()[:2]
        return f"[127.0.0.1]:{self.port} {kind} {key}\n"

    def stop(self) -> None:
        with self._lock:
            listener, self._listener = self._listener, None
            sessions, self._sessions = self._sessions, []
        if listener is not None:
            try:
                listener.shutdown(socket.SHUT_RDWR)  # wakes the accept() in _serve
            except OSError:
                pass
            listener.close()
        if self._thread is not None:
            self._thread.join(10)
            self._thread = None
        for proc in sessions:
            if proc.poll() is None:
                proc.terminate()
                try:
                    proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    proc.kill()
                    proc.wait()
            else:
                proc.wait()
