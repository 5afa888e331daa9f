"""Octopod argv: validation and override parsing, without any external command."""
from __future__ import annotations

import pytest

from octopod_control.args import build_deployment, parse_app_env, parse_deployment_overrides, split_path
from octopod_control.errors import EXIT_USAGE, UsageError

CONFIG = {"NAMESPACE": "staging", "PROJECT_NAME": "proj", "BASE_DOMAIN": "example.com"}


def build(**flags):
    return build_deployment(CONFIG, **{"name": "feat-1", **flags})


def test_config_fallbacks_fill_what_octopod_omits():
    d = build()
    assert (d.namespace, d.project_name, d.base_domain) == ("staging", "proj", "example.com")
    d = build(namespace="other", project_name="p2", base_domain="b.org")
    assert (d.namespace, d.project_name, d.base_domain) == ("other", "p2", "b.org")


@pytest.mark.parametrize("value", ["a,b", "x=y=z", "", " spaced value ", "ünïcødé ✓", "{a: [1]}",
                                   "back\\slash", "'quoted' \"double\"", "a.b[0]", "$(rm -rf /)"])
def test_values_are_kept_byte_for_byte(value):
    assert parse_app_env([f"KEY={value}"]) == {"KEY": value}
    assert parse_deployment_overrides([f"a.b={value}"]) == {("a", "b"): value}


def test_split_at_the_first_equals_only():
    assert parse_app_env(["URL=postgres://u:p@h/db?sslmode=require&x=1"]) == {
        "URL": "postgres://u:p@h/db?sslmode=require&x=1"}


def test_escaped_dots_stay_in_a_segment():
    assert split_path("--deployment-override", r"ingress.annotations.nginx\.ingress\.kubernetes\.io/x") == (
        "ingress", "annotations", "nginx.ingress.kubernetes.io/x")


def test_duplicate_key_last_wins_with_a_warning(capsys):
    assert parse_app_env(["A=1", "A=2"]) == {"A": "2"}
    err = capsys.readouterr().err
    assert "A given more than once" in err and "1" not in err.replace("A given", "")


@pytest.mark.parametrize("flags, fragment", [
    ({"name": ""}, "--name: required"),
    ({"name": None}, "--name: required"),
    ({"name": "Upper"}, "--name"),
    ({"name": "a;rm -rf"}, "--name"),
    ({"name": "../etc"}, "--name"),
    ({"name": "1abc"}, "--name"),
    ({"name": "ends-"}, "--name"),
    ({"name": "a" * 54}, "--name"),
    ({"namespace": "Bad_NS"}, "--namespace"),
    ({"tag": "bad tag"}, "--tag"),
    ({"base_domain": "a b"}, "--base-domain"),
    ({"app_env_override": ["NOEQUALS"]}, "has no '='"),
    ({"app_env_override": ["=v"]}, "empty key"),
    ({"app_env_override": ["1BAD=v"]}, "environment variable name"),
    ({"app_env_override": ["A-B=v"]}, "environment variable name"),
    ({"deployment_override": ["a..b=1"]}, "empty path segment"),
    ({"deployment_override": [".a=1"]}, "empty path segment"),
    ({"deployment_override": ["a.=1"]}, "empty path segment"),
    ({"deployment_override": ["a[0]=1"]}, "list indexes"),
    ({"app_env_override": ["A=\udcff"]}, "not valid UTF-8"),
])
def test_bad_input_is_a_usage_error_naming_the_flag(flags, fragment):
    with pytest.raises(UsageError) as caught:
        build(**flags)
    assert fragment in str(caught.value)
    assert caught.value.exit_code == EXIT_USAGE == 64
    assert "\n" not in str(caught.value)


def test_namespace_is_required_somewhere():
    with pytest.raises(UsageError, match="--namespace"):
        build_deployment({}, name="x")


def test_longest_valid_name_is_accepted():
    assert build(name="a" + "b" * 52).name == "a" + "b" * 52
    assert build(name="a").name == "a"
