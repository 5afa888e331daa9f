"""OCI registry access for tag_check: image references, credentials, one manifest HEAD.

Light on imports (HTTP through http1, the client check uses; ssl only for https; a
credential helper is spawned only when a registry asks for credentials) because
tag_check's latency is what the Octopod user waits for. Cost per image: HEAD, then on a 401
either a Basic retry (2 round trips) or a token fetch and a retry (3). Later
images of the same registry reuse the challenge, the connection and the tokens.
No message ever holds a password, token or Authorization header.

Tokens and credentials stay with the registry they are for. A token is cached
per registry host (and realm, service, scope, credential source), so a registry
that names another registry's realm and service never receives a token fetched
for the other. Credentials go to a token realm only on the registry's own host, the
realm its operator publishes (Docker Hub's auth.docker.io, gitlab.com) or one
REGISTRY_TOKEN_REALMS lists (`realm_trusted`); any other realm is asked for an
anonymous token, since a registry could otherwise send our credentials for it to
any server it names.
"""
from __future__ import annotations

import base64
import json
import os
import re
import socket
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Mapping
from urllib.parse import SplitResult, urlencode, urlsplit

from . import http1
from .deadline import Deadline
from .errors import ConfigError, ExternalError, OctopodError
from .log import warn
from .settings import FALSE_WORDS, TRUE_WORDS

# Every manifest kind a tag may point at; a multi-arch tag (index/list) counts as present.
# Schema1 last, for very old images: without it 2.8 would answer such a tag 404.
MANIFEST_TYPES = {
    "application/vnd.oci.image.index.v1+json": "OCI index",
    "application/vnd.oci.image.manifest.v1+json": "OCI manifest",
    "application/vnd.docker.distribution.manifest.list.v2+json": "Docker manifest list",
    "application/vnd.docker.distribution.manifest.v2+json": "Docker v2 manifest",
    "application/vnd.docker.distribution.manifest.v1+prettyjws": "Docker v1 manifest",
}
ACCEPT = ", ".join(MANIFEST_TYPES)
DOCKER_HUB = "docker.io"
HUB_API = "registry-1.docker.io"
HUB_CONFIG_KEY = "https://index.docker.io/v1/"  # the key `docker login` writes for Docker Hub
_HUB_ALIASES = {"docker.io", "index.docker.io", "registry-1.docker.io"}
_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")  # distribution's path component
_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9-]+)*|\[[0-9A-Fa-f:.]+\])"
                   r"(?::[0-9]{1,5})?")
_MAX_BODY = 1 << 20
_USER_AGENT = "octopod-control-tag-check"


class TagMissing(OctopodError):
    """The registry answered, and the tag is not there."""


class RegistryError(ExternalError):
    """The registry could not tell: auth, rate limit, server error, unreachable, timeout."""

    def __init__(self, kind: str, message: str) -> None:
        super().__init__(message)
        self.kind = kind  # auth | rate-limit | server | unreachable | timeout | protocol


# -- image references -------------------------------------------------------------------

@dataclass(frozen=True)
class ImageRef:
    name: str  # as configured, for messages
    registry: str  # host[:port]; docker.io for Docker Hub
    repository: str  # library/nginx

    @property
    def api_host(self) -> str:
        return HUB_API if self.registry == DOCKER_HUB else self.registry


def parse_reference(text: str) -> ImageRef:
    """Resolve an image name the way docker does (`nginx` -> docker.io/library/nginx)."""
    name = text.strip()
    bad = f"REGISTRY_IMAGES: {name!r}"
    if not name:
        raise ConfigError("REGISTRY_IMAGES: empty image name")
    if "://" in name:
        raise ConfigError(f"{bad}: no scheme (REGISTRY_INSECURE=true selects plain http)")
    if "@" in name:
        raise ConfigError(f"{bad}: list images without a digest; the tag comes from --tag")
    first, slash, rest = name.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        if not _HOST.fullmatch(first):
            raise ConfigError(f"{bad}: {first!r} is not a valid registry host")
        registry, path = first.lower(), rest
    else:
        registry, path = DOCKER_HUB, name
    if registry in _HUB_ALIASES:
        registry = DOCKER_HUB
        if "/" not in path:
            path = f"library/{path}"
    if ":" in path:
        raise ConfigError(f"{bad}: list images without a tag; the tag comes from --tag")
    if not all(_COMPONENT.fullmatch(part) for part in path.split("/")) or len(path) > 255:
        raise ConfigError(f"{bad}: {path!r} is not a valid repository name (lower-case, digits, . _ - /)")
    return ImageRef(name, registry, path)


