"""The values mapping: where each argument lands and how it is typed."""
from __future__ import annotations

import json
import subprocess

import pytest
import yaml

from octopod_control.args import build_deployment
from octopod_control.errors import EXIT_USAGE, ConfigError, UsageError
from octopod_control.values import build_values, dump_values, helm_typed

KEYS = {"TAG_KEY": "app.tag", "PROJECT_NAME_KEY": "global.project-name",
        "BASE_DOMAIN_KEY": "global.base-domain", "APP_ENV_PREFIX": "app.env",
        "DEPLOYMENT_OVERRIDE_PREFIX": ""}


@pytest.mark.parametrize("raw, typed", [
    ("true", True), ("false", False), ("TRUE", True), ("null", None), ("2", 2), ("0", 0),
    ("-5", -5), ("-0", 0), ("+012", 12), ("-012", -12), ("00", "00"), ("+", "+"), ("0123", "0123"), ("1.5", "1.5"), ("yes", "yes"), ("", ""), ("1e3", "1e3"),
    ("99999999999999999999", "99999999999999999999"), ("a,b", "a,b"),
])
def test_deployment_overrides_are_typed_like_helm_set(raw, typed):
    assert helm_typed(raw) == typed and type(helm_typed(raw)) is type(typed)


def tree(**flags):
    d = build_deployment({"NAMESPACE": "n"}, name="x", **flags)
    return build_values(d, dict(KEYS))


def test_arguments_land_at_their_keys():
    t = tree(project_name="P", base_domain="d.com", tag="v1",
             app_env_override=["A=true", "B=0123", "C=a,b"],
             deployment_override=["app.replicas=2", "x.flag=true", "x.id=0123"])
    assert t == {"global": {"project-name": "P", "base-domain": "d.com"},
                 "app": {"tag": "v1", "env": {"A": "true", "B": "0123", "C": "a,b"}, "replicas": 2},
                 "x": {"flag": True, "id": "0123"}}


def test_deployment_prefix_moves_overrides_under_a_key():
    d = build_deployment({"NAMESPACE": "n"}, name="x", deployment_override=["a.b=1"])
    assert build_values(d, {**KEYS, "DEPLOYMENT_OVERRIDE_PREFIX": "chart.values"}) == {
        "chart": {"values": {"a": {"b": 1}}}}


def test_overrides_apply_in_order_as_helm_set_does():
    assert tree(deployment_override=["a.b=1", "a=2"]) == {"a": 2}  # a value replaces a map
    assert tree(deployment_override=["l[2]=x", "l[0].k=v"]) == {"l": [{"k": "v"}, None, "x"]}
    with pytest.raises(UsageError, match="a already holds a value"):  # not a map: helm refuses too
        tree(deployment_override=["a=1", "a.b=2"])


@pytest.mark.parametrize("switched_off, absent", [
    ("PROJECT_NAME_KEY", ("global", "project-name")),
    ("BASE_DOMAIN_KEY", ("global", "base-domain")),
])
def test_an_empty_key_switches_its_value_off(switched_off, absent):
    d = build_deployment({"NAMESPACE": "n"}, name="x", project_name="P", base_domain="d.com", tag="v1",
                         deployment_override=[f"{'.'.join(absent)}=mine"])
    values = build_values(d, {**KEYS, switched_off: ""})
    assert values["global"][absent[1]] == "mine"  # not set by Octopod, and no longer protected
    assert values["app"]["tag"] == "v1"


def test_all_three_keys_off_leave_only_the_tag():
    d = build_deployment({"NAMESPACE": "n"}, name="x", project_name="P", base_domain="d.com", tag="v1")
    off = {**KEYS, "PROJECT_NAME_KEY": "", "BASE_DOMAIN_KEY": "", "APP_ENV_PREFIX": "", "TAG_KEY": "image.tag"}
    assert build_values(d, off) == {"image": {"tag": "v1"}}


