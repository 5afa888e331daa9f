"""init, end to end through scripts/init: what lands in $HOME, with which modes, and what never prints.

No cluster is needed: HOME is a temporary directory and helm talks to a local HTTP chart
repository with basic auth (real helm 3 and 4).
"""
from __future__ import annotations

import base64
import os
import stat
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import run_script, tool
from tests.support.sshd import keygen

KUBECONFIG = """apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:6443"}}]
users: [{name: u, user: {token: kube-token-s3cr3t}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
"""
DOCKER_JSON = '{"auths": {"registry.example.com": {"auth": "ZG9ja2VyOnMzY3IzdC1yZWctcGFzcw=="}}}'


def clean_env(home: Path, **extra: str) -> dict[str, str]:
    """The process environment minus anything of ours, with HOME a private directory."""
    drop = ("OCTOPOD_", "HELM_", "KUBE", "SSH_", "REMOTE_", "DOCKER_", "CHART", "XDG_")
    env = {k: v for k, v in os.environ.items() if not k.startswith(drop)}
    env.update(HOME=str(home), USER="octopod", **extra)
    return env


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def files_under(path: Path) -> list[str]:
    return sorted(str(p.relative_to(path)) for p in path.rglob("*"))


@pytest.fixture
def home(tmp_path: Path) -> Path:
    path = tmp_path / "home"
    path.mkdir()
    return path


@pytest.fixture(scope="module")
def keys(tmp_path_factory) -> dict[str, Path]:
    directory = tmp_path_factory.mktemp("keys")
    rsa = directory / "rsa"
    subprocess.run(["ssh-keygen", "-q", "-t", "rsa", "-b", "2048", "-m", "PEM", "-N", "", "-f", str(rsa)],
                   check=True, capture_output=True, timeout=60)
    encrypted = directory / "encrypted"
    subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "a passphrase", "-f", str(encrypted)],
                   check=True, capture_output=True, timeout=60)
    return {"ed25519": keygen(directory / "ed25519"), "rsa": rsa, "encrypted": encrypted,
            "host": keygen(directory / "host")}


def known_hosts_for(host_key: Path, name: str = "[127.0.0.1]:2222") -> str:
    kind, key = Path(f"{host_key}.pub").read_text().split()[:2]
    return f"{name} {kind} {key}\n"


def assert_no_secret(result: subprocess.CompletedProcess, *secrets: str) -> None:
    for secret in secrets:
        assert secret not in result.stdout and secret not in result.stderr


def test_nothing_configured_is_a_quiet_success(home: Path) -> None:
    result = run_script("init", env=clean_env(home))
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""
    assert "nothing to do" in result.stderr
    assert files_under(home) == []


@pytest.mark.parametrize("kind,filename", [("ed25519", "id_ed25519"), ("rsa", "id_rsa")])
def test_writes_every_file_with_its_mode_and_twice_changes_nothing(
        home: Path, keys: dict[str, Path], kind: str, filename: str) -> None:
    private = keys[kind].read_text()
    known = known_hosts_for(keys["host"])
    env = clean_env(home, SSH_PRIVATE_KEY=private, SSH_KNOWN_HOSTS=known,
                    SSH_CONFIG="Host staging-db\n  User octopod\n  Port 2222",
                    KUBECONFIG_CONTENT=KUBECONFIG, DOCKER_CONFIG_JSON=DOCKER_JSON)
    first = run_script("init", env=env)
    assert first.returncode == 0, first.stderr
    ssh = home / ".ssh"
    assert (ssh / filename).read_text() == private
    assert (ssh / "known_hosts").read_text() == known
    assert "Host staging-db" in (ssh / "config").read_text()
    assert (home / ".kube" / "config").read_text() == KUBECONFIG
    assert (home / ".docker" / "config.json").read_text() == DOCKER_JSON + "\n"
    expected_modes = {ssh: 0o700, ssh / filename: 0o600, ssh / "known_hosts": 0o644,
                      ssh / "config": 0o600, home / ".kube": 0o700, home / ".kube" / "config": 0o600,
                      home / ".docker": 0o700, home / ".docker" / "config.json": 0o600}
    assert {p: mode(p) for p in expected_modes} == expected_modes
    before = {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in expected_modes if p.is_file()}

    second = run_script("init", env=env)
    assert second.returncode == 0, second.stderr
    assert "wrote" not in second.stderr and second.stderr.count("unchanged") == 5
    assert {p: (p.stat().st_ino, p.stat().st_mtime_ns) for p in before} == before
    # No temp file left behind: exactly the files init owns.
    assert files_under(home) == sorted(str(p.relative_to(home)) for p in expected_modes)
    for result in (first, second):
        assert result.stdout == ""
        assert_no_secret(result, private.splitlines()[1], "kube-token-s3cr3t",
                         "ZG9ja2VyOnMzY3IzdC1yZWctcGFzcw==")


