"""A small, fast Kubernetes API reader: kubeconfig or in-cluster credentials, JSON over HTTPS.

Reads go straight to the API (no kubectl process per read), one request a
list, each bounded by KUBE_TIMEOUT. Supports what kubeconfigs carry in
practice: server CA (data or file), insecure-skip-tls-verify, bearer token
(inline or file), client certificate and key (data or file), basic auth, and
exec credential plugins.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import subprocess
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import http1
from .errors import ConfigError, ExternalError

SERVICE_ACCOUNT = "/var/run/secrets/kubernetes.io/serviceaccount"


class NotFound(ExternalError):
    pass


@dataclass
class Credentials:
    server: str
    ca_data: bytes | None = None
    insecure: bool = False
    token: str | None = None
    token_file: str | None = None
    cert_data: bytes | None = None
    key_data: bytes | None = None
    basic: tuple[str, str] | None = None
    default_namespace: str = "default"


def _read_bytes(data: str | None, path: str | None, base: str) -> bytes | None:
    if data:
        return base64.b64decode(data)
    if path:
        full = path if os.path.isabs(path) else os.path.join(base, path)
        try:
            with open(full, "rb") as handle:
                return handle.read()
        except OSError as exc:
            raise ConfigError(f"kubeconfig: cannot read {full}: {exc.strerror}") from None
    return None


def _exec_token(spec: Mapping[str, Any], timeout: float) -> str:
    argv = [spec["command"], *spec.get("args", [])]
    env = dict(os.environ)
    env.update({e["name"]: e["value"] for e in spec.get("env") or []})
    try:
        done = subprocess.run(argv, env=env, capture_output=True, timeout=timeout, check=False)
    except FileNotFoundError:
        raise ExternalError(f"kubeconfig exec plugin {argv[0]} not found") from None
    except subprocess.TimeoutExpired:
        raise ExternalError(f"kubeconfig exec plugin {argv[0]}: timed out after {timeout:g}s") from None
    if done.returncode != 0:
        raise ExternalError(f"kubeconfig exec plugin {argv[0]} failed with exit code {done.returncode}")
    try:
        return json.loads(done.stdout)["status"]["token"]
    except (ValueError, KeyError, TypeError):
        raise ExternalError(f"kubeconfig exec plugin {argv[0]}: no token in its output") from None


def load_credentials(kubeconfig: str, timeout: float) -> Credentials:
    """Credentials of the current context, found as kubectl and helm find it.

    KUBECONFIG (its first file), else ~/.kube/config when it exists, else the pod's
    service account.
    """
    if not kubeconfig:
        default = os.path.join(os.path.expanduser("~"), ".kube", "config")
        if not os.path.isfile(default):
            return _in_cluster()
        kubeconfig = default
    path = kubeconfig.split(os.pathsep)[0]
    try:
        with open(path, "rb") as handle:
            raw = handle.read()
    except OSError as exc:
        raise ConfigError(f"KUBECONFIG: cannot read {path}: {exc.strerror}") from None
    import yaml  # kubeconfigs are YAML; only the API reader needs it

    try:
        config = yaml.load(raw, Loader=getattr(yaml, "CSafeLoader", yaml.SafeLoader)) or {}
    except yaml.YAMLError:
        raise ConfigError(f"KUBECONFIG: {path} is not valid YAML") from None
    base = os.path.dirname(os.path.abspath(path))
    try:
        context = _named(config, "contexts", config.get("current-context"))["context"]
        cluster = _named(config, "clusters", context["cluster"])["cluster"]
        user = _named(config, "users", context.get("user"))["user"] if context.get("user") else {}
    except (KeyError, TypeError):
        raise ConfigError(f"KUBECONFIG: {path} has no usable current context") from None
    creds = Credentials(
        server=cluster["server"].rstrip("/"),
        ca_data=_read_bytes(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"), base),
        insecure=bool(cluster.get("insecure-skip-tls-verify")),
        token=user.get("token"),
        token_file=user.get("tokenFile"),
        cert_data=_read_bytes(user.get("client-certificate-data"), user.get("client-certificate"), base),
        key_data=_read_bytes(user.get("client-key-data"), user.get("client-key"), base),
        default_namespace=context.get("namespace") or "default",
    )
    if user.get("username") and user.get("password"):
        creds.basic = (user["username"], user["password"])
    if user.get("exec"):
        creds.token = _exec_token(user["exec"], timeout)
    return creds


def _named(config: Mapping[str, Any], section: str, name: str | None) -> Mapping[str, Any]:
    for entry in config.get(section) or []:
        if entry.get("name") == name:
            return entry
    raise KeyError(name)


def _in_cluster() -> Credentials:
    host, port = os.environ.get("KUBERNETES_SERVICE_HOST"), os.environ.get("KUBERNETES_SERVICE_PORT", "443")
    if not host:
        raise ConfigError("KUBECONFIG is not set and this is not a pod with a service account")
    if ":" in host:
        host = f"[{host}]"
    ca = _read_bytes(None, os.path.join(SERVICE_ACCOUNT, "ca.crt"), "/")
    return Credentials(server=f"https://{host}:{port}", ca_data=ca,
                       token_file=os.path.join(SERVICE_ACCOUNT, "token"))


@dataclass
class KubeClient:
    """GET/LIST/PATCH/DELETE against one API server, counting the requests it makes."""

    creds: Credentials
    timeout: float
    requests: int = 0
    _conn: http1.Connection | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, kubeconfig: str, timeout: float) -> "KubeClient":
        return cls(load_credentials(kubeconfig, timeout), timeout)

    # -- transport
    def _connection(self) -> http1.Connection:
        if self._conn is None:
            url = urllib.parse.urlsplit(self.creds.server)
            if url.scheme == "https":
                self._conn = http1.Connection(url.hostname, url.port or 443, self.timeout, self._tls())
            else:
                self._conn = http1.Connection(url.hostname, url.port or 80, self.timeout)
        return self._conn

    def _tls(self) -> ssl.SSLContext:
        context = ssl.create_default_context()
        if self.creds.insecure:
            context.check_hostname = False
            context.verify_mode = ssl.CERT_NONE
        elif self.creds.ca_data:
            context.load_verify_locations(cadata=self.creds.ca_data.decode("ascii", "replace"))
        if self.creds.cert_data and self.creds.key_data:
            # ssl only loads client certificates from files: a private dir, removed at once.
            import tempfile  # here: importing it costs every check ~5 ms, and few kubeconfigs need it

            with tempfile.TemporaryDirectory(prefix="octopod-tls-") as tmp:
                cert, key = os.path.join(tmp, "cert.pem"), os.path.join(tmp, "key.pem")
                for path, data in ((cert, self.creds.cert_data), (key, self.creds.key_data)):
                    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    with os.fdopen(fd, "wb") as handle:
                        handle.write(data)
                context.load_cert_chain(cert, key)
        return context

    def _headers(self, content_type: str | None = None) -> dict[str, str]:
        headers = {"Accept": "application/json", "User-Agent": "octopod-control"}
        token = self.creds.token
        if not token and self.creds.token_file:
            try:
                with open(self.creds.token_file) as handle:
                    token = handle.read().strip()
            except OSError as exc:
                raise ConfigError(f"cannot read the service account token: {exc.strerror}") from None
        if token:
            headers["Authorization"] = f"Bearer {token}"
        elif self.creds.basic:
            pair = ":".join(self.creds.basic).encode()
            headers["Authorization"] = "Basic " + base64.b64encode(pair).decode()
        if content_type:
            headers["Content-Type"] = content_type
        return headers

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                body: Any = None, content_type: str = "application/json") -> Any:
        """One API call; returns the decoded JSON. 404 raises NotFound."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        payload = json.dumps(body).encode() if body is not None else None
        self.requests += 1
        what = f"{method} {path}"
        try:
            conn = self._connection()
            conn.request(method, path + query, body=payload,
                         headers=self._headers(content_type if payload is not None else None))
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            self.close()
            raise ExternalError(f"Kubernetes API {self.creds.server}: {what} timed out after "
                                f"{self.timeout:g}s") from None
        except ssl.SSLError as exc:
            self.close()
            raise ExternalError(f"Kubernetes API {self.creds.server}: TLS error: {exc.reason}") from None
        except (OSError, http1.ProtocolError) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ExternalError(f"Kubernetes API {self.creds.server} unreachable: {reason}") from None
        if response.status == 404:
            raise NotFound(f"{what}: not found")
        if response.status >= 400:
            raise ExternalError(f"Kubernetes API: {what}: {response.status} {_status_message(data)}")
        return json.loads(data) if data else None

    def get(self, path: str) -> dict | None:
        """An object, or None when it does not exist."""
        try:
            return self.request("GET", path)
        except NotFound:
            return None

    def list(self, path: str, label_selector: str | None = None) -> list[dict]:
        """Every item of a collection (following continue tokens); [] for a missing namespace."""
        items: list[dict] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        while True:
            try:
                page = self.request("GET", path, params) or {}
            except NotFound:
                return items
            items.extend(page.get("items") or [])
            token = (page.get("metadata") or {}).get("continue")
            if not token:
                return items
            params["continue"] = token

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


def _status_message(data: bytes) -> str:
    try:
        return json.loads(data).get("message", "")[:300]
    except (ValueError, AttributeError):
        return data[:200].decode("utf-8", "replace")


def client_for(settings: Any) -> KubeClient:
    return KubeClient.from_environment(settings.text("KUBECONFIG"), settings.kube_timeout)


def belongs_to_release(obj: Mapping[str, Any], release: str) -> bool:
    """True for an object helm made for the release (helm 3+ annotates every one it manages),
    or one labelled with the release as its instance (StatefulSet PVCs, hand-made objects)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return (annotations.get("meta.helm.sh/release-name") == release
            or labels.get("app.kubernetes.io/instance") == release)
