"""The cluster the end-to-end tests, the demo and the benchmarks talk to: the API emulator,
or (for the tests) a real one.

`start_emulator(dir, *flags)` starts `kube_emu.py` as a real HTTP server on 127.0.0.1 (a
child process, stopped by PID at the end; each test session starts one), passing kube_emu's
TLS and authentication flags for HTTPS tests; the harness then talks to it with the CA and
credentials of the kubeconfig the emulator wrote. Set OCTOPOD_TEST_KUBECONFIG to a
kubeconfig to run the same tests against a real cluster; then `ready()` is a no-op, since
real controllers do that job.
"""
from __future__ import annotations

import contextlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Iterator

from octopod_dev import processes

HERE = Path(__file__).resolve().parent


@dataclass
class Cluster:
    kubeconfig: Path
    url: str = ""
    proc: subprocess.Popen | None = field(default=None, repr=False)
    # An HTTPS emulator: how the harness verifies it and authenticates (from its kubeconfig).
    tls: ssl.SSLContext | None = field(default=None, repr=False)
    token: str | None = field(default=None, repr=False)

    @property
    def emulated(self) -> bool:
        return self.proc is not None

    # -- emulator hooks (the tests acting as Kubernetes controllers)
    def ready(self, namespace: str, name: str | None = None) -> None:
        if not self.emulated:
            return
        query = f"namespace={namespace}" + (f"&name={name}" if name else "")
        self._call("POST", f"/_emu/ready?{query}")

    def requires_emulator(self, what: str) -> None:
        """Skip a test that drives the emulator's hooks when it runs against a real cluster."""
        if not self.emulated:
            import pytest

            pytest.skip(f"{what} needs the API emulator (OCTOPOD_TEST_KUBECONFIG is set)")

    def requests(self) -> list[list[Any]]:
        self.requires_emulator("counting API requests")
        return self._call("GET", "/_emu/requests")

    def reset_requests(self) -> None:
        self.requires_emulator("counting API requests")
        self._call("DELETE", "/_emu/requests")

    @contextlib.contextmanager
    def fault(self, mode: str, prefix: str = "/", method: str | None = None,
              times: int | None = None) -> Iterator[None]:
        """While the block runs, the API answers 500 (mode "500") or never answers (mode "hang");
        with `times`, only the first that many matching requests."""
        self.requires_emulator("fault injection")
        self._call("POST", "/_emu/fault", {"mode": mode, "prefix": prefix, "method": method,
                                           "times": times})
        try:
            yield
        finally:
            self._call("DELETE", "/_emu/fault")

    @contextlib.contextmanager
    def controller(self, namespace: str, interval: float = 0.1) -> Iterator[None]:
        """While the block runs, mark the namespace's workloads ready as controllers would."""
        stop = threading.Event()

        def loop() -> None:
            while not stop.is_set():
                try:
                    self.ready(namespace)
                except OSError:
                    pass
                stop.wait(interval)

        thread = threading.Thread(target=loop, daemon=True)
        thread.start()
        try:
            yield
        finally:
            stop.set()
            thread.join(5)

    # -- plain API access for assertions and for driving states
    def api(self, method: str, path: str, body: Any = None,
            content_type: str = "application/json") -> Any:
        if self.emulated:
            return self._call(method, path, body, content_type)
        if method != "GET":
            self.requires_emulator(f"{method} {path} (driving object status)")
        out = subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "get", "--raw", path],
                             capture_output=True, text=True, timeout=30)
        return json.loads(out.stdout) if out.returncode == 0 else None

    def _call(self, method: str, path: str, body: Any = None,
              content_type: str = "application/json") -> Any:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": content_type}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        request = urllib.request.Request(self.url + path, data=data, method=method, headers=headers)
        try:
            with urllib.request.urlopen(request, timeout=10, context=self.tls) as response:
                raw = response.read()
        except urllib.error.HTTPError as exc:
            if exc.code == 404:
                return None
            raise
        return json.loads(raw) if raw else None

    def create_namespace(self, name: str) -> None:
        if self.emulated:
            self._call("POST", "/api/v1/namespaces", {"apiVersion": "v1", "kind": "Namespace",
                                                      "metadata": {"name": name}})
        else:
            subprocess.run(["kubectl", "--kubeconfig", str(self.kubeconfig), "create", "namespace", name],
                           check=True, capture_output=True, timeout=30)

    def stop(self) -> None:
        if self.proc is not None:
            processes.stop(self.proc)


def start_emulator(workdir: Path, *extra: str) -> Cluster:
    kubeconfig = workdir / "kubeconfig.yaml"
    env = dict(os.environ, PYTHONUNBUFFERED="1", PYTEST_DISABLE_PLUGIN_AUTOLOAD="1")
    proc = subprocess.Popen(
        [sys.executable, str(HERE / "kube_emu.py"), "--port", "0", "--kubeconfig", str(kubeconfig), *extra],
        stdout=subprocess.PIPE, stderr=open(workdir / "emulator.log", "wb"), text=True, env=env)
    deadline = time.monotonic() + 60
    line = ""
    while time.monotonic() < deadline:
        line = proc.stdout.readline()
        if line.startswith("READY ") or proc.poll() is not None:
            break
    if not line.startswith("READY "):
        proc.kill()
        proc.wait()
        raise RuntimeError(f"kube emulator did not start: {(workdir / 'emulator.log').read_text()[-2000:]}")
    cluster = Cluster(kubeconfig=kubeconfig, url=line.split()[1], proc=proc)
    if cluster.url.startswith("https:"):
        cluster.tls, cluster.token = _harness_credentials(kubeconfig)
    return cluster


def _harness_credentials(kubeconfig: Path) -> tuple[ssl.SSLContext, str | None]:
    """The CA, client certificate and token of the kubeconfig kube_emu wrote (JSON, file paths)."""
    config = json.loads(kubeconfig.read_text())
    cluster, user = config["clusters"][0]["cluster"], config["users"][0]["user"]
    context = ssl.create_default_context(cafile=cluster.get("certificate-authority"))
    if user.get("client-certificate"):
        context.load_cert_chain(user["client-certificate"], user["client-key"])
    return context, user.get("token")


def connect() -> Cluster | None:
    """A real cluster when OCTOPOD_TEST_KUBECONFIG names one."""
    path = os.environ.get("OCTOPOD_TEST_KUBECONFIG")
    return Cluster(kubeconfig=Path(path)) if path else None