def test_a_changed_key_replaces_the_file_atomically(home: Path, keys: dict[str, Path]) -> None:
    env = clean_env(home, SSH_KEY_FILE=str(home / "keys" / "deploy"))
    assert run_script("init", env={**env, "SSH_PRIVATE_KEY": keys["ed25519"].read_text()}).returncode == 0
    result = run_script("init", env={**env, "SSH_PRIVATE_KEY": keys["rsa"].read_text()})
    assert result.returncode == 0, result.stderr
    assert (home / "keys" / "deploy").read_text() == keys["rsa"].read_text()
    assert mode(home / "keys" / "deploy") == 0o600 and mode(home / "keys") == 0o700
    assert files_under(home) == ["keys", "keys/deploy"]


def _truncated(keys: dict[str, Path]) -> str:
    lines = keys["ed25519"].read_text().splitlines()
    return "\n".join(lines[:3] + lines[-1:])


@pytest.mark.parametrize("case", ["garbage", "truncated", "encrypted", "public key"])
def test_a_malformed_key_is_refused_and_nothing_is_written(
        home: Path, keys: dict[str, Path], case: str) -> None:
    value = {
        "garbage": "-----BEGIN OPENSSH PRIVATE KEY-----\nsecret-garbage-QWERTY\n-----END OPENSSH PRIVATE KEY-----",
        "truncated": _truncated(keys),
        "encrypted": keys["encrypted"].read_text(),
        "public key": Path(f"{keys['ed25519']}.pub").read_text(),
    }[case]
    # Everything else is valid: a bad key must still leave the home untouched.
    env = clean_env(home, SSH_PRIVATE_KEY=value, SSH_KNOWN_HOSTS=known_hosts_for(keys["host"]),
                    DOCKER_CONFIG_JSON=DOCKER_JSON)
    result = run_script("init", env=env)
    assert result.returncode == 78, result.stderr
    assert result.stderr.startswith("error: SSH_PRIVATE_KEY:") and "Traceback" not in result.stderr
    assert files_under(home) == []
    # Not a line of the value (a public key is one line, and no secret) reaches the output.
    assert_no_secret(result, "secret-garbage-QWERTY", *(line for line in value.splitlines()[1:-1]))


@pytest.mark.parametrize("variable,value,message", [
    ("DOCKER_CONFIG_JSON", '{"auths": {"r": {"auth": "dXNlcjpzM2NyM3Q="}}', "not valid JSON"),
    ("DOCKER_CONFIG_JSON", '["dXNlcjpzM2NyM3Q="]', "expected a JSON object"),
    ("KUBECONFIG_CONTENT", "users: [{name: dXNlcjpzM2NyM3Q=", "not valid YAML"),
    ("SSH_KNOWN_HOSTS", "[127.0.0.1]:22 ssh-ed25519 dXNlcjpzM2NyM3Q=!!", "line 1"),
])
def test_malformed_json_yaml_or_known_hosts_is_refused(
        home: Path, keys: dict[str, Path], variable: str, value: str, message: str) -> None:
    env = clean_env(home, SSH_PRIVATE_KEY=keys["ed25519"].read_text(), **{variable: value})
    result = run_script("init", env=env)
    assert result.returncode == 78, result.stderr
    assert result.stderr.startswith(f"error: {variable}:") and message in result.stderr
    assert files_under(home) == []
    assert_no_secret(result, "dXNlcjpzM2NyM3Q=")


def test_ssh_config_is_appended_once_and_replaced_when_changed(home: Path) -> None:
    ssh = home / ".ssh"
    ssh.mkdir(mode=0o700)
    (ssh / "config").write_text("Host mine\n  User me")  # the operator's own, no final newline
    env = clean_env(home, SSH_CONFIG="Host db\n  Port 2222\n")
    for _ in range(2):
        assert run_script("init", env=env).returncode == 0
    text = (ssh / "config").read_text()
    assert text.startswith("Host mine\n  User me\n") and text.count("Host db") == 1
    assert run_script("init", env={**env, "SSH_CONFIG": "Host db\n  Port 2200"}).returncode == 0
    text = (ssh / "config").read_text()
    assert text.startswith("Host mine\n  User me\n")
    assert "Port 2200" in text and "Port 2222" not in text and text.count(">>> octopod-control") == 1


# -- helm repo add against a local chart repository with basic auth
USER, PASSWORD = "chartuser", "pa ss'w\"0rd-S3CR3T"
INDEX = "apiVersion: v1\nentries: {}\ngenerated: \"2024-01-01T00:00:00Z\"\n"


class ChartRepo(BaseHTTPRequestHandler):
    seen: list[str] = []

    def do_GET(self) -> None:  # noqa: N802 (http.server's name)
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        self.seen.append(self.path)
        if self.headers.get("Authorization") != expected:
            self.send_response(401)
            self.send_header("WWW-Authenticate", 'Basic realm="charts"')
            self.end_headers()
            return
        if self.path.rstrip("/").endswith("/index.yaml"):
            body = INDEX.encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-yaml")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)
            return
        self.send_response(404)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture(scope="module")
