"""init: prepare $HOME once per Octopod pod start, for every later script run.

From the environment: the SSH key, known_hosts and config; a kubeconfig; a Docker
config for registries; the chart repository. Every input is validated first and
nothing is written unless all of them are usable, so a bad value never leaves a
half-prepared home. Files are written atomically with their final mode, and only
when their content changes: a second run with the same input changes nothing.
Unset variables are left alone. No secret is ever printed.
"""
from __future__ import annotations

import io
import json
import os
import re
from dataclasses import dataclass
from pathlib import Path

from ..errors import ConfigError, ExternalError
from ..files import ensure_dir, write_atomic
from ..helm import oci_host
from ..log import info as log
from ..settings import PROJECT_ROOT, Settings
from ..target import helm_for

# Marks the block init owns in ~/.ssh/config, so it is appended once and replaced when changed.
BLOCK_BEGIN = "# >>> octopod-control: SSH_CONFIG (managed by init; edits here are replaced) >>>"
BLOCK_END = "# <<< octopod-control: SSH_CONFIG <<<"
DEFAULT_KEY_NAMES = ("id_ed25519", "id_ecdsa", "id_rsa")
DEFAULT_REPO_NAME = "octopod"
# An oci:// reference's registry: a host name or an [IPv6] address, and a port.
_REGISTRY_HOST = re.compile(r"(?:[A-Za-z0-9](?:[A-Za-z0-9.-]*[A-Za-z0-9])?|\[[0-9A-Fa-f:.]+\])"
                            r"(?::[0-9]{1,5})?")


@dataclass(frozen=True)
class PlannedFile:
    path: Path
    data: bytes
    mode: int
    what: str  # the variable it comes from, for the log

    @property
    def own_dir(self) -> bool:
        """~/.ssh, ~/.kube, ~/.docker are ours to keep 0700; a configured path's directory is not."""
        return self.path.parent in {home() / ".ssh", home() / ".kube", home() / ".docker"}


def home() -> Path:
    return Path(os.path.expanduser("~"))


def init(settings: Settings) -> None:
    """Write what the configuration provides; validate everything before writing anything."""
    planned = [p for p in (plan_ssh_key(settings), plan_known_hosts(settings),
                           plan_ssh_config(settings), plan_kubeconfig(settings),
                           plan_docker_config(settings)) if p]
    repo = plan_helm_repo(settings)
    login = plan_registry_login(settings)
    for item in planned:
        ensure_dir(item.path.parent, 0o700, enforce=item.own_dir)
        changed = write_atomic(item.path, item.data, item.mode)
        log(f"{item.what}: {'wrote' if changed else 'unchanged'} {item.path} ({item.mode:04o})")
    if repo:
        add_helm_repo(settings, *repo)
    if login:
        registry_login(settings, *login)
    if not planned and not repo and not login:
        log("init: nothing configured, nothing to do")


# -- SSH
def _normalise(text: str) -> str:
    """Unix newlines and one final newline; a one-line value with literal \\n is unfolded."""
    text = text.replace("\r\n", "\n").strip()
    if "\n" not in text and "\\n" in text:
        text = text.replace("\\n", "\n")
    return text + "\n"


def key_file_name(key: object) -> str:
    import paramiko

    for cls, name in ((paramiko.Ed25519Key, "id_ed25519"), (paramiko.ECDSAKey, "id_ecdsa"),
                      (paramiko.RSAKey, "id_rsa")):
        if isinstance(key, cls):
            return name
    return "id_key"


def parse_private_key(text: str) -> object:
    """The key as paramiko loads it, or a ConfigError that never quotes the key."""
    import paramiko
    from cryptography.exceptions import UnsupportedAlgorithm
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec, ed25519, rsa

    data = text.encode("utf-8")
    try:
        try:
            loaded = serialization.load_ssh_private_key(data, password=None)
        except ValueError:
            loaded = serialization.load_pem_private_key(data, password=None)
    except TypeError:
        raise ConfigError("SSH_PRIVATE_KEY: the key is encrypted; init runs unattended, "
                          "so give an unencrypted key") from None
    except (ValueError, UnsupportedAlgorithm):
        raise ConfigError("SSH_PRIVATE_KEY: not a private key in OpenSSH or PEM format "
                          "(nothing written)") from None
    classes = ((rsa.RSAPrivateKey, paramiko.RSAKey), (ed25519.Ed25519PrivateKey, paramiko.Ed25519Key),
               (ec.EllipticCurvePrivateKey, paramiko.ECDSAKey))
    cls = next((c for kind, c in classes if isinstance(loaded, kind)), None)
    if cls is None:
        raise ConfigError("SSH_PRIVATE_KEY: unsupported key type (use ed25519, ECDSA or RSA)")
    try:
        return cls.from_private_key(io.StringIO(text))
    except (paramiko.SSHException, ValueError):
        raise ConfigError("SSH_PRIVATE_KEY: paramiko cannot read this key format; use the OpenSSH "
                          "format (`ssh-keygen -p -f KEY` rewrites it)") from None


