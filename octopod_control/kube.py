"""A small, fast Kubernetes API reader: kubeconfig or in-cluster credentials, JSON over HTTPS.

Reads go straight to the API (no kubectl process per read), one request a
list page; each call (a GET, or a LIST with all its pages) gets KUBE_TIMEOUT for
the whole exchange, however slowly the server answers. Supports what kubeconfigs carry in
practice: server CA (data or file), insecure-skip-tls-verify, bearer token
(inline or file), client certificate and key (data or file), basic auth, and
exec credential plugins.
"""
from __future__ import annotations

import base64
import binascii
import json
import os
import ssl
import urllib.parse
from dataclasses import dataclass, field
from typing import Any, Mapping

from . import http1, incluster
from .deadline import Deadline
from .errors import ConfigError, ExternalError


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


def _read_bytes(data: str | None, path: str | None, base: str, what: str = "") -> bytes | None:
    if data:
        try:
            return base64.b64decode("".join(data.split()), validate=True)  # line breaks are fine
        except (binascii.Error, ValueError, TypeError, AttributeError):
            raise ConfigError(f"kubeconfig: {what}-data is not valid base64") from None
    if path:
        full = path if os.path.isabs(path) else os.path.join(base, path)
        try:
            with open(full, "rb") as handle:
                return handle.read()
        except (OSError, TypeError) as exc:
            raise ConfigError(f"kubeconfig: cannot read {full}: {getattr(exc, 'strerror', None) or exc}") from None
    return None


def _exec_token(spec: Any, timeout: float, environ: Mapping[str, str] | None) -> str:
    """The bearer token an exec credential plugin prints, run bounded like every child process."""
    from . import process  # subprocess and threads: only kubeconfigs with a plugin pay for them

    if not isinstance(spec, Mapping) or not isinstance(spec.get("command"), str) or not spec["command"]:
        raise ConfigError("kubeconfig: user.exec has no command")
    args, env_entries = spec.get("args") or [], spec.get("env") or []
    if not isinstance(args, list) or not all(isinstance(a, str) for a in args):
        raise ConfigError("kubeconfig: user.exec.args is not a list of strings")
    if not isinstance(env_entries, list) or not all(
            isinstance(e, Mapping) and isinstance(e.get("name"), str) and isinstance(e.get("value"), str)
            for e in env_entries):
        raise ConfigError("kubeconfig: user.exec.env is not a list of name/value entries")
    argv = [spec["command"], *args]
    env = dict(os.environ if environ is None else environ)
    env.update({e["name"]: e["value"] for e in env_entries})
    what = f"kubeconfig exec plugin {argv[0]}"
    done = process.run(argv, timeout=timeout, env=env, merge_stderr=False, what=what)
    if not done.ok:
        said = process.last_line(done.errors) if done.errors.strip() else ""
        raise ExternalError(f"{what} failed with exit code {done.returncode}" + (f": {said}" if said else ""))
    try:
        token = json.loads(done.output)["status"]["token"]
    except (ValueError, KeyError, TypeError):
        token = None
    if not isinstance(token, str) or not token:
        raise ExternalError(f"{what}: no token in its output")
    return token


def load_credentials(kubeconfig: str, timeout: float, environ: Mapping[str, str] | None = None) -> Credentials:
    """Credentials of the current context, found as kubectl and helm find it.

    KUBECONFIG (its first file), else ~/.kube/config when it exists, else the pod's
    service account (KUBE_SERVICE_ACCOUNT_DIR). `environ` is the environment an exec
    credential plugin runs in (Settings.environ(): the .env files count, the bundle's own
    variables do not), and where the in-cluster variables are read.
    Anything unusable in the file is a ConfigError of one line.
    """
    if incluster.applies(kubeconfig):
        return _in_cluster(os.environ if environ is None else environ)
    kubeconfig = kubeconfig or os.path.join(os.path.expanduser("~"), ".kube", "config")
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
        if not isinstance(config, Mapping):
            raise ConfigError("not a mapping")
        context = _section(_named(config, "contexts", config.get("current-context")), "context")
        if not context.get("cluster"):
            raise ConfigError("its current context names no cluster")
        cluster = _section(_named(config, "clusters", context["cluster"]), "cluster")
        user = _section(_named(config, "users", context["user"]), "user") if context.get("user") else {}
        server = cluster.get("server")
        if not isinstance(server, str) or not server.strip():
            raise ConfigError(f"cluster {context['cluster']!r} has no server")
        creds = Credentials(
            server=server.strip().rstrip("/"),
            ca_data=_read_bytes(cluster.get("certificate-authority-data"), cluster.get("certificate-authority"),
                                base, "certificate-authority"),
            insecure=bool(cluster.get("insecure-skip-tls-verify")),
            token=_text(user, "token"),
            token_file=_text(user, "tokenFile"),
            cert_data=_read_bytes(user.get("client-certificate-data"), user.get("client-certificate"),
                                  base, "client-certificate"),
            key_data=_read_bytes(user.get("client-key-data"), user.get("client-key"), base, "client-key"),
        )
        if user.get("username") and user.get("password"):
            creds.basic = (str(user["username"]), str(user["password"]))
        if user.get("exec"):
            creds.token = _exec_token(user["exec"], timeout, environ)
    except ConfigError as exc:
        raise ConfigError(f"KUBECONFIG: {path}: {str(exc).removeprefix('kubeconfig: ')}") from None
    return creds