def chart_repo() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), ChartRepo)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/charts"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(params=["helm3", "helm4"])
def recorded_helm(request, tmp_path: Path) -> tuple[Path, Path]:
    """A helm that records its argv (one argument a line) before running the real one."""
    argv_log = tmp_path / "helm-argv.log"
    shim = tmp_path / "helm"
    shim.write_text(f"#!/bin/sh\nprintf '%s\\n' \"$@\" >> '{argv_log}'\nexec '{tool(request.param)}' \"$@\"\n")
    shim.chmod(0o755)
    return shim, argv_log


def test_helm_repo_add_sends_the_password_on_stdin_only(
        home: Path, chart_repo: str, recorded_helm: tuple[Path, Path]) -> None:
    shim, argv_log = recorded_helm
    env = clean_env(home, HELM_BIN=str(shim), CHART="octopod/app", CHART_REPO_URL=chart_repo,
                    HELM_REPO_USERNAME=USER, HELM_REPO_PASSWORD=PASSWORD, HELM_REPO_TIMEOUT="60")
    for _ in range(2):  # idempotent: the second run replaces the entry with the same one
        result = run_script("init", env=env)
        assert result.returncode == 0, result.stderr
        assert result.stdout == ""
        assert_no_secret(result, PASSWORD, "S3CR3T")
    argv = argv_log.read_text()
    assert "repo\nadd\noctopod\n" in argv and "--password-stdin" in argv and "repo\nupdate" in argv
    assert "S3CR3T" not in argv
    repositories = (home / ".config" / "helm" / "repositories.yaml").read_text()
    assert f"url: {chart_repo}" in repositories and f"username: {USER}" in repositories
    assert (home / ".cache" / "helm" / "repository" / "octopod-index.yaml").is_file()


def test_helm_repo_add_with_a_wrong_password_fails_without_printing_it(
        home: Path, chart_repo: str, recorded_helm: tuple[Path, Path]) -> None:
    shim, argv_log = recorded_helm
    wrong = "wrong-S3CR3T-pass"
    env = clean_env(home, HELM_BIN=str(shim), CHART_REPO_URL=chart_repo, HELM_REPO_NAME="charts",
                    HELM_REPO_USERNAME=USER, HELM_REPO_PASSWORD=wrong, HELM_REPO_TIMEOUT="60")
    result = run_script("init", env=env)
    assert result.returncode != 0
    assert "helm repo add charts: failed" in result.stderr and "Traceback" not in result.stderr
    assert_no_secret(result, wrong)
    assert wrong not in argv_log.read_text()


def test_helm_repo_credentials_come_in_pairs(home: Path, chart_repo: str) -> None:
    env = clean_env(home, CHART_REPO_URL=chart_repo, HELM_REPO_USERNAME=USER)
    result = run_script("init", env=env)
    assert result.returncode == 78
    assert "set both or neither" in result.stderr


def test_a_repo_url_with_credentials_is_refused(home: Path, chart_repo: str) -> None:
    url = chart_repo.replace("http://", "http://bot:hunter2-secret@")
    result = run_script("init", env=clean_env(home, CHART_REPO_URL=url))
    assert result.returncode == 78
    assert "HELM_REPO_PASSWORD" in result.stderr and "hunter2-secret" not in result.stderr
    assert not (home / ".config" / "helm" / "repositories.yaml").exists()


@pytest.mark.parametrize("suffix", ["/?token=hunter2-secret", "?token=hunter2-secret",
                                    "/#hunter2-secret", "/index.yaml?"])
def test_a_repo_url_with_a_query_or_a_fragment_is_refused(home: Path, chart_repo: str,
                                                          suffix: str) -> None:
    result = run_script("init", env=clean_env(home, CHART_REPO_URL=chart_repo + suffix))
    assert result.returncode == 78, result.stderr
    error = result.stderr.strip().splitlines()[-1]
    assert error.startswith("error: CHART_REPO_URL:") and "query or a fragment" in error, error
    assert "hunter2-secret" not in result.stderr
    assert not (home / ".config" / "helm" / "repositories.yaml").exists()


@pytest.mark.parametrize("chart,name,expected", [
    ("charts/example", "", "octopod"),  # the bundled local chart: no repo in its name
    ("stable/app", "", "stable"),
    ("oci://registry.example.com/charts/app", "", "octopod"),
    ("stable/app", "mine", "mine"),
])
def test_the_repo_name_comes_from_chart_unless_set(chart: str, name: str, expected: str,
                                                   monkeypatch) -> None:
    from octopod_control.actions.init import helm_repo_name
    from octopod_control.settings import Settings

    monkeypatch.chdir("/")
    assert helm_repo_name(Settings({"CHART": chart, "HELM_REPO_NAME": name})) == expected