def key_path(settings: Settings, key: object | None = None) -> Path:
    """SSH_KEY_FILE, else ~/.ssh/id_<type> (where ssh and git look as well)."""
    configured = settings.text("SSH_KEY_FILE")
    if configured:
        return Path(os.path.expanduser(configured))
    return home() / ".ssh" / (key_file_name(key) if key is not None else DEFAULT_KEY_NAMES[0])


def plan_ssh_key(settings: Settings) -> PlannedFile | None:
    raw = settings.text("SSH_PRIVATE_KEY")
    if not raw:
        return None
    text = _normalise(raw)
    key = parse_private_key(text)
    return PlannedFile(key_path(settings, key), text.encode(), 0o600, "SSH_PRIVATE_KEY")


def check_known_hosts(text: str) -> None:
    from paramiko.hostkeys import HostKeyEntry

    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith(("#", "@")):  # @cert-authority/@revoked: ssh's business
            continue
        try:
            ok = len(line.split()) >= 3 and HostKeyEntry.from_line(line) is not None
        except Exception:  # InvalidHostKey, SSHException, ValueError...: all mean a bad line
            ok = False
        if not ok:
            raise ConfigError(f"SSH_KNOWN_HOSTS: line {number} is not `host key-type base64-key` "
                              "(nothing written)")


def plan_known_hosts(settings: Settings) -> PlannedFile | None:
    raw = settings.text("SSH_KNOWN_HOSTS")
    if not raw:
        return None
    text = _normalise(raw)
    check_known_hosts(text)
    return PlannedFile(home() / ".ssh" / "known_hosts", text.encode(), 0o644, "SSH_KNOWN_HOSTS")


def with_config_block(current: str, block: str) -> str:
    """`current` with our marked block holding `block`: replaced in place, or appended once."""
    ours = f"{BLOCK_BEGIN}\n{block.rstrip()}\n{BLOCK_END}\n"
    start = current.find(BLOCK_BEGIN)
    end = current.find(BLOCK_END, start)
    if start >= 0 and end >= 0:
        return current[:start] + ours + current[end + len(BLOCK_END):].lstrip("\n")
    separator = "\n" if current and not current.endswith("\n") else ""
    return current + separator + ("\n" if current else "") + ours


def plan_ssh_config(settings: Settings) -> PlannedFile | None:
    raw = settings.text("SSH_CONFIG")
    if not raw:
        return None
    from paramiko import SSHConfig

    block = _normalise(raw)
    try:
        SSHConfig.from_text(block)
    except Exception as exc:  # paramiko raises several types for a bad line
        raise ConfigError(f"SSH_CONFIG: not valid ssh_config text ({type(exc).__name__}); "
                          "nothing written") from None
    path = home() / ".ssh" / "config"
    try:
        current = path.read_text() if path.exists() else ""
    except (OSError, UnicodeDecodeError):
        raise ConfigError(f"SSH_CONFIG: cannot read the existing {path}") from None
    return PlannedFile(path, with_config_block(current, block).encode(), 0o600, "SSH_CONFIG")


# -- Kubernetes and registries
def kubeconfig_path(settings: Settings) -> Path:
    """The first KUBECONFIG entry when one is set, else ~/.kube/config (kubectl's and helm's default)."""
    configured = settings.text("KUBECONFIG").split(os.pathsep)[0]
    return Path(os.path.expanduser(configured)) if configured else home() / ".kube" / "config"


def plan_kubeconfig(settings: Settings) -> PlannedFile | None:
    raw = settings.text("KUBECONFIG_CONTENT")
    if not raw:
        return None
    import yaml

    text = _normalise(raw)
    try:
        parsed = yaml.safe_load(text)
    except yaml.YAMLError:
        raise ConfigError("KUBECONFIG_CONTENT: not valid YAML (nothing written)") from None
    if not isinstance(parsed, dict) or not parsed.get("clusters"):
        raise ConfigError("KUBECONFIG_CONTENT: not a kubeconfig (no clusters); nothing written")
    path = kubeconfig_path(settings)
    if not settings.text("KUBECONFIG"):
        log(f"KUBECONFIG_CONTENT: set KUBECONFIG={path} too, so every script (not only helm and "
            "kubectl) uses it instead of the in-cluster service account")
    return PlannedFile(path, text.encode(), 0o600, "KUBECONFIG_CONTENT")


def plan_docker_config(settings: Settings) -> PlannedFile | None:
    raw = settings.text("DOCKER_CONFIG_JSON")
    if not raw:
        return None
    try:
        parsed = json.loads(raw)
    except ValueError as exc:  # the message gives a position, never the content
        raise ConfigError(f"DOCKER_CONFIG_JSON: not valid JSON (line {exc.lineno}, column "
                          f"{exc.colno}); nothing written") from None
    if not isinstance(parsed, dict):
        raise ConfigError("DOCKER_CONFIG_JSON: expected a JSON object such as {\"auths\": {...}}")
    directory = settings.environ().get("DOCKER_CONFIG", "").strip() or str(home() / ".docker")
    return PlannedFile(Path(os.path.expanduser(directory)) / "config.json",
                       (raw.strip() + "\n").encode(), 0o600, "DOCKER_CONFIG_JSON")


