"""The Kubernetes API emulator and its harness: development tooling, never shipped.

`kube_emu.py` is an in-memory Kubernetes API server (run as its own process) that real helm
and kubectl accept; `cluster.py` starts it on 127.0.0.1 and drives it as the controllers a
real cluster would run. The tests (tests/conftest.py), the demo (`invoke demo`) and the
benchmarks (bench/) use it through `start_emulator`.
"""
from .cluster import Cluster, connect, start_emulator

__all__ = ["Cluster", "connect", "start_emulator"]
