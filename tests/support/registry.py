"""Real OCI registries for the tag_check tests and bench: Debian's `docker-registry` (distribution 2.8).

One storage directory is filled once through an open registry (images pushed over
the registry API with urllib: blobs, then manifests; no Docker needed), then
served by registries in three modes on 127.0.0.1: open, htpasswd Basic, and
token (`auth: token:`, the realm being `TokenServer` in this process, issuing
ES256 JWTs signed by a test key whose self-signed certificate is the
registry's `rootcertbundle`). Each registry is a child process stopped by PID.
`FakeRegistry` scripts answers a real one cannot give (503, 429, silence).
"""
from __future__ import annotations

import base64
import datetime
import hashlib
import http.server
import json
import os
import re
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from octopod_dev import processes

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
ACCEPT = f"{OCI_INDEX}, {OCI_MANIFEST}, application/vnd.docker.distribution.manifest.list.v2+json, {DOCKER_MANIFEST}"
# tag -> the manifest kind tag_check reports for it
TAGS = {"oci": "OCI manifest", "multi": "OCI index", "docker": "Docker v2 manifest"}
USER, PASSWORD = "octo", "s3cret-Pa55word-never-printed"
SERVICE, ISSUER = "test-registry", "test-issuer"


# -- the registry process ------------------------------------------------------------------

@dataclass
class Registry:
    url: str
    host: str  # 127.0.0.1:PORT, as an image reference names it
    proc: subprocess.Popen = field(repr=False)

    def stop(self) -> None:
        processes.stop(self.proc)


# distribution logs the address it bound (Go's listener address: the real port for `:0`) at info.
LISTENING = re.compile(rb'msg="listening on (127\.0\.0\.1:\d+)"')


def start_registry(workdir: Path, storage: Path, auth: dict | None = None) -> Registry:
    """`docker-registry serve` on 127.0.0.1 port 0 (the kernel picks a free port; no probe and
    race): the port it got is read from its log. Returns once it answers /v2/."""
    workdir.mkdir(parents=True, exist_ok=True)
    config = {
        "version": 0.1,
        # info, for the "listening on" line; the access log stays off.
        "log": {"level": "info", "formatter": "text", "accesslog": {"disabled": True}},
        "storage": {"filesystem": {"rootdirectory": str(storage)}, "delete": {"enabled": True}},
        "http": {"addr": "127.0.0.1:0", "secret": uuid.uuid4().hex},
    }
    if auth:
        config["auth"] = auth
    path = workdir / "config.yml"
    path.write_text(json.dumps(config))  # JSON is YAML
    # A clean environment: distribution reads REGISTRY_* variables as configuration overrides.
    env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(workdir)}
    log_path = workdir / "registry.log"
    log = open(log_path, "wb")
    proc = subprocess.Popen(["docker-registry", "serve", str(path)], stdout=log, stderr=log,
                            env=env, cwd=workdir)
    log.close()
    deadline = time.monotonic() + 60
    registry: Registry | None = None
    while time.monotonic() < deadline and proc.poll() is None:
        if registry is None:
            found = LISTENING.search(log_path.read_bytes())
            if found:
                host = found.group(1).decode()
                registry = Registry(f"http://{host}", host, proc)
            else:
                time.sleep(0.02)
                continue
        try:
            urllib.request.urlopen(registry.url + "/v2/", timeout=5).close()
            return registry
        except urllib.error.HTTPError:
            return registry  # 401: up, and asking for auth
        except OSError:
            time.sleep(0.05)
    processes.stop(proc)
    raise RuntimeError(f"docker-registry did not start: {log_path.read_text()[-2000:]}")


def htpasswd_file(path: Path, user: str = USER, password: str = PASSWORD) -> Path:
    line = subprocess.run(["htpasswd", "-Bbn", user, password], check=True, capture_output=True,
                          text=True, timeout=30).stdout.strip()
    path.write_text(line + "\n")
    return path


def basic_auth(htpasswd: Path) -> dict:
    return {"htpasswd": {"realm": "octopod-test", "path": str(htpasswd)}}


def token_auth(realm: str, bundle: Path) -> dict:
    return {"token": {"realm": realm, "service": SERVICE, "issuer": ISSUER,
                      "rootcertbundle": str(bundle)}}


# -- pushing over the registry API ---------------------------------------------------------

def _call(method: str, url: str, data: bytes | None = None, headers: dict | None = None):
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    return urllib.request.urlopen(request, timeout=10)


