"""Ports for tests, never found by probing: a probed port is closed again before anyone uses it,
and in between another process may take it.

Servers bind port 0 and report the port they got (kube_emu prints it, docker-registry logs it,
`Sshd` and the Python servers hold their own listening socket). A test that needs a port where
nothing answers holds one with `refused_port()`.
"""
from __future__ import annotations

import contextlib
import socket
from typing import Iterator


@contextlib.contextmanager
def refused_port() -> Iterator[int]:
    """A 127.0.0.1 port that refuses connections while the block runs: bound by us (so nobody else
    can listen on it) and never listening, so a connect gets an RST (ECONNREFUSED) at once."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        yield sock.getsockname()[1]
