"""Where teams keep their charts, both real and local: a chart repository behind basic auth (static
files made by `helm package` and `helm repo index`, served over HTTP) and an OCI registry
(Debian's `docker-registry` with htpasswd auth, plain http) the chart is `helm push`ed to.

The repository: a version published after `init` deploys (its repository's index refreshed once,
not on every call), and a version that does not exist is one line naming it. The registry: `init`
logs in with the password on stdin, `--plain-http` goes to the hosts REGISTRY_INSECURE lists, and
the credentials stay in helm's own registry config and nowhere else.
"""
from __future__ import annotations

import base64
import functools
import http.server
import json
import os
import subprocess
import threading
from pathlib import Path
from typing import Iterator

import pytest

from tests.conftest import run_script, tool
from tests.support.registry import basic_auth, htpasswd_file, start_registry

USER, PASSWORD = "chart-bot", "s3cr3t-chart-Pa55 'x'"
CHART = "app"


def make_chart(directory: Path, version: str) -> Path:
    """A small chart whose ConfigMap says which version rendered it."""
    chart = directory / f"{CHART}-src-{version}"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(f"apiVersion: v2\nname: {CHART}\nversion: {version}\n")
    (chart / "values.yaml").write_text("app:\n  tag: latest\n")
    (chart / "templates" / "cm.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: {{ .Release.Name }}-version\n"
        "data:\n  chart: {{ .Chart.Version | quote }}\n  tag: {{ .Values.app.tag | quote }}\n")
    return chart


