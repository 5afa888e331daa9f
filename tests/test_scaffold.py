"""A chart nobody here wrote: the scaffold `helm create` makes, generated at test time by the
helm under test (3 and 4; never copied into the repository), through the whole Octopod round on
the emulator: create, check, info, archive, archive_check, restore, cleanup.

Three ways a team points the tool at it: `--deployment-override` keys in helm's `--set` syntax
(the ingress host in `ingress.hosts[0].host`), a VALUES_TEMPLATES file giving every staging its
own host with no overrides at all, and a copy with a strict `values.schema.json` deployed with
PROJECT_NAME_KEY, BASE_DOMAIN_KEY and APP_ENV_PREFIX switched off. The tests act as the
controllers (marking the Deployment ready, removing its Pods after a scale-down).
"""
from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.conftest import tool, without_helm
from tests.test_create import helm_values

CHART_NAME = "webapp"
DOMAIN = "stage.example.com"
# The scaffold's values: the image tag at image.tag (its default, "", means the appVersion).
SCAFFOLD_ENV = {"TAG_KEY": "image.tag", "BASE_DOMAIN": DOMAIN, "INFO_URLS": ""}

STRICT_SCHEMA = {
    "$schema": "http://json-schema.org/draft-07/schema#",
    "type": "object",
    "additionalProperties": False,
    "properties": {
        "replicaCount": {"type": "integer"},
        "image": {"type": "object", "additionalProperties": False, "properties": {
            "repository": {"type": "string"}, "pullPolicy": {"type": "string"},
            "tag": {"type": "string"}}},
        **{key: {} for key in (
            "imagePullSecrets", "nameOverride", "fullnameOverride", "serviceAccount", "podAnnotations",
            "podLabels", "podSecurityContext", "securityContext", "service", "ingress", "httpRoute",
            "resources", "livenessProbe", "readinessProbe", "autoscaling", "volumes", "volumeMounts",
            "nodeSelector", "tolerations", "affinity")},
    },
}

VALUES_TEMPLATE = """\
# The platform team's per-staging values: every staging its own host, no override typed.
ingress:
  enabled: true
  className: nginx
  hosts:
    - host: "{name}.{base_domain}"
      paths:
        - path: /
          pathType: Prefix
  tls:
    - secretName: "{name}-tls"
      hosts:
        - "{name}.{base_domain}"
podLabels:
  octopod.example.com/staging: "{name}"
  octopod.example.com/project: "{project_name}"
replicaCount: 2
"""


