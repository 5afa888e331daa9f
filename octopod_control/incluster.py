"""In-cluster access for helm and kubectl: one kubeconfig for the pod's service account.

kubectl ignores the in-cluster configuration as soon as a client flag such as
--request-timeout is given (kubernetes/kubernetes#93474) and then talks to
localhost:8080. So when there is no KUBECONFIG setting and no ~/.kube/config (the
rule kube.load_credentials follows too), helm and kubectl get KUBECONFIG pointing
at a kubeconfig written for the service account: the server from
KUBERNETES_SERVICE_HOST/PORT, the CA and the token as file paths in
KUBE_SERVICE_ACCOUNT_DIR (so kubelet's token rotation keeps working and no secret
is copied), the namespace from that directory's `namespace` file. It lives in our
private per-user directory (locks.runtime_dir) and is rewritten, atomically, only
when its content changes.
"""
from __future__ import annotations

import hashlib
import json
import os
from typing import TYPE_CHECKING, Mapping

from .config import SCHEMA

if TYPE_CHECKING:
    from .settings import Settings

DEFAULT_SERVICE_ACCOUNT_DIR = SCHEMA["KUBE_SERVICE_ACCOUNT_DIR"].default
NOT_A_POD = "KUBECONFIG is not set and this is not a pod with a service account"
FILE_NAME_PREFIX = "in-cluster-"


def applies(kubeconfig: str) -> bool:
    """Whether helm, kubectl and our API reader fall back to the pod's service account:
    no KUBECONFIG setting and no ~/.kube/config."""
    if kubeconfig.strip():
        return False
    return not os.path.isfile(os.path.join(os.path.expanduser("~"), ".kube", "config"))


def account_dir(environ: Mapping[str, str]) -> str:
    return (environ.get("KUBE_SERVICE_ACCOUNT_DIR") or "").strip() or DEFAULT_SERVICE_ACCOUNT_DIR


def server(environ: Mapping[str, str]) -> str | None:
    """https://host:port of the API from the pod's environment; None outside a pod."""
    host = (environ.get("KUBERNETES_SERVICE_HOST") or "").strip()
    if not host:
        return None
    port = (environ.get("KUBERNETES_SERVICE_PORT") or "").strip() or "443"
    if ":" in host and not host.startswith("["):
        host = f"[{host}]"  # IPv6
    return f"https://{host}:{port}"


def _kubeconfig_text(environ: Mapping[str, str]) -> str | None:
    """The service account's kubeconfig (JSON, which is YAML); None outside a pod."""
    url = server(environ)
    if url is None:
        return None
    directory = account_dir(environ)
    context = {"cluster": "in-cluster", "user": "service-account"}
    try:
        with open(os.path.join(directory, "namespace"), encoding="utf-8") as handle:
            namespace = handle.read().strip()
        if namespace:
            context["namespace"] = namespace
    except (OSError, UnicodeDecodeError):
        pass  # optional, as for client-go: every command we run names its namespace
    return json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "in-cluster",
        "clusters": [{"name": "in-cluster", "cluster": {
            "server": url, "certificate-authority": os.path.join(directory, "ca.crt")}}],
        "users": [{"name": "service-account", "user": {"tokenFile": os.path.join(directory, "token")}}],
        "contexts": [{"name": "in-cluster", "context": context}],
    }, indent=2) + "\n"


def tool_environ(settings: "Settings") -> dict[str, str]:
    """The environment for helm and kubectl: settings.environ(), an empty KUBECONFIG
    removed, and in a pod without a kubeconfig KUBECONFIG set to the service
    account's generated kubeconfig. Outside a pod the tools keep their own defaults
    (init's `helm repo add` needs no cluster); our API reader says what is missing."""
    env = settings.environ()
    if env.get("KUBECONFIG", "").strip():
        return env
    env.pop("KUBECONFIG", None)
    if not applies(""):
        return env
    text = _kubeconfig_text(env)
    if text is None:
        return env
    from . import files, locks  # only in a pod without a kubeconfig

    # Named by its content: two runs under one uid with other service accounts (or API
    # addresses) never overwrite the file the other's helm is about to read.
    digest = hashlib.sha256(text.encode()).hexdigest()[:16]
    path = locks.runtime_dir() / f"{FILE_NAME_PREFIX}{digest}.kubeconfig"
    files.write_atomic(path, text.encode(), 0o600)  # a no-op when already so
    env["KUBECONFIG"] = str(path)
    return env