def package(helm: str, chart: Path, out: Path) -> Path:
    out.mkdir(parents=True, exist_ok=True)
    done = subprocess.run([helm, "package", str(chart), "-d", str(out)], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return out / f"{CHART}-{chart.name.rsplit('-', 1)[1]}.tgz"


# -- a chart repository: static files behind basic auth ------------------------------------

class ChartRepository:
    """index.yaml and packaged charts served from a directory, every request needing basic auth."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[str] = []
        expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        repo = self

        class Handler(http.server.SimpleHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                repo.requests.append(self.path)
                if self.headers.get("Authorization") != expected:
                    self.send_response(401)
                    self.send_header("WWW-Authenticate", 'Basic realm="charts"')
                    self.send_header("Content-Length", "0")
                    self.end_headers()
                    return
                super().do_GET()

            def log_message(self, *args: object) -> None:
                pass

        self.server = http.server.ThreadingHTTPServer(
            ("127.0.0.1", 0), functools.partial(Handler, directory=str(root)))
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def publish(self, helm: str, chart: Path) -> None:
        """What CI does: package the chart into the repository and regenerate its index."""
        package(helm, chart, self.root)
        done = subprocess.run([helm, "repo", "index", str(self.root), "--url", self.url],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def chart_repository(tmp_path: Path) -> Iterator[ChartRepository]:
    repository = ChartRepository(tmp_path / "repository")
    repository.root.mkdir()
    try:
        yield repository
    finally:
        repository.stop()


@pytest.fixture
def recorded_helm(helm_bin: str, tmp_path: Path) -> tuple[str, Path]:
    """The helm under test behind a shim that records each argv (one line a call)."""
    argv_log = tmp_path / "helm-argv.log"
    shim = tmp_path / "helm-shim"
    shim.write_text(f"#!/bin/sh\necho \"$*\" >> '{argv_log}'\nexec '{helm_bin}' \"$@\"\n")
    shim.chmod(0o755)
    return str(shim), argv_log


def calls(argv_log: Path, *words: str) -> list[str]:
    lines = argv_log.read_text().splitlines() if argv_log.exists() else []
    return [line for line in lines if line.split()[:len(words)] == list(words)]


def configmap(env: dict, namespace: str, release: str) -> dict:
    done = subprocess.run([tool("kubectl"), "get", "configmap", f"{release}-version", "-n", namespace,
                           "-o", "json"], env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)["data"]


def args_for(name: str, namespace: str) -> list[str]:
    return ["--project-name", "demo", "--base-domain", "stage.example.com", "--namespace", namespace,
            "--name", name]


def test_a_version_published_after_init_deploys(helm_bin, scripts, octopod_env, namespace, tmp_path,
                                                chart_repository, recorded_helm):
    shim, argv_log = recorded_helm
    chart_repository.publish(helm_bin, make_chart(tmp_path, "0.1.0"))
    env = {"HELM_BIN": shim, "CHART": f"acme/{CHART}", "CHART_REPO_URL": chart_repository.url,
           "HELM_REPO_USERNAME": USER, "HELM_REPO_PASSWORD": PASSWORD, "HELM_WAIT": "false"}
    init = scripts("init", env=env)
    assert init.returncode == 0, init.stderr
    args = args_for("feat-r", namespace)

    done = scripts("create", *args, "--tag", "v1", env={**env, "CHART_VERSION": "0.1.0"})
    assert done.returncode == 0, done.stderr
    assert configmap(octopod_env, namespace, "feat-r")["chart"] == "0.1.0"
    assert calls(argv_log, "repo", "update") == [calls(argv_log, "repo", "update")[0]]  # init's only

    # Weeks later CI publishes 0.2.0; Octopod's pod (and helm's cached index) is the same.
    chart_repository.publish(helm_bin, make_chart(tmp_path, "0.2.0"))
    done = scripts("update", *args, "--tag", "v2", env={**env, "CHART_VERSION": "0.2.0"})
    assert done.returncode == 0, done.stderr
    assert ("acme/app version 0.2.0: not in the cached index of repository acme; refreshing that "
            "repository once") in done.stderr
    assert configmap(octopod_env, namespace, "feat-r") == {"chart": "0.2.0", "tag": "v2"}
    refreshes = calls(argv_log, "repo", "update")
    assert len(refreshes) == 2 and refreshes[-1].split()[:3] == ["repo", "update", "acme"]

    # The index is fresh now: no refresh on the next call, nor for the latest version.
    for version in ("0.2.0", ""):
        done = scripts("update", *args, "--tag", "v3", env={**env, "CHART_VERSION": version})
        assert done.returncode == 0, done.stderr
    assert len(calls(argv_log, "repo", "update")) == 2
    assert PASSWORD not in argv_log.read_text()


def test_a_version_that_does_not_exist_is_one_line_naming_it(helm_bin, scripts, namespace, tmp_path,
                                                             chart_repository, recorded_helm):
    shim, argv_log = recorded_helm
    chart_repository.publish(helm_bin, make_chart(tmp_path, "0.1.0"))
    env = {"HELM_BIN": shim, "CHART": f"acme/{CHART}", "CHART_REPO_URL": chart_repository.url,
           "HELM_REPO_USERNAME": USER, "HELM_REPO_PASSWORD": PASSWORD, "HELM_WAIT": "false",
           "CHART_VERSION": "9.9.9"}
    assert scripts("init", env=env).returncode == 0
    done = scripts("create", *args_for("feat-n", namespace), "--tag", "v1", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: acme/app version 9.9.9: not found in repository acme, even with its index refreshed "
        "just now")
    assert len(calls(argv_log, "repo", "update", "acme")) == 1  # refreshed once, then given up
    assert len(calls(argv_log, "upgrade")) == 2


def test_a_repository_that_cannot_be_refreshed_says_so(helm_bin, scripts, namespace, tmp_path,
                                                       chart_repository):
    chart_repository.publish(helm_bin, make_chart(tmp_path, "0.1.0"))
    env = {"CHART": f"acme/{CHART}", "CHART_REPO_URL": chart_repository.url, "HELM_REPO_USERNAME": USER,
           "HELM_REPO_PASSWORD": PASSWORD, "HELM_WAIT": "false", "CHART_VERSION": "0.2.0"}
    assert scripts("init", env=env).returncode == 0
    chart_repository.stop()  # the repository is down when the refresh is needed
    done = scripts("create", *args_for("feat-d", namespace), "--tag", "v1", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == (
        "error: helm repo update acme: failed (helm's output is above)")


# -- an OCI registry: docker-registry with htpasswd auth, over plain http ------------------

@pytest.fixture(scope="module")
def oci_registry(tmp_path_factory) -> Iterator[str]:
    """A real registry needing a login, on plain http: its host:port."""
    work = tmp_path_factory.mktemp("oci")
    registry = start_registry(work / "registry", work / "storage",
                              basic_auth(htpasswd_file(work / "htpasswd", USER, PASSWORD)))
    try:
        yield registry.host
    finally:
        registry.stop()


def push_chart(helm: str, host: str, chart: Path, workdir: Path) -> None:
    """What CI does: log in (its own helm config) and `helm push` the packaged chart."""
    home = workdir / "ci-home"
    home.mkdir(exist_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(home)}
    login = subprocess.run([helm, "registry", "login", host, "--username", USER, "--password-stdin",
                            "--plain-http"], input=PASSWORD, env=env, capture_output=True, text=True,
                           timeout=60)
    assert login.returncode == 0, login.stderr
    done = subprocess.run([helm, "push", str(package(helm, chart, workdir / "packages")),
                           f"oci://{host}/charts", "--plain-http"], env=env, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr


def test_a_private_oci_registry_over_plain_http(helm_bin, scripts, octopod_env, namespace, tmp_path,
                                               oci_registry, recorded_helm):
    shim, argv_log = recorded_helm
    push_chart(helm_bin, oci_registry, make_chart(tmp_path, "0.1.0"), tmp_path)
    env = {"HELM_BIN": shim, "CHART": f"oci://{oci_registry}/charts/{CHART}", "CHART_VERSION": "0.1.0",
           "HELM_REPO_USERNAME": USER, "HELM_REPO_PASSWORD": PASSWORD, "HELM_WAIT": "false",
           "REGISTRY_INSECURE": f"registry.example.com,{oci_registry}"}
    args = args_for("feat-o", namespace)

    # Before any login the registry refuses the pull: its auth is real.
    refused = scripts("create", *args, "--tag", "v1", env=env)
    assert refused.returncode == 1
    assert "basic credential not found" in refused.stderr, refused.stderr

    init = scripts("init", env=env)
    assert init.returncode == 0, init.stderr
    assert f"helm registry login {oci_registry} (as {USER}, password on stdin) over plain http" in init.stderr
    (login,) = calls(argv_log, "registry", "login")
    assert login.split() == ["registry", "login", oci_registry, "--username", USER, "--password-stdin",
                             "--plain-http"]

    done = scripts("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    assert configmap(octopod_env, namespace, "feat-o") == {"chart": "0.1.0", "tag": "v1"}
    assert "--plain-http" in calls(argv_log, "upgrade")[-1].split()

    # REGISTRY_INSECURE=true covers every registry. Without it helm 4 speaks HTTPS to the registry
    # and fails; helm 3.18 falls back to plain http by itself (its registry client's
    # fallbackTransport, which helm 4 dropped).
    everywhere = scripts("update", *args, "--tag", "v2", env={**env, "REGISTRY_INSECURE": "true"})
    assert everywhere.returncode == 0, everywhere.stderr
    https = scripts("update", *args, "--tag", "v3", env={**env, "REGISTRY_INSECURE": "false"})
    assert "--plain-http" not in calls(argv_log, "upgrade")[-1].split()
    if Path(helm_bin).name == "helm4":
        assert https.returncode == 1, https.stderr
        assert "server gave HTTP response to HTTPS client" in https.stderr
    else:
        assert https.returncode == 0, https.stderr

    # The credentials: in helm's registry config, and nowhere else (nor in any argv, nor printed).
    home = Path(octopod_env["HOME"])
    auth = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    holding = sorted(str(p.relative_to(home)) for p in home.rglob("*") if p.is_file()
                     and (PASSWORD.encode() in p.read_bytes() or auth.encode() in p.read_bytes()))
    assert holding == [".config/helm/registry/config.json"]
    assert PASSWORD not in argv_log.read_text()
    for result in (refused, init, done, everywhere, https):
        assert PASSWORD not in result.stdout + result.stderr


def test_a_wrong_registry_password_fails_init_without_printing_it(helm_bin, tmp_path, oci_registry):
    home = tmp_path / "home"
    home.mkdir()
    wrong = "wrong-S3CR3T-password"
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HELM_BIN": helm_bin,
           "CHART": f"oci://{oci_registry}/charts/{CHART}", "HELM_REPO_USERNAME": USER,
           "HELM_REPO_PASSWORD": wrong, "REGISTRY_INSECURE": oci_registry}
    done = run_script("init", env=env)
    assert done.returncode == 1
    assert done.stderr.strip().splitlines()[-1] == f"error: helm registry login {oci_registry}: failed " \
                                                   "(helm's output is above)"
    assert wrong not in done.stdout + done.stderr


def test_an_oci_chart_without_credentials_logs_in_nowhere(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HELM_BIN": "/nonexistent/helm-must-not-run",
           "CHART": "oci://registry.example.com/charts/app"}
    done = run_script("init", env=env)
    assert done.returncode == 0, done.stderr
    assert "no HELM_REPO_USERNAME/HELM_REPO_PASSWORD, so no login (anonymous pulls)" in done.stderr


@pytest.mark.parametrize("variables, message", [
    ({"CHART": "oci://bot:hunter2-secret@registry.example.com/charts/app"},
     "error: CHART: holds credentials; put them in HELM_REPO_USERNAME and HELM_REPO_PASSWORD instead"),
    ({"CHART_REPO_URL": "oci://registry.example.com/charts?token=hunter2-secret"},
     "error: CHART_REPO_URL: an oci:// reference has no query or fragment ('?' or '#')"),
    ({"CHART": "oci:///charts/app"},
     "error: CHART='oci:///charts/app': expected oci://registry-host[:port]/path"),
    ({"CHART": "oci://registry.example.com/charts/app", "HELM_REPO_USERNAME": "bot"},
     "error: HELM_REPO_USERNAME and HELM_REPO_PASSWORD: set both or neither"),
])
def test_a_bad_oci_reference_is_exit_78_and_nothing_written(tmp_path, variables, message):
    home = tmp_path / "home"
    home.mkdir()
    env = {"PATH": os.environ["PATH"], "HOME": str(home), "HELM_BIN": "/nonexistent/helm-must-not-run",
           "DOCKER_CONFIG_JSON": '{"auths": {}}', **variables}
    done = run_script("init", env=env)
    assert done.returncode == 78, done.stderr
    assert done.stderr.strip() == message and "hunter2" not in done.stderr
    assert list(home.iterdir()) == []  # validated before anything is written