def parse_images(raw: str) -> list[ImageRef]:
    """REGISTRY_IMAGES: comma-separated; duplicates checked once."""
    images: dict[tuple[str, str], ImageRef] = {}
    for item in raw.split(","):
        if item.strip():
            ref = parse_reference(item)
            images.setdefault((ref.registry, ref.repository), ref)
    return list(images.values())


def insecure_hosts(raw: str) -> set[str] | bool:
    """REGISTRY_INSECURE: true (every registry over plain http), false, or a list of hosts."""
    value = raw.strip().lower()
    if value in TRUE_WORDS:
        return True
    if value in FALSE_WORDS:
        return set()
    return {h.strip() for h in value.split(",") if h.strip()}


# -- credentials --------------------------------------------------------------------------

@dataclass(frozen=True)
class Credentials:
    source: str  # named in messages instead of any secret
    username: str = ""
    password: str = field(default="", repr=False)
    identity_token: str = field(default="", repr=False)

    def basic(self) -> str:
        raw = f"{self.username}:{self.password}".encode("utf-8")
        return "Basic " + base64.b64encode(raw).decode("ascii")


def env_credentials(env: Mapping[str, str]) -> Credentials | None:
    user, password = env.get("REGISTRY_USERNAME", ""), env.get("REGISTRY_PASSWORD", "")
    if bool(user) != bool(password):
        raise ConfigError("REGISTRY_USERNAME and REGISTRY_PASSWORD: set both or neither")
    return Credentials("REGISTRY_USERNAME/REGISTRY_PASSWORD", user, password) if user else None


def docker_config_path(env: Mapping[str, str]) -> Path:
    directory = env.get("DOCKER_CONFIG", "").strip()
    if directory:
        return Path(directory) / "config.json"
    home = env.get("HOME", "").strip() or os.path.expanduser("~")
    return Path(home) / ".docker" / "config.json"


def config_host(key: str) -> str:
    """A config.json key (`https://index.docker.io/v1/`, `ghcr.io`) as a registry host."""
    host = key.strip()
    if "://" in host:
        host = host.split("://", 1)[1]
    host = host.split("/", 1)[0].lower()
    return DOCKER_HUB if host in _HUB_ALIASES else host