def digest_of(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def push_blob(base: str, repo: str, data: bytes) -> dict:
    with _call("POST", f"{base}/v2/{repo}/blobs/uploads/", b"") as response:
        location = response.headers["Location"]
    if location.startswith("/"):
        location = base + location
    digest = digest_of(data)
    sep = "&" if "?" in location else "?"
    _call("PUT", f"{location}{sep}digest={digest}", data,
          {"Content-Type": "application/octet-stream"}).close()
    return {"digest": digest, "size": len(data)}


def push_manifest(base: str, repo: str, reference: str, media_type: str, manifest: dict) -> dict:
    body = json.dumps(manifest).encode()
    _call("PUT", f"{base}/v2/{repo}/manifests/{reference}", body, {"Content-Type": media_type}).close()
    return {"mediaType": media_type, "digest": digest_of(body), "size": len(body)}


def _image(base: str, repo: str, arch: str, docker: bool = False) -> tuple[str, dict]:
    config = json.dumps({"architecture": arch, "os": "linux",
                         "rootfs": {"type": "layers", "diff_ids": []}}).encode()
    layer = f"layer {repo} {arch} {docker}".encode() * 8
    manifest = {
        "schemaVersion": 2,
        "mediaType": DOCKER_MANIFEST if docker else OCI_MANIFEST,
        "config": {"mediaType": DOCKER_CONFIG if docker else OCI_CONFIG, **push_blob(base, repo, config)},
        "layers": [{"mediaType": DOCKER_LAYER if docker else OCI_LAYER, **push_blob(base, repo, layer)}],
    }
    return manifest["mediaType"], manifest


def push_images(base: str, repo: str) -> None:
    """Tags `oci` (OCI manifest), `multi` (OCI index of two platforms), `docker` (Docker v2)."""
    push_manifest(base, repo, "oci", *_image(base, repo, "amd64"))
    entries = []
    for arch in ("amd64", "arm64"):
        media_type, manifest = _image(base, repo, arch)
        digest = digest_of(json.dumps(manifest).encode())
        entry = push_manifest(base, repo, digest, media_type, manifest)
        entries.append({**entry, "platform": {"architecture": arch, "os": "linux"}})
    push_manifest(base, repo, "multi", OCI_INDEX,
                  {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries})
    push_manifest(base, repo, "docker", *_image(base, repo, "amd64", docker=True))


# -- the token server (the realm of a registry in token mode) ------------------------------

class SigningKey:
    """An ES256 key, its self-signed certificate, and distribution's libtrust key id."""

    def __init__(self) -> None:
        from cryptography import x509
        from cryptography.hazmat.primitives import hashes, serialization
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.x509.oid import NameOID

        self.key = ec.generate_private_key(ec.SECP256R1())
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "octopod test token issuer")])
        now = datetime.datetime.now(datetime.timezone.utc)
        cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name)
                .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(days=1))
                .not_valid_after(now + datetime.timedelta(days=30))
                .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                .sign(self.key, hashes.SHA256()))
        self.cert_pem = cert.public_bytes(serialization.Encoding.PEM)
        der = self.key.public_key().public_bytes(serialization.Encoding.DER,
                                                 serialization.PublicFormat.SubjectPublicKeyInfo)
        b32 = base64.b32encode(hashlib.sha256(der).digest()[:30]).decode().rstrip("=")
        self.kid = ":".join(b32[i:i + 4] for i in range(0, len(b32), 4))

    def jwt(self, claims: dict) -> str:
        from cryptography.hazmat.primitives import hashes
        from cryptography.hazmat.primitives.asymmetric import ec
        from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

        def b64(data: bytes) -> str:
            return base64.urlsafe_b64encode(data).decode().rstrip("=")

        header = {"typ": "JWT", "alg": "ES256", "kid": self.kid}
        signing_input = b64(json.dumps(header).encode()) + "." + b64(json.dumps(claims).encode())
        r, s = decode_dss_signature(self.key.sign(signing_input.encode(), ec.ECDSA(hashes.SHA256())))
        return signing_input + "." + b64(r.to_bytes(32, "big") + s.to_bytes(32, "big"))


class TokenServer:
    """GET /token (Basic or anonymous) and POST /token (refresh_token grant), as a realm does.

    Anonymous callers get pull access to repositories under `public/` only; `USER` with
    `PASSWORD`, or the refresh token `identity_token`, gets pull and push on everything.
    """

    identity_token = "idt-" + "7" * 24

    def __init__(self, key: SigningKey) -> None:
        self.key = key
        # Since the server started: the module's tests share it, so a test asserts on `watch()`.
        self.requests: list[tuple[str, str]] = []  # (method, path) of every call
        self.with_credentials: list[bool] = []  # per GET: did the caller send credentials?
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_GET(self) -> None:
                server.requests.append(("GET", self.path))
                server.with_credentials.append(bool(self.headers.get("Authorization")))
                user = server._basic_user(self.headers.get("Authorization", ""))
                self._answer(user, dict(_query(self.path.partition("?")[2])))

            def do_POST(self) -> None:
                server.requests.append(("POST", self.path))
                length = int(self.headers.get("Content-Length") or 0)
                form = dict(_query(self.rfile.read(length).decode()))
                ok = (form.get("grant_type") == "refresh_token"
                      and form.get("refresh_token") == server.identity_token)
                self._answer(USER if ok else None, form)

            def _answer(self, user: str | None | bool, params: dict) -> None:
                if user is False:  # credentials given, and wrong
                    return self._send(401, {"errors": [{"code": "UNAUTHORIZED"}]})
                scope = params.get("scope", "")
                self._send(200, {"token": server.token(user, scope), "expires_in": 300})

            def _send(self, status: int, body: dict) -> None:
                data = json.dumps(body).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/token"
        self.thread = threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def watch(self) -> "TokenServerView":
        """What this server receives from now on (and nothing another test caused before)."""
        return TokenServerView(self, len(self.requests), len(self.with_credentials))

    @staticmethod
    def _basic_user(header: str) -> str | None | bool:
        if not header.startswith("Basic "):
            return None
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user if (user, password) == (USER, PASSWORD) else False

    def token(self, user: str | None, scope: str) -> str:
        access = []
        for item in scope.split():
            kind, _, rest = item.partition(":")
            name, _, actions = rest.rpartition(":")
            if user:
                allowed = actions.split(",")
            else:
                allowed = ["pull"] if name.startswith("public/") and "pull" in actions else []
            access.append({"type": kind, "name": name, "actions": allowed})
        now = int(time.time())
        return self.key.jwt({"iss": ISSUER, "sub": user or "", "aud": SERVICE, "exp": now + 300,
                             "nbf": now - 10, "iat": now, "jti": uuid.uuid4().hex, "access": access})

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