@pytest.fixture
def scaffold(helm_bin: str, tmp_path: Path) -> Path:
    """`helm create`, by the helm under test, now."""
    done = subprocess.run([helm_bin, "create", CHART_NAME], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    chart = tmp_path / CHART_NAME
    assert (chart / "templates" / "ingress.yaml").is_file() and (chart / "values.yaml").is_file()
    return chart


def kubectl_json(env: dict, namespace: str, what: str) -> dict:
    done = subprocess.run([tool("kubectl"), "get", what, "-n", namespace, "-o", "json"], env=env,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def scaffold_args(name: str, namespace: str, project: str = "demo") -> list[str]:
    return ["--project-name", project, "--base-domain", DOMAIN, "--namespace", namespace, "--name", name]


def add_pod(cluster, namespace: str, release: str) -> None:
    """What the ReplicaSet controller would start: a running Pod of the release."""
    cluster.api("POST", f"/api/v1/namespaces/{namespace}/pods", {
        "apiVersion": "v1", "kind": "Pod",
        "metadata": {"name": f"{release}-{CHART_NAME}-pod", "labels": {
            "app.kubernetes.io/instance": release, "app.kubernetes.io/name": CHART_NAME}},
        "spec": {"containers": [{"name": CHART_NAME, "image": "nginx"}]}})
    cluster.ready(namespace)


def stop_pods(cluster, namespace: str) -> None:
    for pod in cluster.api("GET", f"/api/v1/namespaces/{namespace}/pods")["items"]:
        cluster.api("DELETE", f"/api/v1/namespaces/{namespace}/pods/{pod['metadata']['name']}")


def octopod_round(cluster, scripts, env: dict, namespace: str, name: str, create_args: list[str],
                  *, url: str, replicas: int, extra_env: dict) -> None:
    """create, check (0, then 3 for another tag), info, archive, archive_check, restore, cleanup."""
    env_all = {**SCAFFOLD_ENV, **extra_env}
    args = scaffold_args(name, namespace)
    deployment = f"deployment/{name}-{CHART_NAME}"
    with cluster.controller(namespace):
        done = scripts("create", *args, "--tag", "1.27", *create_args, env=env_all)
    assert done.returncode == 0, done.stderr
    live = kubectl_json(env, namespace, deployment)
    assert live["spec"]["template"]["spec"]["containers"][0]["image"] == "nginx:1.27"
    assert live["spec"]["replicas"] == replicas

    checked = scripts("check", *args, "--tag", "1.27", env=env_all)
    assert checked.returncode == 0, checked.stderr
    other = scripts("check", *args, "--tag", "1.28", env=env_all)
    assert other.returncode == 3 and "runs tag 1.27 (image.tag), requested 1.28" in other.stderr

    info = scripts("info", *args, env=env_all)
    assert info.returncode == 0, info.stderr
    assert info.stdout.splitlines() == [f"{name}-{CHART_NAME},{url}"]  # the live Ingress's host

    add_pod(cluster, namespace, name)
    assert scripts("archive_check", *args, env=env_all).returncode == 1
    done = scripts("archive", *args, env=env_all)
    assert done.returncode == 0, done.stderr
    assert kubectl_json(env, namespace, deployment)["spec"]["replicas"] == 0
    stop_pods(cluster, namespace)  # the controller's answer to the scale-down
    archived = scripts("archive_check", *args, env=env_all)
    assert archived.returncode == 0, archived.stderr

    with cluster.controller(namespace):  # restore: create again, the same tag
        done = scripts("create", *args, "--tag", "1.27", *create_args, env=env_all)
    assert done.returncode == 0, done.stderr
    assert kubectl_json(env, namespace, deployment)["spec"]["replicas"] == replicas
    assert scripts("check", *args, "--tag", "1.27", env=env_all).returncode == 0

    assert scripts("archive", *args, env=env_all).returncode == 0
    done = scripts("cleanup", *args, env=env_all)
    assert done.returncode == 0, done.stderr
    left = kubectl_json(env, namespace, "all,ingress,serviceaccount,secret")["items"]
    assert [i["metadata"]["name"] for i in left if name in i["metadata"]["name"]] == []


INGRESS_OVERRIDES = [
    "ingress.enabled=true",
    "ingress.className=nginx",
    "ingress.hosts[0].host=feat-x.stage.example.com",
    # A list given by index replaces the chart's whole list, as with helm --set: its paths too.
    "ingress.hosts[0].paths[0].path=/",
    "ingress.hosts[0].paths[0].pathType=Prefix",
    "ingress.tls[0].secretName=feat-x-tls",
    "ingress.tls[0].hosts[0]=feat-x.stage.example.com",
    r"ingress.annotations.nginx\.ingress\.kubernetes\.io/proxy-body-size=8m",
    "replicaCount=2",
]


def test_scaffold_round_with_set_syntax_overrides(cluster, scripts, octopod_env, namespace, scaffold):
    overrides = [a for item in INGRESS_OVERRIDES for a in ("--deployment-override", item)]
    octopod_round(cluster, scripts, octopod_env, namespace, "feat-x", overrides,
                  url="https://feat-x.stage.example.com", replicas=2, extra_env={"CHART": str(scaffold)})


def test_scaffold_ingress_from_set_syntax_overrides(cluster, scripts, octopod_env, namespace, scaffold):
    """What helm stored and what the Ingress holds: the keys landed where helm --set puts them."""
    overrides = [a for item in INGRESS_OVERRIDES for a in ("--deployment-override", item)]
    args = scaffold_args("feat-y", namespace)
    with cluster.controller(namespace):
        done = scripts("create", *args, "--tag", "1.27", *overrides,
                       env={**SCAFFOLD_ENV, "CHART": str(scaffold), "HELM_WAIT": "false"})
    assert done.returncode == 0, done.stderr
    stored = helm_values(octopod_env, "feat-y", namespace)
    assert stored["ingress"]["hosts"] == [{"host": "feat-x.stage.example.com",
                                          "paths": [{"path": "/", "pathType": "Prefix"}]}]
    assert stored["ingress"]["annotations"] == {"nginx.ingress.kubernetes.io/proxy-body-size": "8m"}
    ingress = kubectl_json(octopod_env, namespace, f"ingress/feat-y-{CHART_NAME}")
    assert ingress["spec"]["rules"][0]["host"] == "feat-x.stage.example.com"
    assert ingress["spec"]["tls"] == [{"hosts": ["feat-x.stage.example.com"], "secretName": "feat-x-tls"}]
    assert ingress["spec"]["ingressClassName"] == "nginx"


def test_scaffold_round_driven_by_values_templates(cluster, scripts, octopod_env, namespace, scaffold,
                                                   tmp_path):
    template = tmp_path / "staging-values.yaml"
    template.write_text(VALUES_TEMPLATE)
    env = {"CHART": str(scaffold), "VALUES_TEMPLATES": str(template)}
    octopod_round(cluster, scripts, octopod_env, namespace, "feat-t", [],
                  url=f"https://feat-t.{DOMAIN}", replicas=2, extra_env=env)


def test_values_templates_give_each_staging_its_own_values(cluster, scripts, octopod_env, namespace,
                                                           scaffold, tmp_path):
    template = tmp_path / "staging-values.yaml"
    template.write_text(VALUES_TEMPLATE)
    common = tmp_path / "common.yaml"
    common.write_text("replicaCount: 5\nservice:\n  port: 8080\n")
    rendered_in = tmp_path / "tmp"
    rendered_in.mkdir()
    env = {**SCAFFOLD_ENV, "CHART": str(scaffold), "VALUES_FILES": str(common),
           "VALUES_TEMPLATES": str(template), "HELM_WAIT": "false", "TMPDIR": str(rendered_in)}
    for name in ("feat-1", "feat-2"):
        # A project name YAML would read as a bool: it stays a string.
        done = scripts("create", *scaffold_args(name, namespace, project="true"), "--tag", "1.27",
                       "--deployment-override", "replicaCount=3", env=env)
        assert done.returncode == 0, done.stderr
    for name in ("feat-1", "feat-2"):
        stored = helm_values(octopod_env, name, namespace)
        assert stored["ingress"]["hosts"][0]["host"] == f"{name}.{DOMAIN}"
        assert stored["podLabels"] == {"octopod.example.com/staging": name,
                                       "octopod.example.com/project": "true"}
        # VALUES_FILES, then the template (replicaCount 2 over 5), then the override (3).
        assert stored["replicaCount"] == 3 and stored["service"] == {"port": 8080}
        labels = kubectl_json(octopod_env, namespace, f"deployment/{name}-{CHART_NAME}")[
            "spec"]["template"]["metadata"]["labels"]
        assert labels["octopod.example.com/staging"] == name
    assert list(rendered_in.glob("octopod-values-*")) == []  # the rendered files are gone


@without_helm
@pytest.mark.parametrize("content, message", [
    ('host: "{name}.{domain}"\n', "line 1: unknown placeholder {domain}; use {name}, {namespace}, "
                                  "{project_name}, {base_domain}, {tag}"),
    ("host: {name}\n", "{name} unquoted is a YAML mapping, not a placeholder; quote the value"),
    ("hosts: [a, b\n", "not valid YAML"),
    ("- a list\n", "the top level must be a mapping of values"),
])
def test_a_bad_values_template_is_exit_78_before_anything_runs(cluster, scripts, namespace, tmp_path,
                                                               content, message):
    template = tmp_path / "bad.yaml"
    template.write_text(content)
    cluster.reset_requests()
    done = scripts("create", *scaffold_args("bad", namespace), "--tag", "1", env={
        "VALUES_TEMPLATES": str(template)})
    assert done.returncode == 78, done.stderr
    assert done.stderr.startswith(f"error: VALUES_TEMPLATES: {template}: ") and message in done.stderr
    assert done.stderr.count("\n") == 1, done.stderr
    assert [r for r in cluster.requests() if namespace in r[1]] == []


@without_helm
def test_an_unreadable_values_template_is_exit_78_naming_it(scripts, namespace, tmp_path):
    missing = tmp_path / "missing.yaml"
    done = scripts("create", *scaffold_args("bad", namespace), "--tag", "1",
                   env={"VALUES_TEMPLATES": str(missing)})
    assert done.returncode == 78
    assert done.stderr.strip() == (f"error: VALUES_TEMPLATES: {missing}: cannot be read "
                                   "(No such file or directory)")


def strict_copy(scaffold: Path) -> Path:
    strict = scaffold.parent / "strict"
    shutil.copytree(scaffold, strict)
    (strict / "values.schema.json").write_text(json.dumps(STRICT_SCHEMA, indent=1))
    return strict


KEYS_OFF = {"PROJECT_NAME_KEY": "", "BASE_DOMAIN_KEY": "", "APP_ENV_PREFIX": ""}


def test_a_strict_schema_refuses_the_default_keys(cluster, scripts, namespace, scaffold):
    done = scripts("create", *scaffold_args("strict", namespace), "--tag", "1.27",
                   env={**SCAFFOLD_ENV, "CHART": str(strict_copy(scaffold))})
    assert done.returncode == 1
    assert "global" in done.stderr and "helm upgrade --install strict: failed" in done.stderr


def test_scaffold_round_with_a_strict_schema_and_the_keys_switched_off(
        cluster, scripts, octopod_env, namespace, scaffold):
    env = {"CHART": str(strict_copy(scaffold)), **KEYS_OFF}
    overrides = ["--deployment-override", "ingress.enabled=true",
                 "--deployment-override", "ingress.hosts[0].host=strict.stage.example.com",
                 "--deployment-override", "ingress.hosts[0].paths[0].path=/",
                 "--deployment-override", "ingress.hosts[0].paths[0].pathType=Prefix"]
    octopod_round(cluster, scripts, octopod_env, namespace, "strict", overrides,
                  url="http://strict.stage.example.com", replicas=1, extra_env=env)


def test_an_app_env_override_with_app_env_switched_off_is_exit_64(cluster, scripts, namespace,
                                                                   scaffold):
    done = scripts("create", *scaffold_args("strict", namespace), "--tag", "1.27",
                   "--app-env-override", "GREETING=hello",
                   env={**SCAFFOLD_ENV, "CHART": str(scaffold), **KEYS_OFF})
    assert done.returncode == 64
    assert done.stderr.strip() == ("error: --app-env-override GREETING: app-env overrides are switched "
                                   "off (APP_ENV_PREFIX is empty), so nothing would receive them")
