"""The API over HTTPS with credentials, and in-cluster: the whole Octopod round through scripts/*
with real helm and kubectl against an emulator that serves TLS and refuses unauthenticated
requests (401), once for each way a kubeconfig (or a pod) reaches a real API server.

Two emulators for the module: one that takes bearer tokens and (optionally) client certificates,
one that refuses a TLS handshake without a client certificate. Both check every request's
credentials (the /_emu/* hooks excepted: they are the test acting as controllers); a test below
proves that they do, so the rounds prove the credentials were sent.
"""
from __future__ import annotations

import base64
import json
import os
import ssl
import stat
import subprocess
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from typing import Iterator

import pytest

from octopod_control import incluster, kube
from octopod_control.errors import ConfigError
from octopod_control.settings import Settings
from tests.conftest import ROOT, run_script, tool
from octopod_dev.emulator import Cluster, start_emulator
from tests.support.tls import PKI, make_pki
from tests.test_create import octopod_args

CHART = str(ROOT / "tests" / "charts" / "lifecycle")
NAME = "life"
TOKEN = "octopod-sa-token-1"
ARCHIVED = "octopod.io/archived-replicas"


# -- the servers ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def pki(tmp_path_factory) -> PKI:
    return make_pki(tmp_path_factory.mktemp("pki"))


def _tls_flags(pki: PKI) -> list[str]:
    return ["--tls-cert", str(pki.server_cert), "--tls-key", str(pki.server_key), "--tls-ca", str(pki.ca)]


@pytest.fixture(scope="module")
def tls_cluster(tmp_path_factory, pki) -> Iterator[Cluster]:
    """HTTPS; accepts the bearer token TOKEN or a client certificate signed by the test CA."""
    cluster = start_emulator(tmp_path_factory.mktemp("kube-tls"), *_tls_flags(pki),
                             "--client-ca", str(pki.ca), "--token", TOKEN)
    try:
        yield cluster
    finally:
        cluster.stop()


@pytest.fixture(scope="module")
def mtls_cluster(tmp_path_factory, pki) -> Iterator[Cluster]:
    """HTTPS that refuses a TLS handshake without a client certificate signed by the test CA."""
    cluster = start_emulator(tmp_path_factory.mktemp("kube-mtls"), *_tls_flags(pki),
                             "--client-ca", str(pki.ca), "--require-client-cert",
                             "--kubeconfig-cert", str(pki.client_cert), "--kubeconfig-key", str(pki.client_key))
    try:
        yield cluster
    finally:
        cluster.stop()


# -- how a script reaches the API --------------------------------------------------------------

def b64(path: Path) -> str:
    return base64.b64encode(path.read_bytes()).decode()


def write_kubeconfig(directory: Path, server: str, cluster: dict, user: dict) -> str:
    path = directory / "kubeconfig.yaml"
    path.write_text(json.dumps({
        "apiVersion": "v1", "kind": "Config", "current-context": "tls",
        "clusters": [{"name": "tls", "cluster": {"server": server, **cluster}}],
        "users": [{"name": "octopod", "user": user}],
        "contexts": [{"name": "tls", "context": {"cluster": "tls", "user": "octopod"}}]}))
    return str(path)


def access(kind: str, directory: Path, pki: PKI, server: str) -> str:
    """A kubeconfig reaching `server` the way `kind` names; its path."""
    if kind == "ca-data":  # the common case: CA and token inline
        return write_kubeconfig(directory, server, {"certificate-authority-data": b64(pki.ca)}, {"token": TOKEN})
    if kind == "ca-file":  # a relative path: relative to the kubeconfig, not to the cwd (/)
        (directory / "ca.crt").write_bytes(pki.ca.read_bytes())
        return write_kubeconfig(directory, server, {"certificate-authority": "ca.crt"}, {"token": TOKEN})
    if kind == "token-file":
        (directory / "token").write_text(TOKEN + "\n")
        return write_kubeconfig(directory, server, {"certificate-authority": str(pki.ca)},
                                {"tokenFile": str(directory / "token")})
    if kind == "insecure":
        return write_kubeconfig(directory, server, {"insecure-skip-tls-verify": True}, {"token": TOKEN})
    if kind == "client-cert-files":
        return write_kubeconfig(directory, server, {"certificate-authority": str(pki.ca)}, {
            "client-certificate": str(pki.client_cert), "client-key": str(pki.client_key)})
    if kind == "client-cert-data":
        return write_kubeconfig(directory, server, {"certificate-authority-data": b64(pki.ca)}, {
            "client-certificate-data": b64(pki.client_cert), "client-key-data": b64(pki.client_key)})
    raise AssertionError(kind)