@dataclass
class TokenServerView:
    """One test's view of a shared TokenServer: the requests since `TokenServer.watch()`."""
    server: TokenServer
    first_request: int
    first_get: int

    @property
    def requests(self) -> list[tuple[str, str]]:
        return self.server.requests[self.first_request:]

    @property
    def with_credentials(self) -> list[bool]:
        return self.server.with_credentials[self.first_get:]


def _query(text: str) -> list[tuple[str, str]]:
    from urllib.parse import parse_qsl

    return parse_qsl(text, keep_blank_values=True)


# -- everything together -------------------------------------------------------------------

@dataclass
class Registries:
    open: Registry
    basic: Registry
    token: Registry
    token_server: TokenServer
    repos: tuple[str, ...] = ("team/app", "public/app")

    def stop(self) -> None:
        for registry in (self.open, self.basic, self.token):
            registry.stop()
        self.token_server.stop()


def start_registries(workdir: Path) -> Registries:
    """Open, Basic and token registries over one storage holding `team/app` and `public/app`."""
    storage = workdir / "storage"
    storage.mkdir(parents=True)
    started: list[Callable[[], None]] = []
    try:
        open_ = start_registry(workdir / "open", storage)
        started.append(open_.stop)
        for repo in Registries.repos:
            push_images(open_.url, repo)
        basic = start_registry(workdir / "basic", storage,
                               basic_auth(htpasswd_file(workdir / "htpasswd")))
        started.append(basic.stop)
        key = SigningKey()
        bundle = workdir / "token-cert.pem"
        bundle.write_bytes(key.cert_pem)
        server = TokenServer(key)
        started.append(server.stop)
        token = start_registry(workdir / "token", storage, token_auth(server.url, bundle))
    except BaseException:
        for stop in reversed(started):
            stop()
        raise
    return Registries(open_, basic, token, server)


# -- scripted answers a real registry will not give ---------------------------------------

def bearer_challenge(realm: str, service: str = SERVICE) -> Callable[[str, str], tuple[int, dict]]:
    """A FakeRegistry answer: 401 to everything, naming `realm` and `service` for tokens."""
    header = f'Bearer realm="{realm}",service="{service}"'
    return lambda method, path: (401, {"WWW-Authenticate": header})


class FakeRegistry:
    """Answers every request with `respond(method, path) -> (status, headers)`; counts requests.

    `silent=True` accepts connections and never answers (a hung registry).
    """

    def __init__(self, respond: Callable[[str, str], tuple[int, dict]] | None = None,
                 silent: bool = False) -> None:
        self.requests: list[tuple[str, str]] = []
        self.authorizations: list[str] = []  # the Authorization header of every request ('' if none)
        if silent:
            self.sock = socket.socket()
            self.sock.bind(("127.0.0.1", 0))
            self.sock.listen(16)  # the kernel completes handshakes; nobody ever reads
            self.host = f"127.0.0.1:{self.sock.getsockname()[1]}"
            self.httpd = None
            return
        fake = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args) -> None:
                pass

            def do_HEAD(self) -> None:
                fake.requests.append(("HEAD", self.path))
                fake.authorizations.append(self.headers.get("Authorization", ""))
                status, headers = respond("HEAD", self.path)
                self.send_response(status)
                for name, value in {"Content-Length": "0", **headers}.items():
                    self.send_header(name, value)
                self.end_headers()

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.host = f"127.0.0.1:{self.httpd.server_address[1]}"
        threading.Thread(target=self.httpd.serve_forever, args=(0.05,), daemon=True).start()

    def stop(self) -> None:
        if self.httpd is not None:
            self.httpd.shutdown()
            self.httpd.server_close()
        else:
            self.sock.close()
