"""Shared fixtures: pinned helm 3/4 and kubectl, a Kubernetes API (emulated or real), scripts/."""
from __future__ import annotations

import json
import os
import subprocess
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from octopod_dev.emulator import Cluster, connect, start_emulator

ROOT = Path(__file__).resolve().parent.parent
TOOLS = ROOT / ".tools" / "bin"
HELMS = {"helm3": "v3.18.0", "helm4": "v4.1.4"}


def _warm_dirs() -> list[Path]:
    """Where scripts/ calls made with the environment's runtime bases put warm servers."""
    from octopod_dev.warm_client import socket_dir

    bases = {os.environ.get("XDG_RUNTIME_DIR") or "", os.environ.get("TMPDIR") or "", "/tmp"}
    return [socket_dir(b) for b in sorted(bases) if b.startswith("/")]


def pytest_configure(config) -> None:
    # The suite runs what the product does by default: check, info, tag_check and archive_check
    # through the warm server (when build/warm/octopod-warm is built, as ./run does), the other
    # scripts cold; tests/test_warm.py runs a corpus both ways and compares the bytes.
    # WARM=false in the environment runs the whole suite cold.
    from octopod_dev.warm_client import servers

    config._warm_servers_before = {held for d in _warm_dirs() for held in servers(d)}


def pytest_unconfigure(config) -> None:
    """Warm servers this session started in the shared runtime bases (a test whose environment
    left WARM unset) stop with it: those of this checkout's venv that were not running before.
    (A session of another checkout sharing /tmp keeps its own; two sessions of one checkout at
    once are not told apart.)"""
    from octopod_dev.warm_client import servers, stop, this_checkouts

    before = getattr(config, "_warm_servers_before", set())
    stop([held for d in _warm_dirs() for held in servers(d)
          if held not in before and this_checkouts(held.pid)])


@pytest.fixture(scope="session", autouse=True)
def _warm_servers_under_basetemp(tmp_path_factory) -> Iterator[None]:
    """Warm servers a test started inside its own directories (a chroot's /tmp, a cache root, a
    runtime directory of its own) stop with the session: the processes holding their locks."""
    yield
    from octopod_dev.warm_client import servers, stop

    found = []
    for directory, names, _ in os.walk(tmp_path_factory.getbasetemp()):  # symlinks not followed
        for name in names:
            if name.startswith("octopod-control-warm-") or (
                    name == "warm" and os.path.basename(directory) == "octopod-control"):
                found += servers(Path(directory) / name)
    stop(found)


def tool(name: str) -> str:
    path = TOOLS / name
    if not path.exists():
        pytest.fail(f"{path} missing: run `bash ci/fetch-tools.sh` (./run test does)")
    return str(path)


@pytest.fixture(scope="session")
def cluster(tmp_path_factory) -> Iterator[Cluster]:
    real = connect()
    if real:
        yield real
        return
    emulator = start_emulator(tmp_path_factory.mktemp("kube"))
    try:
        yield emulator
    finally:
        emulator.stop()


@pytest.fixture(params=sorted(HELMS))
def helm_bin(request) -> str:
    """Each end-to-end test runs once with each helm (`[helm3]`, `[helm4]`)."""
    return tool(request.param)


# For a test whose scripts never run helm (argv validation, check, unusable kubeconfigs): it
# runs once, with a HELM_BIN that cannot start, instead of once per helm for nothing.
NO_HELM = "/nonexistent/helm-must-not-run"
without_helm = pytest.mark.parametrize("helm_bin", [NO_HELM], ids=["no-helm"])


@pytest.fixture
def namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    return name


@pytest.fixture
def octopod_env(cluster: Cluster, helm_bin: str, tmp_path: Path, namespace: str) -> dict[str, str]:
    """The environment Octopod would give a script, pointed at the test cluster."""
    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPOD_", "HELM_", "KUBE"))}
    env.update(
        HOME=str(home),
        USER="octopod",
        XDG_CACHE_HOME=str(home / ".cache"),
        HELM_BIN=helm_bin,
        KUBECTL_BIN=tool("kubectl"),
        KUBECONFIG=str(cluster.kubeconfig),
        PROJECT_NAME="demo",
        BASE_DOMAIN="staging.example.com",
        NAMESPACE=namespace,
        HELM_TIMEOUT="60",
    )
    return env


@pytest.fixture
def dead_kubeconfig(tmp_path: Path) -> str:
    """A kubeconfig whose API server is a closed port: the cluster is unreachable."""
    path = tmp_path / "dead-kubeconfig.yaml"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "dead",
        "clusters": [{"name": "dead", "cluster": {"server": "http://127.0.0.1:9"}}],
        "users": [{"name": "dead", "user": {"token": "x"}}],
        "contexts": [{"name": "dead", "context": {"cluster": "dead", "user": "dead"}}]}))
    return str(path)


def run_script(name: str, *args: str, env: dict[str, str], cwd: Path | None = None,
               timeout: float = 180, stdin: str | None = None) -> subprocess.CompletedProcess:
    """Call scripts/<name> by absolute path, as Octopod does, from an unrelated directory."""
    return subprocess.run([str(ROOT / "scripts" / name), *args], env=env, cwd=cwd or "/",
                          capture_output=True, text=True, timeout=timeout, input=stdin)


@pytest.fixture
def scripts(octopod_env):
    def call(name: str, *args: str, env: dict[str, str] | None = None, **kw) -> subprocess.CompletedProcess:
        return run_script(name, *args, env={**octopod_env, **(env or {})}, **kw)
    return call