def script_env(tmp_path: Path, helm: str, namespace: str, **extra: str) -> dict[str, str]:
    """Octopod's environment for a script, with nothing of ours inherited: no KUBECONFIG, no
    KUBERNETES_SERVICE_*, a HOME without .kube, a runtime dir of the test's own."""
    home, run = tmp_path / "home", tmp_path / "run"
    home.mkdir(exist_ok=True)
    run.mkdir(exist_ok=True)
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OCTOPOD_", "HELM_", "KUBE", "XDG_"))}
    env.update(HOME=str(home), USER="octopod", XDG_CACHE_HOME=str(home / ".cache"), XDG_RUNTIME_DIR=str(run),
               HELM_BIN=helm, KUBECTL_BIN=tool("kubectl"), CHART=CHART, PROJECT_NAME="demo",
               BASE_DOMAIN="staging.example.com", NAMESPACE=namespace, HELM_TIMEOUT="60", KUBE_TIMEOUT="10",
               **extra)
    return env


def service_account(directory: Path, pki: PKI, token: str = TOKEN) -> Path:
    directory.mkdir()
    (directory / "token").write_text(token)
    (directory / "ca.crt").write_bytes(pki.ca.read_bytes())
    (directory / "namespace").write_text("octopod\n")
    return directory


def in_cluster_env(tmp_path: Path, helm: str, namespace: str, cluster: Cluster, pki: PKI) -> dict[str, str]:
    port = cluster.url.rsplit(":", 1)[1]
    account = service_account(tmp_path / "serviceaccount", pki)
    return script_env(tmp_path, helm, namespace, KUBERNETES_SERVICE_HOST="127.0.0.1",
                      KUBERNETES_SERVICE_PORT=port, KUBE_SERVICE_ACCOUNT_DIR=str(account))


def fresh_namespace(cluster: Cluster) -> str:
    name = f"t-{uuid.uuid4().hex[:10]}"
    cluster.create_namespace(name)
    return name


# -- the round -------------------------------------------------------------------------------

def workload(cluster: Cluster, ns: str, kind: str, name: str) -> dict | None:
    return cluster.api("GET", f"/apis/apps/v1/namespaces/{ns}/{kind}/{NAME}-{name}")