def test_app_env_overrides_need_their_prefix():
    d = build_deployment({"NAMESPACE": "n"}, name="x", app_env_override=["DB_URL=s3cr3t"])
    with pytest.raises(UsageError) as caught:
        build_values(d, {**KEYS, "APP_ENV_PREFIX": ""})
    assert caught.value.exit_code == 64 and "s3cr3t" not in str(caught.value)
    assert str(caught.value).startswith("--app-env-override DB_URL: app-env overrides are switched off "
                                        "(APP_ENV_PREFIX is empty)")


def test_the_tag_key_cannot_be_switched_off():
    d = build_deployment({"NAMESPACE": "n"}, name="x", tag="v1")
    with pytest.raises(ConfigError, match="TAG_KEY: must be a dotted values path"):
        build_values(d, {**KEYS, "TAG_KEY": ""})


def test_bad_key_setting_is_a_config_error():
    d = build_deployment({"NAMESPACE": "n"}, name="x")
    with pytest.raises(ConfigError):
        build_values(d, {**KEYS, "TAG_KEY": "a..b"})


@pytest.mark.parametrize("value", ["a\u2028b", "x\u0085y", "\ufeffbom", "del\x7f", "tab\tnl\nq\"'",
                                   "emoji 🐙", "back\\slash", ": not a map", "- not a list", "*anchor"])
def test_dump_is_yaml_that_reads_back_exactly(value):
    text = dump_values({"k": value})
    assert yaml.safe_load(text) == {"k": value}
    assert json.loads(text) == {"k": value}


TYPING_CORPUS = ["true", "false", "TRUE", "False", "null", "Null", "0", "-0", "+012", "-012", "00",
                 "0123", "7", "-5", "+", "-", "1.5", "1e3", "yes", "", "9223372036854775807",
                 "9223372036854775808", "-9223372036854775808", "0x1F", "1_000", " 1"]


