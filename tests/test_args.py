"""Octopod argv: validation and override parsing, without any external command."""
from __future__ import annotations

import pytest

from octopod_control.args import (MAX_INDEX, Override, build_deployment, parse_app_env,
                                   parse_deployment_overrides, split_path)
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
    assert parse_deployment_overrides([f"a.b={value}"]) == (Override("a.b", ("a", "b"), value),)


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
    # Deployment overrides are all kept, in order (helm applies every --set in turn).
    assert [o.value for o in parse_deployment_overrides(["a[0]=s3cr3t", "b=1", "a[0]=2"])] == [
        "s3cr3t", "1", "2"]
    err = capsys.readouterr().err
    assert "a[0] given more than once" in err and "s3cr3t" not in err


@pytest.mark.parametrize("item, path, value", [
    ("a.b=1", ("a", "b"), "1"),
    (r"a\.b=1", ("a.b",), "1"),  # helm: a backslash keeps the next character
    (r"ingress.annotations.nginx\.ingress\.kubernetes\.io/rewrite-target=/", (
        "ingress", "annotations", "nginx.ingress.kubernetes.io/rewrite-target"), "/"),
    ("list[0].x=2", ("list", 0, "x"), "2"),
    ("list[2]=v", ("list", 2), "v"),
    ("a[0].b[1].c=x=y", ("a", 0, "b", 1, "c"), "x=y"),  # the value: everything after the key's '='
    ("a[0][1]=1", ("a", 0, 1), "1"),
    ("a[+01]=1", ("a", 1), "1"),  # Go's Atoi: a sign and leading zeros
    (r"a[\1]=1", ("a", 1), "1"),
    (r"a\=b=c", ("a=b",), "c"),  # an escaped '=' stays in the key
    (r"a\[0\]=1", ("a[0]",), "1"),
    (r"a\,b=1", ("a,b",), "1"),
    ("a]b=1", ("a]b",), "1"),
    (r"a\\=1", ("a\\",), "1"),
    (f"a[{MAX_INDEX}]=1", ("a", MAX_INDEX), "1"),
    ("a=", ("a",), ""),
    ("a.b={x,y}", ("a", "b"), "{x,y}"),  # never a helm list: values are kept as given
])
def test_keys_are_read_as_helm_set_reads_them(item, path, value):
    (override,) = parse_deployment_overrides([item])
    assert (override.path, override.value) == (path, value)
    assert item == f"{override.key}={override.value}"


@pytest.mark.parametrize("item, fragment", [
    ("a,b=1", "key 'a,b' holds ','"),
    ("a[0]b=1", "key 'a[0]b' has 'b' after ']'"),
    ("a[0],b=1", "has ',b' after ']'"),
    ("a[-1]=1", "key 'a[-1]' has the negative index -1"),
    (f"a[{MAX_INDEX + 1}]=1", f"has the index {MAX_INDEX + 1}, above helm's limit of 65536"),
    ("a[99999999999999999999]=1", "above helm's limit"),
    ("a[x]=1", "has [x], which is not a list index"),
    ("a[]=1", "has [], which is not a list index"),
    ("a[1.5]=1", "which is not a list index"),
    ("a[ 1]=1", "which is not a list index"),
    ("a[1=2", "key 'a[1' has a '[' without its ']'"),
    (".a=1", "key '.a' has an empty path segment"),
    ("[0]=1", "key '[0]' has an empty path segment"),
    ("a[0].=1", "has an empty path segment"),
    ("a b=1", "holds whitespace or control characters"),
    ("a\tb=1", "holds whitespace or control characters"),
    ("a[0]", "'a[0]' has no '='"),
    ("a\\=s3cr3t", "has no '=' (expected KEY=VALUE) (a backslash escapes the '=' after it)"),
])
def test_keys_helm_refuses_are_refused(item, fragment):
    with pytest.raises(UsageError) as caught:
        parse_deployment_overrides([item])
    assert fragment in str(caught.value) and caught.value.exit_code == 64
    assert "s3cr3t" not in str(caught.value)


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
    ({"deployment_override": ["a[x]=1"]}, "not a list index"),
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
