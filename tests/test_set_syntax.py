"""Deployment override keys in helm's `--set` path syntax, proven against real helm 3 and 4.

A chart whose only template prints `toJson .Values` is rendered twice with each helm: once with
every key of a corpus as `helm template --set K=V`, once with our values document on stdin
(`--values -`, as create sends it); the computed values must be equal. Keys helm refuses must be
refused by us (exit 64) and by helm; the few keys helm takes and we refuse are shown to be what
the docs say (silently ignored by helm, or holding whitespace).
"""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from octopod_control.args import MAX_INDEX, MAX_NESTING, build_deployment
from octopod_control.errors import UsageError
from octopod_control.values import MAX_LIST_ITEMS, build_values, dump_values

# Octopod's own keys switched off (TAG_KEY cannot be, but no --tag is given): the document holds
# the overrides alone, as `--set` would.
KEYS = {"TAG_KEY": "octopod.tag", "PROJECT_NAME_KEY": "", "BASE_DOMAIN_KEY": "",
        "APP_ENV_PREFIX": "", "DEPLOYMENT_OVERRIDE_PREFIX": ""}

CHART_VALUES = """\
ingress:
  enabled: false
  className: ""
  hosts:
    - host: chart-example.local
      paths:
        - path: /
          pathType: ImplementationSpecific
  tls: []
list: [a, b, c]
maps: [{x: 1, y: 2}, {x: 3}]
nested: {deep: {keep: 1, change: 2}}
scalar: text
annotations: {kept: yes}
nulls: {a: 1, b: 2}
"""

DEEPEST = ".".join(f"d{i}" for i in range(MAX_NESTING + 1))  # 30 dots: helm's limit
TOO_DEEP = DEEPEST + ".one-more"

# Applied in this order, each as one --set: together, since helm applies them in turn.
ACCEPTED = [
    "ingress.enabled=true",
    "ingress.hosts[0].host=feat-x.stage.example.com",  # replaces the chart's list: paths gone...
    "ingress.hosts[0].paths[0].path=/",  # ...unless given
    "ingress.hosts[0].paths[0].pathType=Prefix",
    "ingress.tls[0].secretName=feat-x-tls",
    "ingress.tls[0].hosts[0]=feat-x.stage.example.com",
    "list[1]=z",  # the chart's [a, b, c] becomes [null, z]
    "padded[3]=x",  # padded with nulls
    "maps[1].y=9",
    "nested.deep.change=3",  # maps merge with the chart's
    r"annotations.nginx\.ingress\.kubernetes\.io/rewrite-target=/",
    "a[0].b[1].c=deep",
    "grid[1][2]=7",
    "grid[0][0]=true",
    "scalar.sub=1",  # a map over the chart's scalar
    "nulls.a=null",  # removes the chart's key
    "items[0]=first",
    "items[0].name=x",  # a list item entered with '.' becomes a map, whatever it held
    "items[2][1]=n",
    "seq[2]=c",
    "seq[0]=a",
    "idx[+01]=one",
    "zeros[007]=seven",
    r"esc\[0\]=literal-brackets",
    r"comma\,key=v",
    r"eq\=key=v",
    r"back\\slash=v",
    r"dot\.in\.name.x=v",
    "odd]name=v",
    "ключ=значение",
    f"big[{MAX_INDEX}]=last",  # helm's index limit, exactly
    f"{DEEPEST}=deep",  # helm's nesting limit, exactly
    "dup=1",
    "dup=2",
    "replaced.m.k=1",
    "replaced=flat",  # a value replaces the map an earlier key made
    "t.int=42", "t.bool=TRUE", "t.false=false", "t.str=0123", "t.neg=-5", "t.null=null",
    "t.float=1.5", "t.empty=", "t.eq=x=y", "t.zero=0", "t.plus=+7", "t.exp=1e3",
]

# Each refused by helm, alone or (for the conflicts) as a sequence.
REFUSED = [
    (["a,b=1"], "holds ','"),
    (["a[0]b=1"], "after ']'"),
    (["a[-1]=1"], "negative index"),
    ([f"a[{MAX_INDEX + 1}]=1"], "above helm's limit"),
    (["a[x]=1"], "not a list index"),
    (["a[1.5]=1"], "not a list index"),
    (["a..b=1"], "empty path segment"),
    (["a.=1"], "empty path segment"),
    ([f"{TOO_DEEP}=1"], "deeper than helm's limit of 30"),
    ([r"a\=1"], "has no '='"),
    (["a=1", "a.b=2"], "a already holds a value"),
    (["a.b=1", "a[0]=2"], "a already holds a map"),
    (["a=null", "a[0]=1"], "a already holds null"),
    (["a=null", "a.b=1"], "a already holds null"),
    (["a[0].b=1", "a[0][0]=2"], "a[0] already holds a map"),
    (["a[0]=x", "a[0][0]=1"], "a[0] already holds a value"),
    (["a[0]=1", "a.b=2"], "a already holds a list"),
]


@pytest.fixture(scope="module")
def values_chart(tmp_path_factory) -> Path:
    chart = tmp_path_factory.mktemp("set-syntax") / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: setsyntax\nversion: 0.1.0\n")
    (chart / "values.yaml").write_text(CHART_VALUES)
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n"
        "  json: {{ toJson .Values | quote }}\n")
    return chart


def render(helm: str, chart: Path, *args: str, stdin: str | None = None) -> subprocess.CompletedProcess:
    return subprocess.run([helm, "template", "t", str(chart), *args], input=stdin,
                          capture_output=True, text=True, timeout=120)


def computed(done: subprocess.CompletedProcess) -> dict:
    assert done.returncode == 0, done.stderr
    return json.loads(yaml.safe_load(done.stdout)["data"]["json"])


