"""create, update and info end to end: scripts/* by absolute path, real helm 3 and 4, emulated API."""
from __future__ import annotations

import json
import subprocess

import pytest

from tests.conftest import ROOT, tool
from tests.support.processes import kill_helm_when

TRICKY = {
    "COMMA": "a,b",
    "EQUALS": "x=y=z",
    "LEADING_ZERO": "0123",
    "BOOL": "true",
    "NULLISH": "null",
    "EMPTY": "",
    "SPACES": "  two  spaces ",
    "QUOTES": "it's \"quoted\"",
    "BRACES": "{a: [1, 2]}",
    "BRACKETS": "list[0].x",
    "BACKSLASH": "C:\\path\\to",
    "UNICODE": "ünïcødé 🐙",
    "SHELL": "$(touch /tmp/pwned) `id` ; rm -rf /",
    "MULTILINE": "line1\nline2",
}


def octopod_args(name: str, namespace: str, *extra: str) -> list[str]:
    return ["--project-name", "demo", "--base-domain", "staging.example.com",
            "--namespace", namespace, "--name", name, *extra]


def helm_values(env, name, namespace):
    out = subprocess.run([env["HELM_BIN"], "get", "values", name, "-n", namespace, "-o", "json"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def kubectl_json(env, *args):
    out = subprocess.run([tool("kubectl"), *args, "-o", "json"], env=env, capture_output=True,
                         text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    return json.loads(out.stdout)


def test_create_passes_every_value_verbatim(cluster, scripts, octopod_env, namespace):
    overrides = [a for k, v in TRICKY.items() for a in ("--app-env-override", f"{k}={v}")]
    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("feat-1", namespace, "--tag", "v1", *overrides,
                                               "--deployment-override", "app.replicas=2",
                                               "--deployment-override", "extra.flag=true",
                                               "--deployment-override", "extra.id=0123",
                                               "--deployment-override", r"extra.dotted\.key=a,b"))
    assert done.returncode == 0, done.stderr
    assert done.stdout == ""
    values = helm_values(octopod_env, "feat-1", namespace)
    assert values["app"]["env"] == TRICKY
    assert values["app"]["tag"] == "v1" and values["app"]["replicas"] == 2
    assert values["extra"] == {"flag": True, "id": "0123", "dotted.key": "a,b"}
    assert values["global"] == {"project-name": "demo", "base-domain": "staging.example.com"}
    # The rendered Deployment carries the values as the chart put them.
    dep = kubectl_json(octopod_env, "get", "deployment", "feat-1-app", "-n", namespace)
    env = {e["name"]: e.get("value", "") for e in dep["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["COMMA"] == "a,b" and env["LEADING_ZERO"] == "0123" and env["BOOL"] == "true"
    assert env["SHELL"] == TRICKY["SHELL"] and env["UNICODE"] == TRICKY["UNICODE"]
    assert dep["spec"]["replicas"] == 2


def test_override_values_never_reach_the_log(cluster, scripts, namespace):
    secret = "s3cr3t-" + namespace
    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("feat-2", namespace, "--tag", "v1",
                                               "--app-env-override", f"DB_PASSWORD={secret}"))
    assert done.returncode == 0, done.stderr
    assert secret not in done.stdout + done.stderr


def test_update_replaces_the_whole_set_of_overrides(cluster, scripts, octopod_env, namespace):
    with cluster.controller(namespace):
        first = scripts("create", *octopod_args("feat-3", namespace, "--tag", "v1",
                                                "--app-env-override", "OLD=1",
                                                "--deployment-override", "app.replicas=3"))
        assert first.returncode == 0, first.stderr
        second = scripts("update", *octopod_args("feat-3", namespace, "--tag", "v2",
                                                 "--app-env-override", "NEW=2"))
    assert second.returncode == 0, second.stderr
    values = helm_values(octopod_env, "feat-3", namespace)
    assert values["app"] == {"tag": "v2", "env": {"NEW": "2"}}


def test_create_twice_is_safe(cluster, scripts, octopod_env, namespace):
    args = octopod_args("feat-4", namespace, "--tag", "v1")
    with cluster.controller(namespace):
        assert scripts("create", *args).returncode == 0
        again = scripts("create", *args)
    assert again.returncode == 0, again.stderr
    assert helm_values(octopod_env, "feat-4", namespace)["app"]["tag"] == "v1"


def test_wait_times_out_honestly_without_controllers(scripts, namespace):
    done = scripts("create", *octopod_args("feat-5", namespace, "--tag", "v1"),
                   env={"HELM_TIMEOUT": "3"})
    assert done.returncode == 1
    assert "helm upgrade --install feat-5: failed" in done.stderr
    assert "Traceback" not in done.stderr


def test_a_release_left_pending_is_recovered(cluster, scripts, octopod_env, namespace):
    """A run killed mid-install leaves `pending-install`; the next create removes and redoes it."""
    env = dict(octopod_env, HELM_TIMEOUT="30")
    mark = "octopod.io/managed-by=octopod-control,octopod.io/staging=feat-6"  # as our create marks it
    kill_helm_when("pending-install", [env["HELM_BIN"], "upgrade", "--install", "feat-6",
                                       str(ROOT / "charts" / "example"), "-n", namespace, "--wait",
                                       "--timeout", "30s", "--labels", mark], env, "feat-6", namespace)
    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("feat-6", namespace, "--tag", "v1"))
    assert done.returncode == 0, done.stderr
    assert "interrupted run" in done.stderr
    status = subprocess.run([env["HELM_BIN"], "status", "feat-6", "-n", namespace, "-o", "json"],
                            env=env, capture_output=True, text=True, timeout=30)
    assert json.loads(status.stdout)["info"]["status"] == "deployed"


def test_a_release_left_pending_upgrade_is_rolled_back_then_upgraded(cluster, scripts, octopod_env,
                                                                     namespace):
    """A run killed mid-upgrade leaves `pending-upgrade`; the next create rolls back, then upgrades."""
    env = dict(octopod_env, HELM_TIMEOUT="30")
    with cluster.controller(namespace):
        assert scripts("create", *octopod_args("feat-9", namespace, "--tag", "v1")).returncode == 0
    kill_helm_when("pending-upgrade", [env["HELM_BIN"], "upgrade", "feat-9",
                                       str(ROOT / "charts" / "example"), "-n", namespace, "--wait",
                                       "--timeout", "30s", "--set", "app.tag=v2"], env, "feat-9", namespace)
    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("feat-9", namespace, "--tag", "v3"))
    assert done.returncode == 0, done.stderr
    assert "rolling back to revision 1" in done.stderr
    history = subprocess.run([env["HELM_BIN"], "history", "feat-9", "-n", namespace, "-o", "json"],
                             env=env, capture_output=True, text=True, timeout=30)
    descriptions = [(r["status"], r["description"]) for r in json.loads(history.stdout)]
    # helm keeps the interrupted revision in history as it was; what counts is what came after.
    assert descriptions[-2] == ("superseded", "Rollback to 1")
    assert descriptions[-1][0] == "deployed"
    assert helm_values(env, "feat-9", namespace)["app"]["tag"] == "v3"


def test_info_prints_only_key_value_lines(cluster, scripts, namespace):
    with cluster.controller(namespace):
        assert scripts("create", *octopod_args("feat-7", namespace, "--tag", "v1")).returncode == 0
    done = scripts("info", *octopod_args("feat-7", namespace),
                   env={"INFO_URLS": "app=https://{name}.{base_domain} api=https://api-{name}.{base_domain}/v1"})
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines == ["app,https://feat-7.staging.example.com", "api,https://api-feat-7.staging.example.com/v1"]


def test_info_lists_ingress_hosts_and_survives_a_missing_release(cluster, scripts, namespace):
    with cluster.controller(namespace):
        done = scripts("create", *octopod_args("feat-8", namespace, "--tag", "v1"),
                       env={"INFO_URLS": ""})
        assert done.returncode == 0, done.stderr
    done = scripts("info", *octopod_args("feat-8", namespace), env={"INFO_URLS": ""})
    assert done.stdout.splitlines() == ["feat-8-app,https://feat-8.staging.example.com"]
    missing = scripts("info", *octopod_args("never-made", namespace))
    assert missing.returncode == 0
    assert missing.stdout.splitlines() == ["app,https://never-made.staging.example.com"]


def test_info_with_the_api_down_still_prints_configured_urls(scripts, namespace, dead_kubeconfig):
    done = scripts("info", *octopod_args("x", namespace), env={"KUBECONFIG": dead_kubeconfig})
    assert done.returncode == 0
    assert done.stdout == "app,https://x.staging.example.com\n"
    assert "unreachable" in done.stderr


HOSTILE = [
    (["--name", "x;rm -rf /"], "--name"),
    (["--name", "../../etc"], "--name"),
    (["--name", "UPPER"], "--name"),
    (["--name", ""], "--name"),
    (["--name", "x", "--app-env-override", "NOEQ"], "--app-env-override"),
    (["--name", "x", "--app-env-override", "=v"], "--app-env-override"),
    (["--name", "x", "--deployment-override", "a..b=1"], "--deployment-override"),
    ([], "--name"),
    (["--name", "x", "--unknown-flag", "1"], "--unknown-flag"),
    (["--name", "x", "--tag"], "--tag"),
    (["--name", "x", "extra-positional"], "extra-positional"),
    (["--name", "x", "--list"], "--list"),
    (["--name", "x", "check"], "check"),
]


@pytest.mark.parametrize("args, named", HOSTILE, ids=[" ".join(a) or "no-args" for a, _ in HOSTILE])
def test_hostile_input_is_rejected_with_64_and_no_release(scripts, octopod_env, namespace, args, named):
    done = scripts("create", "--namespace", namespace, *args)
    assert done.returncode == 64, (done.returncode, done.stderr)
    assert done.stdout == ""
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and named in lines[0] and "Traceback" not in done.stderr
    listed = subprocess.run([octopod_env["HELM_BIN"], "list", "-n", namespace, "-q"], env=octopod_env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stderr



def test_helm4_takes_back_fields_and_upgrades_helm3_releases(cluster, scripts, octopod_env, namespace,
                                                             tmp_path):
    """helm 4 gets --force-conflicts (server-side apply); a helm-3 release keeps client-side apply."""
    recorder = tmp_path / "helm"
    argv_log = tmp_path / "argv.log"
    recorder.write_text(f'#!/bin/sh\necho "$*" >> {argv_log}\nexec {tool("helm4")} "$@"\n')
    recorder.chmod(0o755)
    args = octopod_args("mixed", namespace, "--tag", "v1")
    with cluster.controller(namespace):
        assert scripts("create", *args, env={"HELM_BIN": tool("helm3")}).returncode == 0
        done = scripts("update", *octopod_args("mixed", namespace, "--tag", "v2"),
                       env={"HELM_BIN": str(recorder)})
        assert done.returncode == 0, done.stderr
        assert "uses client-side apply" in done.stderr
        fresh = scripts("create", *octopod_args("fresh4", namespace, "--tag", "v1"),
                        env={"HELM_BIN": str(recorder)})
        assert fresh.returncode == 0, fresh.stderr
    upgrades = [line for line in argv_log.read_text().splitlines() if line.startswith("upgrade")]
    assert [("--force-conflicts" in line) for line in upgrades] == [True, False, True]
    assert helm_values(octopod_env, "mixed", namespace)["app"]["tag"] == "v2"