# -- helm
def helm_repo_name(settings: Settings) -> str:
    """HELM_REPO_NAME, else the `repo` of a CHART given as `repo/chart`, else 'octopod'."""
    configured = settings.text("HELM_REPO_NAME")
    if configured:
        return configured
    chart = settings.text("CHART")
    head, sep, tail = chart.partition("/")
    local = Path(chart).exists() or (PROJECT_ROOT / chart).exists()  # as resolve_chart finds it
    if sep and head and tail and "/" not in tail and "://" not in chart and not local:
        return head
    return DEFAULT_REPO_NAME


def plan_helm_repo(settings: Settings) -> tuple[str, str, str, str] | None:
    url = settings.text("CHART_REPO_URL")
    if not url:
        return None
    if url.startswith("oci://"):
        return None  # a registry: no `helm repo add` (plan_registry_login logs in to it)
    if not url.startswith(("http://", "https://")):
        raise ConfigError(f"CHART_REPO_URL={url!r}: expected an http(s):// chart repository URL")
    if "?" in url or "#" in url:
        # helm appends /index.yaml to the path; a query (often ?token=...) would also reach
        # helm's argv and our log. The URL is not quoted: its query may be a secret.
        raise ConfigError("CHART_REPO_URL: has a query or a fragment ('?' or '#'); give the "
                          "repository's base URL, credentials in HELM_REPO_USERNAME/HELM_REPO_PASSWORD")
    if "@" in url.split("://", 1)[1].split("/", 1)[0]:
        # user:password@host would reach helm's argv and our log: credentials have their own variables.
        raise ConfigError("CHART_REPO_URL: holds credentials; put them in HELM_REPO_USERNAME "
                          "and HELM_REPO_PASSWORD instead")
    name = helm_repo_name(settings)
    if not name.replace("-", "").replace("_", "").replace(".", "").isalnum():
        raise ConfigError(f"HELM_REPO_NAME={name!r}: letters, digits, '-', '_' and '.' only")
    username = settings.text("HELM_REPO_USERNAME")
    # Not stripped: a password may begin or end with a space.
    password = settings.raw("HELM_REPO_PASSWORD")
    if bool(username) != bool(password):
        raise ConfigError("HELM_REPO_USERNAME and HELM_REPO_PASSWORD: set both or neither")
    return name, url, username, password


def add_helm_repo(settings: Settings, name: str, url: str, username: str, password: str) -> None:
    timeout = settings.seconds("HELM_REPO_TIMEOUT")
    helm = helm_for(settings, [password] if password else [])
    log(f"helm repo add {name} {url}" + (f" (as {username}, password on stdin)" if username else ""))
    if not helm.repo_add(name, url, username=username, password=password, timeout=timeout).ok:
        raise ExternalError(f"helm repo add {name}: failed (helm's output is above)")
    if not helm.repo_update(timeout=timeout).ok:
        raise ExternalError("helm repo update: failed (helm's output is above)")


def plan_registry_login(settings: Settings) -> tuple[list[str], str, str] | None:
    """The registries of an `oci://` CHART and CHART_REPO_URL to log in to, with
    HELM_REPO_USERNAME/HELM_REPO_PASSWORD; None without an oci:// reference or credentials
    (anonymous pulls)."""
    hosts: list[str] = []
    for variable in ("CHART", "CHART_REPO_URL"):
        reference = settings.text(variable)
        if not reference.startswith("oci://"):
            continue
        if "?" in reference or "#" in reference:
            raise ConfigError(f"{variable}: an oci:// reference has no query or fragment ('?' or '#')")
        host = oci_host(reference) or ""
        if "@" in host:
            raise ConfigError(f"{variable}: holds credentials; put them in HELM_REPO_USERNAME and "
                              "HELM_REPO_PASSWORD instead")
        if not _REGISTRY_HOST.fullmatch(host):
            raise ConfigError(f"{variable}={reference!r}: expected oci://registry-host[:port]/path")
        if host not in hosts:
            hosts.append(host)
    if not hosts:
        return None
    username = settings.text("HELM_REPO_USERNAME")
    password = settings.raw("HELM_REPO_PASSWORD")  # not stripped: it may begin or end with a space
    if bool(username) != bool(password):
        raise ConfigError("HELM_REPO_USERNAME and HELM_REPO_PASSWORD: set both or neither")
    if not username:
        log(f"oci:// chart registry {', '.join(hosts)}: no HELM_REPO_USERNAME/HELM_REPO_PASSWORD, "
            "so no login (anonymous pulls)")
        return None
    return hosts, username, password


def registry_login(settings: Settings, hosts: list[str], username: str, password: str) -> None:
    timeout = settings.seconds("HELM_REPO_TIMEOUT")
    helm = helm_for(settings, [password])
    for host in hosts:
        plain = " over plain http (REGISTRY_INSECURE)" if helm.plain_http(f"oci://{host}") else ""
        log(f"helm registry login {host} (as {username}, password on stdin){plain}")
        if not helm.registry_login(host, username, password, timeout=timeout).ok:
            raise ExternalError(f"helm registry login {host}: failed (helm's output is above)")
