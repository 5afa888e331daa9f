"""What reaches a child's environment: everything but the values only this tool reads.

The SSH key, the kubeconfig and docker config contents and every *_PASSWORD are for
init (and tag_check, in-process); helm, kubectl and kubeconfig exec plugins never get them.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from octopod_control.settings import Settings
from tests.conftest import tool

WITHHELD = {
    "SSH_PRIVATE_KEY": "-----BEGIN OPENSSH PRIVATE KEY-----\nwithheld-key-material\n-----END OPENSSH PRIVATE KEY-----",
    "KUBECONFIG_CONTENT": "apiVersion: v1\nkind: Config\n# withheld-kubeconfig-content",
    "DOCKER_CONFIG_JSON": '{"auths": {"withheld.example": {"auth": "d2l0aGhlbGQ6eA=="}}}',
    "REGISTRY_PASSWORD": "withheld-registry-password",
    "HELM_REPO_PASSWORD": "withheld-helm-repo-password",
    "DB_PASSWORD": "withheld-any-password",
}
# Secret-looking, but what a cloud's exec plugin (aws eks get-token) needs: passed on.
PASSED = {"AWS_SECRET_ACCESS_KEY": "passed-cloud-secret", "SOME_SETTING": "passed-plain"}


def test_settings_environ_withholds_init_only_secrets_from_every_layer(tmp_path):
    (tmp_path / "env").mkdir()
    (tmp_path / "env" / "defaults.env").write_text("CHART=charts/a\nHELM_REPO_PASSWORD=\n")
    (tmp_path / ".env").write_text("DB_PASSWORD=from-dotenv\nKUBECONFIG_CONTENT=from-dotenv\n")
    settings = Settings.load({**WITHHELD, **PASSED, "PATH": "/usr/bin", "KUBECONFIG": "/k"}, tmp_path)
    env = settings.environ()
    assert not set(WITHHELD) & set(env)
    assert {k: env[k] for k in PASSED} == PASSED and env["PATH"] == "/usr/bin" and env["KUBECONFIG"] == "/k"
    # This tool still reads its own, and redacts every one (an undeclared *_PASSWORD too).
    assert settings.raw("HELM_REPO_PASSWORD") == WITHHELD["HELM_REPO_PASSWORD"]
    assert set(WITHHELD.values()) <= set(settings.secret_values())


def _dumper(path: Path, then: str) -> Path:
    """A program that writes its environment (NUL-separated) to a new file, then does `then`."""
    path.write_text(f'#!/bin/sh\nenv -0 > "{path.parent}/dumps/{path.name}.$$"\n{then}\n')
    path.chmod(0o755)
    return path


def _dumps(directory: Path) -> dict[str, list[dict[str, str]]]:
    found: dict[str, list[dict[str, str]]] = {}
    for dump in sorted(directory.iterdir()):
        entries = [e.split("=", 1) for e in dump.read_text().split("\0") if "=" in e]
        found.setdefault(dump.name.rsplit(".", 1)[0], []).append(dict(entries))
    return found


def test_helm_kubectl_and_exec_plugins_never_see_the_withheld_secrets(cluster, scripts, octopod_env,
                                                                      namespace, tmp_path):
    cluster.requires_emulator("a kubeconfig with an exec plugin (the emulator takes any token)")
    bin_dir = tmp_path / "bin"
    (bin_dir / "dumps").mkdir(parents=True)
    helm = _dumper(bin_dir / "helm", f'exec {octopod_env["HELM_BIN"]} "$@"')
    kubectl = _dumper(bin_dir / "kubectl", f'exec {tool("kubectl")} "$@"')
    credential = {"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": "kube-emu"}}
    plugin = _dumper(bin_dir / "plugin", f"echo '{json.dumps(credential)}'")
    config = json.loads(Path(cluster.kubeconfig).read_text())
    config["users"][0]["user"] = {"exec": {"apiVersion": "client.authentication.k8s.io/v1",
                                           "command": str(plugin), "interactiveMode": "Never"}}
    kubeconfig = tmp_path / "kubeconfig"
    kubeconfig.write_text(json.dumps(config))
    env = {**WITHHELD, **PASSED, "HELM_BIN": str(helm), "KUBECTL_BIN": str(kubectl),
           "KUBECONFIG": str(kubeconfig)}
    args = ("--namespace", namespace, "--name", "env-dump", "--tag", "v1")
    with cluster.controller(namespace):
        created = scripts("create", *args, env=env)
    assert created.returncode == 0, created.stderr
    archived = scripts("archive", *args[:4], env=env)
    assert archived.returncode == 0, archived.stderr

    dumps = _dumps(bin_dir / "dumps")
    assert {"helm", "kubectl", "plugin"} <= set(dumps), sorted(dumps)  # each ran, the plugin for all three
    for program, environments in dumps.items():
        for child_env in environments:
            assert not set(WITHHELD) & set(child_env), program
            everything = "\0".join(child_env.values())
            assert not [k for k, v in WITHHELD.items() if v in everything], program
            assert {k: child_env.get(k) for k in PASSED} == PASSED, program
            assert child_env.get("PATH") and child_env.get("KUBECONFIG") == str(kubeconfig), program


@pytest.mark.parametrize("name", ["SSH_PRIVATE_KEY", "REGISTRY_PASSWORD", "X_PASSWORD"])
def test_a_withheld_name_is_withheld_whatever_its_value(name):
    assert name not in Settings({name: "v", "PATH": "/bin"}).environ()


def test_a_docker_credential_helper_does_not_get_registry_password(tmp_path):
    """tag_check still sends the pair to its registry, but a credential helper's environment lacks it."""
    import base64
    import os

    from octopod_control import registry as reg
    from tests.conftest import run_script
    from tests.support.registry import FakeRegistry

    def respond(method: str, path: str) -> tuple[int, dict]:
        if fake.authorizations[-1]:
            return 200, {"Content-Type": reg.ACCEPT.split(",")[0]}
        return 401, {"WWW-Authenticate": 'Basic realm="fake"'}

    fake = FakeRegistry(respond)
    bin_dir = tmp_path / "bin"
    (bin_dir / "dumps").mkdir(parents=True)
    _dumper(bin_dir / "docker-credential-dump", """echo '{"Username": "helper", "Secret": "from-helper"}'""")
    (tmp_path / "docker").mkdir()
    (tmp_path / "docker" / "config.json").write_text(json.dumps({"credHelpers": {fake.host: "dump"}}))
    env = {k: v for k, v in os.environ.items() if not k.startswith(("REGISTRY_", "OCTOPOD_", "DOCKER_"))}
    env.update(HOME=str(tmp_path), PATH=f"{bin_dir}:{env['PATH']}", DOCKER_CONFIG=str(tmp_path / "docker"),
               REGISTRY_IMAGES=f"{fake.host}/team/app", REGISTRY_INSECURE="true",
               REGISTRY_USERNAME="pair-user", REGISTRY_PASSWORD=WITHHELD["REGISTRY_PASSWORD"])
    argv = ("--namespace", "octopod", "--name", "feature-1", "--tag", "v1")
    try:
        # The pair is for another registry: this one's credentials come from the helper.
        done = run_script("tag_check", *argv, env={**env, "REGISTRY_AUTH_HOST": "elsewhere.example"},
                          timeout=60)
        assert done.returncode == 0, done.stderr
        assert fake.authorizations[-1] == "Basic " + base64.b64encode(b"helper:from-helper").decode()
        # The pair for this registry: read in-process, sent as before.
        done = run_script("tag_check", *argv, env=env, timeout=60)
        assert done.returncode == 0, done.stderr
        pair = f"pair-user:{WITHHELD['REGISTRY_PASSWORD']}".encode()
        assert fake.authorizations[-1] == "Basic " + base64.b64encode(pair).decode()
    finally:
        fake.stop()
    [helper_env] = _dumps(bin_dir / "dumps")["docker-credential-dump"]
    assert "REGISTRY_PASSWORD" not in helper_env and helper_env["REGISTRY_USERNAME"] == "pair-user"
    assert WITHHELD["REGISTRY_PASSWORD"] not in "\0".join(helper_env.values())