def document(overrides: list[str]) -> str:
    deployment = build_deployment({"NAMESPACE": "n"}, name="x", deployment_override=overrides)
    return dump_values(build_values(deployment, dict(KEYS)))


def set_flags(overrides: list[str]) -> list[str]:
    return [arg for item in overrides for arg in ("--set", item)]


def test_the_corpus_computes_what_helm_set_computes(helm_bin, values_chart):
    by_helm = computed(render(helm_bin, values_chart, *set_flags(ACCEPTED)))
    ours = computed(render(helm_bin, values_chart, "--values", "-", stdin=document(ACCEPTED)))
    assert ours == by_helm
    # What the comparison covers, spelled out:
    assert by_helm["ingress"]["hosts"] == [{"host": "feat-x.stage.example.com",
                                           "paths": [{"path": "/", "pathType": "Prefix"}]}]
    assert by_helm["list"] == [None, "z"] and by_helm["padded"] == [None, None, None, "x"]
    assert by_helm["maps"] == [None, {"y": 9}]
    assert by_helm["nested"] == {"deep": {"keep": 1, "change": 3}}
    assert by_helm["nulls"] == {"b": 2}
    assert by_helm["items"] == [{"name": "x"}, None, [None, "n"]]
    assert by_helm["grid"] == [[True], [None, None, 7]]
    assert len(by_helm["big"]) == MAX_INDEX + 1 and by_helm["big"][-1] == "last"
    assert {"esc[0]", "comma,key", "eq=key", "back\\slash", "dot.in.name", "odd]name"} <= set(by_helm)
    assert by_helm["t"] == {"int": 42, "bool": True, "false": False, "str": "0123", "neg": -5,
                            "float": "1.5", "empty": "", "eq": "x=y", "zero": 0, "plus": 7,
                            "exp": "1e3", "null": None}
    assert by_helm["dup"] == 2 and by_helm["replaced"] == "flat"


@pytest.mark.parametrize("overrides, fragment", REFUSED, ids=[" ".join(o) for o, _ in REFUSED])
def test_keys_helm_refuses_are_refused(helm_bin, values_chart, overrides, fragment):
    with pytest.raises(UsageError) as caught:
        document(overrides)
    assert fragment in str(caught.value) and caught.value.exit_code == 64
    assert overrides[-1].split("=")[0].rstrip("\\") in str(caught.value)  # names the key
    done = render(helm_bin, values_chart, *set_flags(overrides))
    assert done.returncode != 0 and done.stderr.startswith("Error:"), (done.returncode, done.stderr)


# Keys helm takes without a word and does nothing sensible with: mistakes we name instead.
ODD = [
    (".a=1", "empty path segment", {}),  # an empty name: nothing set
    ("[0]=1", "empty path segment", {}),
    ("a[0].=1", "empty path segment", {"a": [{}]}),  # an empty map in a list
    # An unclosed index: helm 3 refuses it; helm 4 (its parser's EOF now wrapped with %w)
    # takes it for the end of the input and sets nothing.
    ("a[1=1", "without its ']'", {"helm3": "error", "helm4": {}}),
]


@pytest.mark.parametrize("item, fragment, helm_makes", ODD, ids=[o[0] for o in ODD])
def test_keys_helm_takes_silently_are_refused(helm_bin, values_chart, item, fragment, helm_makes):
    with pytest.raises(UsageError, match=fragment):
        document([item])
    expected = helm_makes.get(Path(helm_bin).name, helm_makes) if "helm3" in helm_makes else helm_makes
    done = render(helm_bin, values_chart, "--set", item)
    if expected == "error":
        assert done.returncode != 0 and done.stderr.startswith("Error:"), done.stderr
        return
    plain = computed(render(helm_bin, values_chart))
    assert computed(done) == {**plain, **expected}


def test_big_integers_stay_exact_as_strings(helm_bin, values_chart, capsys):
    """helm reads a values document's numbers as floats: an integer beyond 2^53 would round,
    so it goes as the string of its digits (with a warning); up to 2^53 it is the number."""
    items = ["exact=9007199254740992", "big=9007199254740993", "neg=-9223372036854775808"]
    ours = computed(render(helm_bin, values_chart, "--values", "-", stdin=document(items)))
    assert ours["exact"] == 2**53
    assert ours["big"] == "9007199254740993" and ours["neg"] == "-9223372036854775808"
    assert capsys.readouterr().err.count("beyond 2^53 is passed as a string") == 2
    by_helm = computed(render(helm_bin, values_chart, *set_flags(items)))
    assert by_helm["big"] == 9007199254740993  # --set's int64, which no values file can carry


def test_whitespace_in_a_key_is_refused_though_helm_takes_it(values_chart):
    with pytest.raises(UsageError, match="whitespace"):
        document(["a b=1"])


def test_the_prefix_counts_towards_helms_nesting_limit():
    deployment = build_deployment({"NAMESPACE": "n"}, name="x",
                                  deployment_override=[f"{'.'.join(['k'] * 30)}=1"])
    assert build_values(deployment, dict(KEYS))  # 29 dots
    with pytest.raises(UsageError, match="DEPLOYMENT_OVERRIDE_PREFIX included"):
        build_values(deployment, {**KEYS, "DEPLOYMENT_OVERRIDE_PREFIX": "chart.values"})


def test_the_lists_all_overrides_make_are_bounded():
    """helm's index limit is per key; in all, the overrides may make 16 lists of its size."""
    within = [f"l{i}[{MAX_INDEX}]=x" for i in range(16)]
    assert len(json.loads(document(within))) == 16
    with pytest.raises(UsageError, match=f"one-more\\[0\\]: the overrides would make more than "
                                         f"{MAX_LIST_ITEMS} list items in all"):
        document([*within, "one-more[0]=x"])