def test_typing_matches_real_helm_set(tmp_path, helm_bin):
    """Our typing against helm's own, 3 and 4: one `helm template --set vN=...` renders every
    value's JSON."""
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: typing\nversion: 0.1.0\n")
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n"
        "  json: {{ toJson .Values | quote }}\n")
    args = [a for i, v in enumerate(TYPING_CORPUS) for a in ("--set", f"v{i}={v}")]
    done = subprocess.run([helm_bin, "template", "t", str(chart), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = json.loads(yaml.safe_load(done.stdout)["data"]["json"])
    for i, value in enumerate(TYPING_CORPUS):
        assert rendered[f"v{i}"] == helm_typed(value), (value, rendered[f"v{i}"])
        assert type(rendered[f"v{i}"]) is type(helm_typed(value)), value


# -- what overrides may not do: touch the platform's paths, or carry templates --------------

def refused(protected=(), prefix="", allow_templates=False, **flags):
    d = build_deployment({"NAMESPACE": "n"}, name="x", **flags)
    with pytest.raises(UsageError) as caught:
        build_values(d, {**KEYS, "DEPLOYMENT_OVERRIDE_PREFIX": prefix}, list(protected), allow_templates)
    assert caught.value.exit_code == EXIT_USAGE == 64 and "\n" not in str(caught.value)
    return str(caught.value)


PLATFORM = ("serviceAccount.name image.repository ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/auth-url "
            "ingress.hosts tls.secretName")


@pytest.mark.parametrize("override, prefix, message", [
    ("app.tag=evil", "", "--deployment-override app.tag: sets app.tag, which is protected (TAG_KEY)"),
    ("app.tag.x=1", "", "--deployment-override app.tag.x: lies under app.tag, which is protected (TAG_KEY)"),
    ("app=1", "", "--deployment-override app: would replace app.tag, which is protected (TAG_KEY)"),
    ("global=1", "", "--deployment-override global: would replace global.project-name, which is "
                     "protected (PROJECT_NAME_KEY)"),
    ("global.base-domain=evil.com", "", "--deployment-override global.base-domain: sets "
                                        "global.base-domain, which is protected (BASE_DOMAIN_KEY)"),
    ("app.env.DB_URL=x", "", "--deployment-override app.env.DB_URL: lies under app.env, which is "
                             "protected (APP_ENV_PREFIX)"),
    ("serviceAccount.name=admin", "", "--deployment-override serviceAccount.name: sets "
                                      "serviceAccount.name, which is protected (PROTECTED_VALUES)"),
    ("serviceAccount=x", "", "--deployment-override serviceAccount: would replace serviceAccount.name, "
                             "which is protected (PROTECTED_VALUES)"),
    ("image.repository.x=1", "", "lies under image.repository, which is protected (PROTECTED_VALUES)"),
    ("ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/auth-url=x", "",
     "sets ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/auth-url, which is protected"),
    ("ingress.annotations=x", "", "would replace ingress.annotations.nginx\\.ingress\\.kubernetes\\.io/auth-url"),
    # Overrides land under the prefix: the protected paths are from the root.
    ("env.X=1", "app", "--deployment-override env.X (at app.env.X, under DEPLOYMENT_OVERRIDE_PREFIX): "
                       "lies under app.env, which is protected (APP_ENV_PREFIX)"),
    ("tag=v9", "app", "--deployment-override tag (at app.tag, under DEPLOYMENT_OVERRIDE_PREFIX): sets "
                      "app.tag, which is protected (TAG_KEY)"),
    ("name=x", "serviceAccount", "(at serviceAccount.name, under DEPLOYMENT_OVERRIDE_PREFIX): sets"),
    # By index: under a protected list, or replacing the list that holds a protected path.
    ("ingress.hosts[0].host=evil.com", "", "--deployment-override ingress.hosts[0].host: lies under "
                                          "ingress.hosts, which is protected (PROTECTED_VALUES)"),
    ("tls[0].hosts[0]=x", "", "--deployment-override tls[0].hosts[0]: would replace tls.secretName"),
    ("app[0]=x", "", "--deployment-override app[0]: would replace app.tag, which is protected (TAG_KEY)"),
    ("hosts[1]=x", "ingress", "(at ingress.hosts[1], under DEPLOYMENT_OVERRIDE_PREFIX): lies under "
                              "ingress.hosts"),
])
def test_an_override_of_a_protected_path_is_refused(override, prefix, message):
    assert message in refused(PLATFORM.split(), prefix, deployment_override=[override])


@pytest.mark.parametrize("override, prefix", [
    ("app.replicas=2", ""), ("app.tagged=1", ""), ("application.tag=1", ""), ("global.other=x", ""),
    ("serviceAccount.create=true", ""), ("image.tag=v1", ""), ("image.pullPolicy=Always", ""),
    ("ingress.annotations.other=x", ""), ("app.tag=1", "chart"), ("replicas=2", "app"),
    ("ingress.tls[0].hosts[0]=x", ""), ("tls.other[0]=x", ""), ("images[0]=x", ""),
])
def test_an_override_beside_the_protected_paths_is_applied(override, prefix):
    d = build_deployment({"NAMESPACE": "n"}, name="x", deployment_override=[override])
    tree = build_values(d, {**KEYS, "DEPLOYMENT_OVERRIDE_PREFIX": prefix}, PLATFORM.split())
    assert tree  # built, the override in it


def test_a_refusal_never_shows_the_value():
    secret = "hunter2-{{ .Secret }}"
    for flags in ({"deployment_override": [f"app.tag={secret}"]},
                  {"app_env_override": [f"PW={secret}"]}, {"deployment_override": [f"x={secret}"]}):
        assert secret not in refused(**flags) and "hunter2" not in refused(**flags)


@pytest.mark.parametrize("flags, message", [
    ({"app_env_override": ["GREETING={{ .Release.Name }}"]}, "--app-env-override GREETING: the value holds '{{'"),
    ({"deployment_override": ["config.banner=hi {{x}}"]}, "--deployment-override config.banner: the value holds '{{'"),
    # a key too: charts render annotation keys through tpl as well (issue 11 review)
    ({"deployment_override": ["podAnnotations.{{\\.Values\\.secret}}=x"]},
     "--deployment-override podAnnotations.{{\\.Values\\.secret}}: the key holds '{{'"),
    ({"deployment_override": ["a={{"]}, "set ALLOW_TEMPLATE_VALUES=true to allow it"),
    # escaped braces are still braces once parsed (the review of issue 13-15)
    ({"deployment_override": ["podAnnotations.a\\{\\{\\.Values\\.x\\}\\}=v"]}, "the key holds '{{'"),
])
def test_a_template_value_is_refused_unless_allowed(flags, message):
    assert message in refused(**flags)
    d = build_deployment({"NAMESPACE": "n"}, name="x", **flags)
    assert build_values(d, dict(KEYS), allow_templates=True)  # allowed: kept as given


@pytest.mark.parametrize("value", ["{a: [1]}", "{ {x} }", "}}{", "{", "}}", "${ {x} }", "{\n{"])
def test_braces_that_are_no_template_pass(value):
    assert tree(app_env_override=[f"V={value}"])["app"]["env"]["V"] == value


def test_a_bad_protected_path_is_a_config_error():
    d = build_deployment({"NAMESPACE": "n"}, name="x")
    with pytest.raises(ConfigError, match="PROTECTED_VALUES"):
        build_values(d, dict(KEYS), ["ok.path", "a..b"])
    with pytest.raises(ConfigError, match="PROTECTED_VALUES: key 'ingress.hosts\\[0\\]' holds whitespace, "
                                          "brackets or control characters \\(a setting's path is map keys"):
        build_values(d, dict(KEYS), ["ingress.hosts[0]"])


# -- the same through scripts/create: exit 64, one line, and no release ---------------------

def _no_release(octopod_env, namespace):
    listed = subprocess.run([octopod_env["HELM_BIN"], "list", "-n", namespace, "-q"], env=octopod_env,
                            capture_output=True, text=True, timeout=60)
    assert listed.returncode == 0 and listed.stdout.strip() == "", listed.stderr


@pytest.mark.parametrize("extra, env, message", [
    (["--deployment-override", "app.tag=evil"], {}, "--deployment-override app.tag: sets app.tag"),
    (["--deployment-override", "serviceAccount=x"], {"PROTECTED_VALUES": "serviceAccount.name image.repository"},
     "would replace serviceAccount.name, which is protected (PROTECTED_VALUES)"),
    (["--app-env-override", "X={{ .Release.Name }}"], {}, "--app-env-override X: the value holds '{{'"),
])
def test_create_refuses_and_runs_nothing(cluster, scripts, octopod_env, namespace, extra, env, message):
    if cluster.emulated:
        cluster.reset_requests()
    done = scripts("create", "--namespace", namespace, "--name", "guarded", "--tag", "v1", *extra, env=env)
    assert done.returncode == 64, done.stderr
    assert done.stdout == "" and done.stderr.count("\n") == 1 and message in done.stderr, done.stderr
    if cluster.emulated:
        assert [r for r in cluster.requests() if namespace in r[1]] == []  # not even a read
    _no_release(octopod_env, namespace)


def test_create_passes_a_template_value_verbatim_when_allowed(cluster, scripts, octopod_env, namespace):
    value = "{{ .Release.Name }}"
    done = scripts("create", "--namespace", namespace, "--name", "templated", "--tag", "v1",
                   "--app-env-override", f"GREETING={value}",
                   env={"ALLOW_TEMPLATE_VALUES": "true", "HELM_WAIT": "false"})
    assert done.returncode == 0, done.stderr
    out = subprocess.run([octopod_env["HELM_BIN"], "get", "values", "templated", "-n", namespace, "-o", "json"],
                         env=octopod_env, capture_output=True, text=True, timeout=60)
    assert json.loads(out.stdout)["app"]["env"] == {"GREETING": value}
