"""Servers the tests, the demo and the benchmarks start (the API emulator, docker-registry, sshd):
stopped by PID and reaped, never by name."""
from __future__ import annotations

import subprocess


def stop(proc: subprocess.Popen, grace: float = 10) -> None:
    """TERM, wait; KILL if it lingers; always reap."""
    proc.terminate()
    try:
        proc.wait(grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