def octopod_round(cluster: Cluster, env: dict[str, str], ns: str) -> None:
    """create, check, info, archive_check, archive, archive_check, restore (create), check,
    cleanup: each through scripts/* as Octopod calls them, each checked in the emulator."""
    args = octopod_args(NAME, ns)
    cluster.reset_requests()

    with cluster.controller(ns):  # helm --wait (HELM_WAIT=true) sees the workloads become ready
        done = run_script("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    cluster.ready(ns)  # (without the wait, helm may be done before the controller's next turn)
    web = workload(cluster, ns, "deployments", "web")
    assert web["spec"]["replicas"] == 2
    assert web["spec"]["template"]["spec"]["containers"][0]["image"].endswith(":v1")
    assert cluster.api("GET", f"/api/v1/namespaces/{ns}/secrets/sh.helm.release.v1.{NAME}.v1")

    checked = run_script("check", *args, "--tag", "v1", env=env)
    assert checked.returncode == 0, checked.stderr
    mismatch = run_script("check", *args, "--tag", "v2", env=env)  # it did read the release record
    assert mismatch.returncode == 3 and "runs tag v1" in mismatch.stderr, mismatch.stderr

    info = run_script("info", *args, env=env)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines() == [f"app,https://{NAME}.staging.example.com",
                                        f"{NAME}-web,http://{NAME}.staging.example.com"]

    running = run_script("archive_check", *args, env=env)
    assert running.returncode == 1 and f"deployment/{NAME}-web: spec.replicas is 2, not 0" in running.stderr

    done = run_script("archive", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert f"$ kubectl patch deployment {NAME}-web --namespace {ns}" in done.stderr  # kubectl did it
    patches = [r for r in cluster.requests() if r[0] == "PATCH" and "fieldManager=kubectl" in r[1]]
    assert any(f"/namespaces/{ns}/deployments/{NAME}-web?" in r[1] and r[2] == 200 for r in patches), patches
    web, worker = workload(cluster, ns, "deployments", "web"), workload(cluster, ns, "deployments", "worker")
    db = workload(cluster, ns, "statefulsets", "db")
    assert [w["spec"]["replicas"] for w in (web, worker, db)] == [0, 0, 0]
    assert web["metadata"]["annotations"][ARCHIVED] == "2"
    assert worker["metadata"]["annotations"][ARCHIVED] == "1"

    archived = run_script("archive_check", *args, env=env)
    assert archived.returncode == 0, archived.stderr

    with cluster.controller(ns):  # restore: create again
        done = run_script("create", *args, "--tag", "v1", env=env)
    assert done.returncode == 0, done.stderr
    cluster.ready(ns)
    web = workload(cluster, ns, "deployments", "web")
    assert web["spec"]["replicas"] == 2 and ARCHIVED not in (web["metadata"].get("annotations") or {})
    assert workload(cluster, ns, "deployments", "worker")["spec"]["replicas"] == 1
    assert run_script("check", *args, env=env).returncode == 0

    done = run_script("cleanup", *args, env=env)
    assert done.returncode == 0, done.stderr
    assert workload(cluster, ns, "deployments", "web") is None
    assert workload(cluster, ns, "statefulsets", "db") is None
    records = cluster.api("GET", f"/api/v1/namespaces/{ns}/secrets?labelSelector=owner%3Dhelm")["items"]
    assert records == []
    # Every request of the round carried credentials the API accepted.
    assert [r for r in cluster.requests() if r[2] == 401] == []


def test_round_with_a_kubeconfig_of_inline_ca_and_token(tls_cluster, pki, helm_bin, tmp_path):
    ns = fresh_namespace(tls_cluster)
    env = script_env(tmp_path, helm_bin, ns, KUBECONFIG=access("ca-data", tmp_path, pki, tls_cluster.url))
    octopod_round(tls_cluster, env, ns)


def test_round_in_cluster(tls_cluster, pki, helm_bin, tmp_path):
    """No KUBECONFIG, no ~/.kube/config, a service account: what Octopod's pod has. kubectl
    ignores in-cluster configuration once given --request-timeout (kubernetes/kubernetes#93474):
    without the generated kubeconfig archive's kubectl calls would go to localhost:8080."""
    ns = fresh_namespace(tls_cluster)
    env = in_cluster_env(tmp_path, helm_bin, ns, tls_cluster, pki)
    octopod_round(tls_cluster, env, ns)

    generated, = (tmp_path / "run" / f"octopod-control-{os.getuid()}").glob(f"{incluster.FILE_NAME_PREFIX}*")
    account = Path(env["KUBE_SERVICE_ACCOUNT_DIR"])
    assert stat.S_IMODE(generated.stat().st_mode) == 0o600
    assert stat.S_IMODE(generated.parent.stat().st_mode) == 0o700
    config = json.loads(generated.read_text())
    assert config["clusters"][0]["cluster"] == {"server": tls_cluster.url,
                                                "certificate-authority": str(account / "ca.crt")}
    assert config["users"][0]["user"] == {"tokenFile": str(account / "token")}  # a path: rotation works
    assert config["contexts"][0]["context"]["namespace"] == "octopod"
    assert TOKEN not in generated.read_text()
    assert not (Path(env["HOME"]) / ".kube" / "config").exists()  # (kubectl keeps a discovery cache there)


# The other credential forms run with helm 3 only, and without helm's wait: how a kubeconfig's
# credentials are loaded is client-go's, the same in both helms and in kubectl, while what differs
# between helm 3 and 4 (apply, wait) the two rounds above cover with each. helm 3 is what the image
# ships by default; its --wait polls every 2 s, which would add about 4 s a round here.
ONE_HELM = {"HELM_WAIT": "false"}


@pytest.mark.parametrize("kind", ["ca-file", "token-file", "insecure"])
def test_round_with_other_kubeconfig_credentials(tls_cluster, pki, tmp_path, kind):
    ns = fresh_namespace(tls_cluster)
    env = script_env(tmp_path, tool("helm3"), ns, KUBECONFIG=access(kind, tmp_path, pki, tls_cluster.url),
                     **ONE_HELM)
    octopod_round(tls_cluster, env, ns)


@pytest.mark.parametrize("kind", ["client-cert-files", "client-cert-data"])
def test_round_with_a_client_certificate_the_server_requires(mtls_cluster, pki, tmp_path, kind):
    ns = fresh_namespace(mtls_cluster)
    env = script_env(tmp_path, tool("helm3"), ns, KUBECONFIG=access(kind, tmp_path, pki, mtls_cluster.url),
                     **ONE_HELM)
    octopod_round(mtls_cluster, env, ns)


# -- refusals --------------------------------------------------------------------------------

def one_line_saying(stderr: str, *phrases: str) -> None:
    """Exactly one line of stderr gives the reason (in one of its wordings), the last line is
    our one-line error, and no traceback."""
    said = [line for line in stderr.splitlines() if any(p in line for p in phrases)]
    assert len(said) == 1, stderr
    assert stderr.splitlines()[-1].startswith("error: ") and "Traceback" not in stderr, stderr

def test_the_emulators_refuse_what_a_real_api_server_refuses(tls_cluster, mtls_cluster, pki, tmp_path):
    """Without this the rounds above would prove nothing about credentials."""
    trusted = ssl.create_default_context(cafile=str(pki.ca))

    def get(url: str, context: ssl.SSLContext, token: str | None = None) -> tuple[int, dict]:
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        try:
            with urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=10,
                                        context=context) as response:
                return response.status, json.loads(response.read())
        except urllib.error.HTTPError as exc:
            return exc.code, json.loads(exc.read())

    path = "/api/v1/namespaces"
    for token in (None, "wrong"):
        code, body = get(tls_cluster.url + path, trusted, token)
        assert (code, body["reason"], body["message"]) == (401, "Unauthorized", "Unauthorized")
    assert get(tls_cluster.url + path, trusted, TOKEN)[0] == 200
    assert get(tls_cluster.url + "/_emu/requests", trusted)[0] == 200  # the test's hooks stay open
    with_cert = ssl.create_default_context(cafile=str(pki.ca))
    with_cert.load_cert_chain(str(pki.client_cert), str(pki.client_key))
    assert get(tls_cluster.url + path, with_cert)[0] == 200  # a verified client certificate suffices
    # The server's certificate is the test CA's: anything else does not verify it.
    with pytest.raises(urllib.error.URLError, match="CERTIFICATE_VERIFY_FAILED"):
        get(tls_cluster.url + path, ssl.create_default_context(cafile=str(pki.other_ca)), TOKEN)
    # The mTLS server: no handshake without a client certificate, even with a good token.
    with pytest.raises((urllib.error.URLError, ssl.SSLError, ConnectionError)):
        get(mtls_cluster.url + path, trusted, TOKEN)
    assert get(mtls_cluster.url + path, with_cert)[0] == 200
    # kubectl with a token the server does not know: refused, and the emulator saw the 401.
    kubeconfig = json.loads(tls_cluster.kubeconfig.read_text())
    kubeconfig["users"][0]["user"] = {"token": "wrong"}
    path = tmp_path / "wrong-token.kubeconfig"
    path.write_text(json.dumps(kubeconfig))
    tls_cluster.reset_requests()
    done = subprocess.run([tool("kubectl"), "--kubeconfig", str(path), "get", "namespaces"],
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert done.returncode == 1
    assert done.stderr.splitlines()[-1].startswith("error: You must be logged in to the server"), done.stderr
    assert {r[2] for r in tls_cluster.requests()} == {401}


def test_a_wrong_ca_is_refused_in_one_line(tls_cluster, pki, tmp_path):
    ns = fresh_namespace(tls_cluster)
    kubeconfig = write_kubeconfig(tmp_path, tls_cluster.url, {"certificate-authority-data": b64(pki.other_ca)},
                                  {"token": TOKEN})
    env = script_env(tmp_path, tool("helm3"), ns, KUBECONFIG=kubeconfig)
    tls_cluster.reset_requests()
    checked = run_script("check", *octopod_args(NAME, ns), env=env)
    assert checked.returncode == 1
    # OpenSSL's reason in brackets (the server sends its CA along, so: a self-signed certificate
    # in the chain, one we do not trust).
    assert checked.stderr.startswith(f"error: Kubernetes API {tls_cluster.url}: TLS error: "
                                     "CERTIFICATE_VERIFY_FAILED (")
    assert len(checked.stderr.splitlines()) == 1, checked.stderr
    created = run_script("create", *octopod_args(NAME, ns), "--tag", "v1", env=env)
    assert created.returncode == 1
    # Our reader's words, or helm's when helm is the first to reach the API.
    one_line_saying(created.stderr, "TLS error: CERTIFICATE_VERIFY_FAILED",
                    "x509: certificate signed by unknown authority")
    assert tls_cluster.requests() == []  # nothing got past the handshake


@pytest.mark.parametrize("credential", [{}, {"token": "stolen-or-expired"}], ids=["none", "wrong-token"])
def test_a_refused_token_says_the_api_refused_us(tls_cluster, pki, tmp_path, credential):
    ns = fresh_namespace(tls_cluster)
    kubeconfig = write_kubeconfig(tmp_path, tls_cluster.url, {"certificate-authority": str(pki.ca)}, credential)
    env = script_env(tmp_path, tool("helm3"), ns, KUBECONFIG=kubeconfig)
    tls_cluster.reset_requests()
    checked = run_script("check", *octopod_args(NAME, ns), env=env)
    assert checked.returncode == 1
    assert checked.stderr.startswith(f"error: Kubernetes API {tls_cluster.url} refused our credentials")
    assert "401 Unauthorized" in checked.stderr and len(checked.stderr.splitlines()) == 1
    for operation in ("create", "archive", "cleanup"):
        done = run_script(operation, *octopod_args(NAME, ns), *(["--tag", "v1"] if operation == "create" else []),
                          env=env)
        assert done.returncode == 1, done.stderr
        one_line_saying(done.stderr, "refused our credentials: GET",  # our reader, or helm:
                        "the server has asked for the client to provide credentials")
    assert {r[2] for r in tls_cluster.requests()} == {401}


def test_in_cluster_with_a_token_the_api_refuses(tls_cluster, pki, tmp_path):
    ns = fresh_namespace(tls_cluster)
    env = in_cluster_env(tmp_path, tool("helm3"), ns, tls_cluster, pki)
    Path(env["KUBE_SERVICE_ACCOUNT_DIR"], "token").write_text("revoked")
    checked = run_script("check", *octopod_args(NAME, ns), env=env)
    assert checked.returncode == 1 and "refused our credentials" in checked.stderr, checked.stderr
    created = run_script("create", *octopod_args(NAME, ns), "--tag", "v1", env=env)
    assert created.returncode == 1 and "localhost:8080" not in created.stderr
    one_line_saying(created.stderr, "refused our credentials: GET",
                    "the server has asked for the client to provide credentials")


# -- the generated kubeconfig, without a server ------------------------------------------------

@pytest.fixture
def pod(tmp_path, monkeypatch) -> Path:
    """A process environment like a pod's: HOME without .kube, a private runtime dir."""
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("XDG_RUNTIME_DIR", str(tmp_path))
    (tmp_path / "home").mkdir()
    account = tmp_path / "sa"
    account.mkdir()
    (account / "token").write_text("t")
    (account / "ca.crt").write_text("ca")
    return account


def settings(account: Path, **values: str) -> Settings:
    return Settings({"PATH": "/usr/bin:/bin", "KUBECONFIG": "", "KUBE_SERVICE_ACCOUNT_DIR": str(account),
                     "KUBERNETES_SERVICE_HOST": "10.0.0.1", "KUBERNETES_SERVICE_PORT": "443", **values})


def test_the_service_account_kubeconfig_is_written_once_and_kept_apart_per_content(pod, tmp_path):
    env = incluster.tool_environ(settings(pod))
    path = Path(env["KUBECONFIG"])
    assert path.parent == tmp_path / f"octopod-control-{os.getuid()}"
    assert path.name.startswith("in-cluster-") and path.name.endswith(".kubeconfig")
    config = json.loads(path.read_text())
    assert config["clusters"][0]["cluster"]["server"] == "https://10.0.0.1:443"
    assert "namespace" not in config["contexts"][0]["context"]  # no namespace file: none
    before = path.stat()
    assert incluster.tool_environ(settings(pod))["KUBECONFIG"] == str(path)
    assert (path.stat().st_ino, path.stat().st_mtime_ns) == (before.st_ino, before.st_mtime_ns)
    env = incluster.tool_environ(settings(pod, KUBERNETES_SERVICE_HOST="fd00::1", KUBERNETES_SERVICE_PORT="6443"))
    other = Path(env["KUBECONFIG"])
    assert json.loads(other.read_text())["clusters"][0]["cluster"]["server"] == "https://[fd00::1]:6443"
    # Another API address: a file of its own, so a concurrent run's file is never overwritten.
    assert other != path and json.loads(path.read_text())["clusters"][0]["cluster"]["server"] == \
        "https://10.0.0.1:443"
    assert sorted(p.name for p in path.parent.iterdir() if p.is_file()) == sorted([path.name, other.name])


def test_a_kubeconfig_wins_over_the_service_account(pod, tmp_path):
    assert incluster.tool_environ(settings(pod, KUBECONFIG="/k/config"))["KUBECONFIG"] == "/k/config"
    (tmp_path / "home" / ".kube").mkdir()
    (tmp_path / "home" / ".kube" / "config").write_text("{}")
    assert "KUBECONFIG" not in incluster.tool_environ(settings(pod))  # empty: removed; kubectl finds ~/.kube
    assert not (tmp_path / f"octopod-control-{os.getuid()}").exists()


def test_outside_a_pod_the_tools_keep_their_defaults_and_the_reader_says_why(pod, tmp_path):
    outside = settings(pod, KUBERNETES_SERVICE_HOST="")
    assert "KUBECONFIG" not in incluster.tool_environ(outside)  # init's `helm repo add` needs no cluster
    assert not (tmp_path / f"octopod-control-{os.getuid()}").exists()
    with pytest.raises(ConfigError) as raised:
        kube.client_for(outside)
    assert str(raised.value) == "KUBECONFIG is not set and this is not a pod with a service account"


def test_the_api_reader_uses_the_configured_service_account(pod):
    client = kube.client_for(settings(pod))
    assert client.creds.server == "https://10.0.0.1:443"
    assert client.creds.ca_data == b"ca" and client.creds.token_file == str(pod / "token")
