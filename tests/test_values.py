"""The values mapping: where each argument lands and how it is typed."""
from __future__ import annotations

import json

import pytest
import yaml

from octopod_control.args import build_deployment
from octopod_control.errors import ConfigError
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


def test_a_deeper_override_replaces_a_scalar():
    assert tree(deployment_override=["a=1", "a.b=2"]) == {"a": {"b": 2}}


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


def test_typing_matches_real_helm_set(tmp_path):
    """Our typing against helm's own: one `helm template --set vN=...` renders every value's JSON."""
    import subprocess

    from tests.conftest import tool

    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: typing\nversion: 0.1.0\n")
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n"
        "  json: {{ toJson .Values | quote }}\n")
    args = [a for i, v in enumerate(TYPING_CORPUS) for a in ("--set", f"v{i}={v}")]
    done = subprocess.run([tool("helm4"), "template", "t", str(chart), *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    rendered = json.loads(yaml.safe_load(done.stdout)["data"]["json"])
    for i, value in enumerate(TYPING_CORPUS):
        assert rendered[f"v{i}"] == helm_typed(value), (value, rendered[f"v{i}"])
        assert type(rendered[f"v{i}"]) is type(helm_typed(value)), value