def _read_config(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {}
    except (OSError, UnicodeDecodeError, ValueError) as exc:
        # The message names the file and the problem, never its content.
        reason = exc.strerror if isinstance(exc, OSError) else "not valid JSON"
        raise ConfigError(f"{path}: cannot read docker config ({reason})") from None
    if not isinstance(data, dict):
        raise ConfigError(f"{path}: docker config is not a JSON object")
    return data


def _find(section: object, registry: str) -> tuple[str, object] | None:
    if not isinstance(section, dict):
        return None
    for key, value in section.items():
        if config_host(key) == registry:
            return key, value
    return None


def _auth_entry(entry: object, source: str) -> Credentials | None:
    if not isinstance(entry, dict):
        return None
    user, password = str(entry.get("username") or ""), str(entry.get("password") or "")
    if entry.get("auth"):
        try:
            decoded = base64.b64decode(str(entry["auth"]), validate=False).decode("utf-8")
        except (ValueError, UnicodeDecodeError):
            raise ConfigError(f"{source}: an `auth` entry is not base64 of user:password") from None
        user, _, password = decoded.partition(":")
    token = str(entry.get("identitytoken") or "")
    if token:
        return Credentials(source, user, "", token)
    return Credentials(source, user, password) if user and password else None


def config_credentials(registry: str, env: Mapping[str, str], timeout: float) -> Credentials | None:
    """docker's own lookup: credHelpers[host], else credsStore, else the `auths` entry."""
    path = docker_config_path(env)
    config = _read_config(path)
    if not config:
        return None
    auth = _find(config.get("auths"), registry)
    helper = _find(config.get("credHelpers"), registry)
    server = auth[0] if auth else (HUB_CONFIG_KEY if registry == DOCKER_HUB else registry)
    if helper and helper[1]:
        return helper_credentials(str(helper[1]), helper[0], env, timeout)
    store = config.get("credsStore")
    if store:
        found = helper_credentials(str(store), server, env, timeout)
        if found:
            return found
    return _auth_entry(auth[1], str(path)) if auth else None


def helper_credentials(helper: str, server: str, env: Mapping[str, str],
                       timeout: float) -> Credentials | None:
    """`docker-credential-<helper> get`, bounded; 'not found' is no credentials, not an error."""
    from .process import run

    if not re.fullmatch(r"[A-Za-z0-9_.-]+", helper):
        raise ConfigError(f"docker config: credential helper name {helper!r} is not valid")
    program = f"docker-credential-{helper}"
    result = run([program, "get"], timeout=timeout, env=env, stdin=server,
                 merge_stderr=False, what=program)
    if not result.ok:
        text = (result.output + result.errors).strip()
        if "not found" in text.lower():
            return None
        first = text.splitlines()[0][:200] if text else f"exit code {result.returncode}"
        raise RegistryError("auth", f"{program} get failed for {server}: {first}")
    try:
        data = json.loads(result.output)
        user, secret = str(data.get("Username") or ""), str(data.get("Secret") or "")
    except (ValueError, AttributeError):
        raise RegistryError("auth", f"{program} get: output is not the expected JSON") from None
    if not secret:
        return None
    if user == "<token>":  # docker's convention for an identity (refresh) token
        return Credentials(program, "", "", secret)
    return Credentials(program, user, secret)


# -- WWW-Authenticate ----------------------------------------------------------------------

_PARAM = re.compile(r'\s*([A-Za-z0-9_-]+)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))\s*,?')


@dataclass(frozen=True)
class Challenge:
    scheme: str  # "basic" or "bearer"
    params: dict[str, str]


def parse_challenge(header: str) -> Challenge | None:
    """The first Bearer or Basic challenge of a WWW-Authenticate value."""
    match = re.match(r"\s*([A-Za-z]+)\s*(.*)", header or "", re.S)
    if not match:
        return None
    scheme, rest = match.group(1).lower(), match.group(2)
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        param = _PARAM.match(rest, pos)
        if not param or param.end() == pos:
            break
        quoted, bare = param.group(2), param.group(3)
        value = re.sub(r"\\(.)", r"\1", quoted) if quoted is not None else bare
        params[param.group(1).lower()] = value
        pos = param.end()
    return Challenge(scheme, params) if scheme in ("basic", "bearer") else None


# -- token realms ----------------------------------------------------------------------------

def _hostname(host: str) -> str:
    """`host[:port]` or `[v6]:port` as a bare lower-case host name or address."""
    return (urlsplit(f"//{host}").hostname or "").rstrip(".")


# Registries whose token service is on another host, as their operators publish it.
KNOWN_REALMS: dict[str, frozenset[str]] = {
    "registry-1.docker.io": frozenset({"auth.docker.io"}),
    "index.docker.io": frozenset({"auth.docker.io"}),
    "registry.gitlab.com": frozenset({"gitlab.com"}),
}


def parse_realms(raw: str) -> dict[str, frozenset[str]]:
    """REGISTRY_TOKEN_REALMS: comma-separated `registry=realm-host` pairs an operator trusts."""
    pairs: dict[str, set[str]] = {}
    for item in filter(None, (part.strip() for part in raw.split(","))):
        registry, sep, realm = item.partition("=")
        if not sep or not _hostname(registry.strip()) or not _hostname(realm.strip()):
            raise ConfigError(f"REGISTRY_TOKEN_REALMS: {item[:80]!r} is not registry=realm-host")
        pairs.setdefault(_hostname(registry.strip()), set()).add(_hostname(realm.strip()))
    return {k: frozenset(v) for k, v in pairs.items()}


def realm_trusted(registry_host: str, realm_host: str,
                  extra: Mapping[str, frozenset[str]] | None = None) -> bool:
    """May credentials for the registry go to a token realm on `realm_host`?

    Only to the registry's own host (any port), to the realm its operator publishes
    (Docker Hub's auth.docker.io, gitlab.com's), and to pairs REGISTRY_TOKEN_REALMS lists:
    a registry chooses its realm freely, and any other host may be anyone's server.
    """
    registry, realm = _hostname(registry_host), _hostname(realm_host)
    if not registry or not realm:
        return False
    if registry == realm:
        return True
    return realm in KNOWN_REALMS.get(registry, frozenset()) | (extra or {}).get(registry, frozenset())


# -- HTTP ----------------------------------------------------------------------------------

Response = http1.Response  # .status, .headers (lower-case names), .read()

# A kept-alive connection the server dropped (http1.RemoteDisconnected is a reset too).
_RETRYABLE = (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)


class Http:
    """Keep-alive connections per origin (http1, bodies capped at 1 MiB, every exchange bounded
    by the run's deadline); one retry on a reset connection or a 5xx. Redirects are answers,
    never followed."""

    def __init__(self, deadline: Deadline) -> None:
        self.deadline = deadline
        self.connections: dict[tuple[str, str], http1.Connection] = {}
        self.round_trips = 0

    def request(self, method: str, scheme: str, host: str, path: str,
                headers: Mapping[str, str], body: bytes | None = None) -> Response:
        response = None
        for attempt in (1, 2):
            try:
                response = self._once(method, scheme, host, path, headers, body)
            except _RETRYABLE:
                self._drop(scheme, host)
                if attempt == 2 or self.deadline.remaining() <= 0:
                    raise
                continue
            if response.status < 500 or attempt == 2:
                return response
        assert response is not None
        return response

    def _once(self, method: str, scheme: str, host: str, path: str,
              headers: Mapping[str, str], body: bytes | None) -> Response:
        if self.deadline.remaining() <= 0:
            raise socket.timeout()
        conn = self._connection(scheme, host)
        self.round_trips += 1
        try:  # a body is read whole (or refused), so the connection stays usable unless closed
            conn.request(method, path, body=body, deadline=self.deadline.end,
                         headers={"User-Agent": _USER_AGENT, "Accept-Encoding": "identity", **headers})
            return conn.getresponse()
        except BaseException:
            self._drop(scheme, host)
            raise

    def _connection(self, scheme: str, host: str) -> http1.Connection:
        key = (scheme, host)
        conn = self.connections.get(key)
        if conn is None:
            address = urlsplit(f"//{host}")  # host[:port] or [v6]:port
            context = None
            if scheme == "https":
                import ssl

                context = ssl.create_default_context()  # certificate and host name checked
            conn = http1.Connection(address.hostname or host, address.port or (443 if context else 80),
                                    self.deadline.seconds, context, max_body=_MAX_BODY, label="registry")
            self.connections[key] = conn
        return conn

    def _drop(self, scheme: str, host: str) -> None:
        conn = self.connections.pop((scheme, host), None)
        if conn is not None:
            conn.close()

    def close(self) -> None:
        for conn in self.connections.values():
            conn.close()
        self.connections.clear()


# -- one registry --------------------------------------------------------------------------

TokenCache = dict  # (registry host, realm, service, scope, credential source) -> token; one run


class Registry:
    """Checks tags of the images of one registry host, sequentially, over one connection."""

    def __init__(self, host: str, scheme: str, deadline: Deadline,
                 credentials: Callable[[], Credentials | None], tokens: TokenCache,
                 realms: Mapping[str, frozenset[str]] | None = None) -> None:
        self.host, self.scheme, self.deadline = host, scheme, deadline
        self.realms = realms or {}
        self.http = Http(deadline)
        self._load_credentials = credentials
        self._credentials: Credentials | None = None
        self._loaded = False
        self.tokens = tokens
        self.challenge: Challenge | None = None  # learnt once, reused for later images
        self.withheld = False  # credentials kept from a realm off the registry's domain

    @property
    def credentials(self) -> Credentials | None:
        if not self._loaded:  # lazily: an anonymous registry never spawns a credential helper
            self._credentials = self._load_credentials()
            self._loaded = True
        return self._credentials

    def check(self, image: ImageRef, tag: str) -> str:
        """The manifest kind when the tag exists; TagMissing or RegistryError otherwise."""
        where = f"{image.name}:{tag}"
        try:
            return self._check(image, tag, where)
        except (RegistryError, TagMissing):
            raise
        except http1.BodyTooLarge as exc:
            raise RegistryError("protocol", f"{where}: {exc}") from None
        except socket.timeout:
            raise RegistryError("timeout", f"{where}: registry {self.host} did not answer within "
                                f"{self.deadline.seconds:g}s (REGISTRY_TIMEOUT)") from None
        except OSError as exc:
            raise RegistryError("unreachable", f"{where}: {_network_problem(self.host, exc)}") from None
        except http1.ProtocolError as exc:
            raise RegistryError("protocol", f"{where}: registry {self.host} sent a malformed answer "
                                f"({exc})") from None

    def _check(self, image: ImageRef, tag: str, where: str) -> str:
        path = f"/v2/{image.repository}/manifests/{tag}"
        authorization = self._authorize(image, self.challenge, where) if self.challenge else None
        response = self._head(path, authorization)
        if response.status == 401 and self.challenge is None:
            challenge = parse_challenge(response.headers.get("www-authenticate", ""))
            if challenge is None:
                raise RegistryError("auth", f"{where}: registry {self.host} answered 401 without a "
                                    "usable WWW-Authenticate challenge")
            self.challenge = challenge
            response = self._head(path, self._authorize(image, challenge, where))
        return self._outcome(response, where)

    def _head(self, path: str, authorization: str | None) -> Response:
        headers = {"Accept": ACCEPT}
        if authorization:
            headers["Authorization"] = authorization
        return self.http.request("HEAD", self.scheme, self.host, path, headers)

    def _authorize(self, image: ImageRef, challenge: Challenge, where: str) -> str:
        creds = self.credentials
        if challenge.scheme == "basic":
            if creds is None:
                raise RegistryError("auth", f"{where}: registry {self.host} requires credentials "
                                    "(Basic auth): set REGISTRY_USERNAME/REGISTRY_PASSWORD or a "
                                    "docker config.json")
            if creds.identity_token:
                raise RegistryError("auth", f"{where}: registry {self.host} wants Basic auth, but "
                                    f"{creds.source} holds only an identity token")
            return creds.basic()
        return "Bearer " + self._token(image, challenge, creds, where)

    def _token(self, image: ImageRef, challenge: Challenge, creds: Credentials | None,
               where: str) -> str:
        realm = challenge.params.get("realm", "")
        service = challenge.params.get("service", "")
        scope = f"repository:{image.repository}:pull"
        url = urlsplit(realm)
        if url.scheme not in ("http", "https") or not url.hostname:
            raise RegistryError("auth", f"{where}: registry {self.host} names no usable token realm")
        creds = self._for_realm(url.netloc, creds)
        key = (self.host, realm, service, scope, creds.source if creds else "")
        if key not in self.tokens:
            self.tokens[key] = self._fetch_token(url, service, scope, creds, where)
        return self.tokens[key]

    def _for_realm(self, realm_host: str, creds: Credentials | None) -> Credentials | None:
        """creds when the realm is on the registry's domain; None (an anonymous token) otherwise."""
        if creds is None or realm_trusted(self.host, realm_host, self.realms):
            return creds
        if not self.withheld:
            self.withheld = True
            warn(f"tag_check: token realm {realm_host} is not registry {self.host}'s own (see "
                 f"REGISTRY_TOKEN_REALMS): asking it for an anonymous token ({creds.source} not sent)")
        return None

    def _fetch_token(self, url: SplitResult, service: str, scope: str, creds: Credentials | None,
                     where: str) -> str:
        if url.scheme == "http" and creds and self.scheme != "http":
            raise RegistryError("auth", f"{where}: token realm {url.netloc} is plain http; credentials "
                                "are not sent there unless REGISTRY_INSECURE covers the registry")
        query = {k: v for k, v in (("service", service), ("scope", scope)) if v}
        headers: dict[str, str] = {}
        body = None
        if creds and creds.identity_token:  # OAuth2 refresh-token grant, as docker does
            method, path = "POST", url.path or "/"
            body = urlencode({**query, "grant_type": "refresh_token", "client_id": _USER_AGENT,
                              "refresh_token": creds.identity_token}).encode()
            headers["Content-Type"] = "application/x-www-form-urlencoded"
        else:
            method = "GET"
            sep = "&" if url.query else ""
            path = f"{url.path or '/'}?{url.query}{sep}{urlencode(query)}"
            if creds:
                headers["Authorization"] = creds.basic()
        response = self.http.request(method, url.scheme, url.netloc, path, headers, body)
        if response.status != 200:
            raise self._status_error(response, where, f"token server {url.netloc}", creds)
        try:
            data = json.loads(response.read())
            token = data.get("token") or data.get("access_token")
        except (ValueError, AttributeError):
            token = None
        if not isinstance(token, str) or not token:
            raise RegistryError("protocol", f"{where}: token server {url.netloc} sent no token")
        return token

    def _outcome(self, response: Response, where: str) -> str:
        if response.status == 200:
            kind = response.headers.get("content-type", "").split(";")[0].strip()
            return MANIFEST_TYPES.get(kind, kind or "manifest")
        if response.status == 404:
            raise TagMissing(f"tag not found: {where} (registry {self.host} has no such manifest)")
        sent = self.credentials if self._loaded and not self.withheld else None
        raise self._status_error(response, where, f"registry {self.host}", sent)

    def _status_error(self, response: Response, where: str, who: str,
                      creds: Credentials | None) -> RegistryError:
        status = response.status
        if status in (401, 403):
            if creds:
                why = f"credentials from {creds.source} were rejected or lack pull access"
            else:
                why = ("anonymous access refused; the repository may be private or not exist: "
                       "set REGISTRY_USERNAME/REGISTRY_PASSWORD or a docker config.json")
            return RegistryError("auth", f"{where}: authentication failed at {who} (HTTP {status}): {why}")
        if status == 429:
            after = response.headers.get("retry-after", "").strip()
            hint = f", retry after {after[:20]}s" if after.isdigit() else ""
            return RegistryError("rate-limit", f"{where}: rate limited by {who} (HTTP 429{hint}); "
                                 "authenticate to raise the limit, or wait")
        if status >= 500:
            return RegistryError("server", f"{where}: {who} failed with HTTP {status} (after one retry)")
        if 300 <= status < 400:  # typically plain http answered with a redirect to https
            target = urlsplit(response.headers.get("location", ""))
            return RegistryError("protocol", f"{where}: {who} redirects (HTTP {status}) to "
                                 f"{target.scheme}://{target.netloc}; is REGISTRY_INSECURE meant "
                                 "for this registry?")
        return RegistryError("protocol", f"{where}: unexpected HTTP {status} from {who}")


def _network_problem(host: str, exc: OSError) -> str:
    ssl_error = type(exc).__module__ == "ssl"
    if ssl_error:
        reason = getattr(exc, "verify_message", None) or getattr(exc, "reason", None) or type(exc).__name__
        return (f"TLS with registry {host} failed ({reason}); for a plain-http registry set "
                "REGISTRY_INSECURE")
    if isinstance(exc, socket.gaierror):
        return f"registry {host} unreachable: cannot resolve the host name"
    if isinstance(exc, ConnectionRefusedError):
        return f"registry {host} unreachable: connection refused"
    if isinstance(exc, _RETRYABLE):
        return f"registry {host} unreachable: connection reset (after one retry)"
    reason = exc.strerror or type(exc).__name__
    return f"registry {host} unreachable: {reason}"


# -- all images ----------------------------------------------------------------------------

@dataclass
class Result:
    image: ImageRef
    kind: str = ""  # manifest kind when present
    error: OctopodError | None = None
    round_trips: int = 0  # HTTP requests this image cost (the contract: <= 2, or 3 with a token)


def check_images(images: list[ImageRef], tag: str, *, timeout: float, insecure: set[str] | bool,
                 credentials: Callable[[str, float], Credentials | None],
                 realms: Mapping[str, frozenset[str]] | None = None) -> list[Result]:
    """Check every image, one thread per registry, the whole run bounded by `timeout`."""
    deadline = Deadline(timeout, "REGISTRY_TIMEOUT")
    tokens: TokenCache = {}
    groups: dict[str, list[ImageRef]] = {}
    for image in images:
        groups.setdefault(image.api_host, []).append(image)
    results = {image: Result(image) for image in images}

    def work(host: str, members: list[ImageRef]) -> None:
        plain = insecure is True or (isinstance(insecure, set) and
                                     (host in insecure or host.split(":")[0] in insecure))
        registry = Registry(host, "http" if plain else "https", deadline,
                            lambda: credentials(members[0].registry, max(deadline.remaining(), 0.1)),
                            tokens, realms)
        try:
            for image in members:
                before = registry.http.round_trips
                try:
                    results[image].kind = registry.check(image, tag)
                except OctopodError as exc:
                    results[image].error = exc
                results[image].round_trips = registry.http.round_trips - before
        finally:
            registry.http.close()

    threads = [threading.Thread(target=work, args=item, daemon=True) for item in groups.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(max(deadline.remaining(), 0) + 0.05)
    for result in results.values():
        if not result.kind and result.error is None:  # its thread is still stuck (DNS, a helper)
            result.error = RegistryError("timeout", f"{result.image.name}:{tag}: registry "
                                         f"{result.image.api_host} did not answer within "
                                         f"{timeout:g}s (REGISTRY_TIMEOUT)")
    return list(results.values())
