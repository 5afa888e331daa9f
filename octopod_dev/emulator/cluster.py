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
import hashlib
import json
import os
import ssl
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

from octopod_dev import processes

HERE = Path(__file__).resolve().parent
MERGE = "application/merge-patch+json"


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

    def requests(self, agents: bool = False) -> list[list[Any]]:
        """[method, path, status] of each API request since the last reset; with agents, each
        with the client's User-Agent too (ours: octopod-control)."""
        self.requires_emulator("counting API requests")
        return self._call("GET", "/_emu/requests" + ("?agents=true" if agents else ""))

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
        with in_background(lambda: self.ready(namespace), interval):
            yield

    # -- a rollout as the deployment controller and the kubelet would show it (plain API requests)
    def roll_out(self, namespace: str, deployment: str, container: dict[str, Any] | None,
                 replicas: int | None = None, pod_status: dict[str, Any] | None = None) -> list[dict]:
        """Play the deployment controller and the kubelet once for the Deployment's current
        template: its ReplicaSet (owned by the Deployment, the template plus pod-template-hash),
        that ReplicaSet's Pods (owned by it) with every container in the given status (say
        {"state": {"waiting": {"reason": "ImagePullBackOff"}}, "restartCount": 0}) or, given
        pod_status, with that status (an unschedulable Pending pod has no container statuses),
        and the Deployment's status of a rollout that has not become available. Returns the
        Pods; [] while the Deployment does not exist. Calling it again for the same template
        changes nothing.
        """
        self.requires_emulator("playing the deployment controller")
        apps = f"/apis/apps/v1/namespaces/{namespace}"
        dep = self.api("GET", f"{apps}/deployments/{deployment}")
        if not dep:
            return []
        meta, spec = dep["metadata"], dep.get("spec") or {}
        template = json.loads(json.dumps(spec.get("template") or {}))
        digest = hashlib.sha256(json.dumps(template, sort_keys=True).encode()).hexdigest()[:10]
        name, count = f"{deployment}-{digest}", spec.get("replicas", 1) if replicas is None else replicas
        owned = {"ownerReferences": [{"apiVersion": "apps/v1", "kind": "Deployment", "name": deployment,
                                      "uid": meta["uid"], "controller": True, "blockOwnerDeletion": True}]}
        pods = [p for p in (self.api("GET", f"/api/v1/namespaces/{namespace}/pods") or {}).get("items", [])
                if any(r.get("name") == name for r in p["metadata"].get("ownerReferences") or [])]
        if self.api("GET", f"{apps}/replicasets/{name}"):
            return pods
        template.setdefault("metadata", {}).setdefault("labels", {})["pod-template-hash"] = digest
        selector = json.loads(json.dumps(spec.get("selector") or {}))
        selector.setdefault("matchLabels", {})["pod-template-hash"] = digest
        rs = self.api("POST", f"{apps}/replicasets", {
            "apiVersion": "apps/v1", "kind": "ReplicaSet",
            "metadata": {"name": name, "labels": template["metadata"]["labels"], **owned,
                         "annotations": {"deployment.kubernetes.io/revision": str(meta.get("generation", 1))}},
            "spec": {"replicas": count, "selector": selector, "template": template}})
        self.api("PATCH", f"{apps}/replicasets/{name}/status", {"status": {
            "replicas": count, "observedGeneration": 1}}, MERGE)
        pods = []
        for index in range(count):
            pod_name = f"{name}-{index:05d}"[-63:]
            self.api("POST", f"/api/v1/namespaces/{namespace}/pods", {
                "apiVersion": "v1", "kind": "Pod",
                "metadata": {"name": pod_name, "labels": template["metadata"]["labels"], "ownerReferences": [
                    {"apiVersion": "apps/v1", "kind": "ReplicaSet", "name": name, "uid": rs["metadata"]["uid"],
                     "controller": True, "blockOwnerDeletion": True}]},
                "spec": template.get("spec") or {}})
            status = pod_status or {
                "phase": "Running" if "running" in ((container or {}).get("state") or {}) else "Pending",
                "conditions": [{"type": "Ready", "status": "False"}],
                "containerStatuses": [dict({"image": c.get("image", ""), "restartCount": 0}, **(container or {}),
                                           name=c["name"], ready=False)
                                      for c in (template.get("spec") or {}).get("containers") or []]}
            pods.append(self.api("PATCH", f"/api/v1/namespaces/{namespace}/pods/{pod_name}/status",
                                 {"status": status}, MERGE))
        self.api("PATCH", f"{apps}/deployments/{deployment}/status", {"status": {
            "observedGeneration": meta.get("generation", 1), "replicas": count, "updatedReplicas": count,
            "readyReplicas": 0, "availableReplicas": 0, "unavailableReplicas": count,
            "conditions": [{"type": "Progressing", "status": "True", "reason": "ReplicaSetUpdated",
                            "message": f'ReplicaSet "{name}" is progressing.'},
                           {"type": "Available", "status": "False", "reason": "MinimumReplicasUnavailable",
                            "message": "Deployment does not have minimum availability."}]}}, MERGE)
        return pods

    @contextlib.contextmanager
    def kubelet(self, namespace: str, deployment: str, container: dict[str, Any] | None,
                then: Callable[[dict], None] | None = None, interval: float = 0.2,
                pod_status: dict[str, Any] | None = None) -> Iterator[None]:
        """While the block runs, roll out the Deployment's current template as `roll_out` does
        whenever helm has applied a new one, calling `then(pod)` once for each Pod made (to add
        its events or logs, as the kubelet would)."""
        seen: set[str] = set()

        def step() -> None:
            for pod in self.roll_out(namespace, deployment, container, pod_status=pod_status):
                if then and pod["metadata"]["uid"] not in seen:
                    seen.add(pod["metadata"]["uid"])
                    then(pod)

        with in_background(step, interval):
            yield

    def event(self, involved: dict, reason: str, message: str, type: str = "Warning", count: int = 1) -> None:
        """A core/v1 Event about an object, as the kubelet or a controller records one."""
        meta = involved["metadata"]
        now = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
        self.api("POST", f"/api/v1/namespaces/{meta['namespace']}/events", {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{meta['name']}.{uuid.uuid4().hex[:12]}"},
            "involvedObject": {"apiVersion": involved.get("apiVersion", "v1"), "kind": involved.get("kind", "Pod"),
                               "name": meta["name"], "namespace": meta["namespace"], "uid": meta["uid"]},
            "reason": reason, "message": message, "type": type, "count": count,
            "firstTimestamp": now, "lastTimestamp": now, "source": {"component": "kubelet"}})

    def set_log(self, namespace: str, pod: str, container: str, text: str, previous: bool = False) -> None:
        """What GET pods/{pod}/log serves for the container (previous: its last terminated instance)."""
        self.requires_emulator("container logs")
        self._call("POST", "/_emu/logs", {"namespace": namespace, "pod": pod, "container": container,
                                          "previous": previous, "text": text})

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


@contextlib.contextmanager
def in_background(step: Callable[[], object], interval: float) -> Iterator[None]:
    """While the block runs, call step() every `interval` seconds in a thread (a controller's
    loop); an unreachable API in between is only a missed turn."""
    stop = threading.Event()

    def loop() -> None:
        while not stop.is_set():
            try:
                step()
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