def _section(entry: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    """entry[key] as a mapping (a context's `context:`, a cluster's `cluster:`...)."""
    value = entry.get(key)
    if not isinstance(value, Mapping):
        raise ConfigError(f"{key} {entry.get('name')!r} has no {key}: mapping")
    return value


def _text(entry: Mapping[str, Any], key: str) -> str | None:
    value = entry.get(key)
    if value is not None and not isinstance(value, str):
        raise ConfigError(f"user.{key} is not a string")
    return value or None


def _named(config: Mapping[str, Any], section: str, name: Any) -> Mapping[str, Any]:
    entries = config.get(section) or []
    if not isinstance(entries, list):
        raise ConfigError(f"{section} is not a list")
    for entry in entries:
        if not isinstance(entry, Mapping):
            raise ConfigError(f"an entry of {section} is not a mapping")
        if entry.get("name") == name:
            return entry
    if not name:
        raise ConfigError("no current-context set")
    raise ConfigError(f"{section[:-1]} {name!r} is not in {section}")


def _in_cluster(environ: Mapping[str, str]) -> Credentials:
    """The service account's credentials: what incluster.py writes for helm and kubectl."""
    server = incluster.server(environ)
    if server is None:
        raise ConfigError(incluster.NOT_A_POD)
    directory = incluster.account_dir(environ)
    ca = _read_bytes(None, os.path.join(directory, "ca.crt"), "/")
    return Credentials(server=server, ca_data=ca, token_file=os.path.join(directory, "token"))


@dataclass
class KubeClient:
    """Reads (GET, paged LIST) from one API server, counting the requests it makes."""

    creds: Credentials
    timeout: float
    requests: int = 0
    _conn: http1.Connection | None = field(default=None, repr=False)

    @classmethod
    def from_environment(cls, kubeconfig: str, timeout: float,
                         environ: Mapping[str, str] | None = None) -> "KubeClient":
        return cls(load_credentials(kubeconfig, timeout, environ), timeout)

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

    def _headers(self) -> dict[str, str]:
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
        return headers

    def request(self, method: str, path: str, params: Mapping[str, str] | None = None,
                deadline: Deadline | None = None, *, text: bool = False) -> Any:
        """One API call without a body (reads go here; changes go through kubectl); returns the
        decoded JSON (with text, the body as text: a container's log), 404 raises NotFound. The
        whole exchange (connect, send, every read) ends by the deadline, by default KUBE_TIMEOUT
        from now."""
        query = f"?{urllib.parse.urlencode(params)}" if params else ""
        self.requests += 1
        what = f"{method} {path}"
        deadline = deadline or Deadline(self.timeout, "KUBE_TIMEOUT")
        try:
            conn = self._connection()
            headers = self._headers()
            if text:
                headers["Accept"] = "text/plain, */*"
            conn.request(method, path + query, headers=headers, deadline=deadline.end)
            response = conn.getresponse()
            data = response.read()
        except TimeoutError:
            self.close()
            raise ExternalError(f"Kubernetes API {self.creds.server}: {what} timed out after "
                                f"{self.timeout:g}s") from None
        except ssl.SSLError as exc:
            self.close()
            detail = getattr(exc, "verify_message", None)  # why the server's certificate is not trusted
            raise ExternalError(f"Kubernetes API {self.creds.server}: TLS error: {exc.reason}"
                                + (f" ({detail})" if detail else "")) from None
        except (OSError, http1.ProtocolError) as exc:
            self.close()
            reason = getattr(exc, "strerror", None) or type(exc).__name__
            raise ExternalError(f"Kubernetes API {self.creds.server} unreachable: {reason}") from None
        if response.status == 404:
            raise NotFound(f"{what}: not found")
        if response.status == 401:  # no credentials, or ones the API does not accept
            raise ExternalError(f"Kubernetes API {self.creds.server} refused our credentials: {what}: "
                                f"401 {_status_message(data) or 'Unauthorized'}")
        if response.status >= 400:
            raise ExternalError(f"Kubernetes API: {what}: {response.status} {_status_message(data)}")
        if text:
            return data.decode("utf-8", "replace")
        return json.loads(data) if data else None

    def list(self, path: str, label_selector: str | None = None,
             field_selector: str | None = None) -> list[dict]:
        """Every item of a collection (following continue tokens); [] for a missing namespace.

        One call: all its pages together get KUBE_TIMEOUT."""
        items: list[dict] = []
        params: dict[str, str] = {"limit": "500"}
        if label_selector:
            params["labelSelector"] = label_selector
        if field_selector:
            params["fieldSelector"] = field_selector
        deadline = Deadline(self.timeout, "KUBE_TIMEOUT")
        while True:
            try:
                page = self.request("GET", path, params, deadline) or {}
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
    return KubeClient.from_environment(settings.text("KUBECONFIG"), settings.kube_timeout, settings.environ())


def belongs_to_release(obj: Mapping[str, Any], release: str) -> bool:
    """True for an object helm made for the release (helm 3+ annotates every one it manages),
    or one labelled with the release as its instance (StatefulSet PVCs, hand-made objects)."""
    meta = obj.get("metadata") or {}
    annotations = meta.get("annotations") or {}
    labels = meta.get("labels") or {}
    return (annotations.get("meta.helm.sh/release-name") == release
            or labels.get("app.kubernetes.io/instance") == release)
