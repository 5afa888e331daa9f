"""VALUES_TEMPLATES rendering: string values only, on the parsed document; everything else as
written, which real helm 3 and 4 are shown to read exactly as they read the file itself."""
from __future__ import annotations

import json
import subprocess
from pathlib import Path

import pytest
import yaml

from octopod_control.errors import ConfigError
from octopod_control.values_templates import render_text

FIELDS = {"name": "feat-x", "namespace": "stagings", "project_name": "shop",
          "base_domain": "stage.example.com", "tag": "v1.2"}


def render(text: str, **fields: str) -> dict:
    return yaml.safe_load(render_text(text, {**FIELDS, **fields}, "VALUES_TEMPLATES: t.yaml"))


def test_placeholders_in_string_values_are_rendered():
    assert render('host: "{name}.{base_domain}"\nlabels: {a: "{project_name}-{namespace}"}\n'
                  "image: {tag: 'release-{tag}'}\nplain: feat-{name}\n") == {
        "host": "feat-x.stage.example.com", "labels": {"a": "shop-stagings"},
        "image": {"tag": "release-v1.2"}, "plain": "feat-feat-x"}


@pytest.mark.parametrize("field, value", [
    ("project_name", "true"), ("project_name", "null"), ("project_name", "1e3"), ("project_name", "0x1F"),
    ("project_name", "x: y"), ("project_name", "- item"), ("project_name", "{a: 1}"),
    ("project_name", "[1, 2]"), ("project_name", "&anchor *alias"), ("project_name", "'\"\\"),
    ("project_name", "line\u2028sep"), ("name", "no"), ("tag", "1.0"),
])
def test_a_rendered_value_stays_one_string(field, value):
    """Whatever the value reads like in YAML, it is a string where the placeholder was, and the
    document's structure is the file's."""
    assert render(f'a: "{{{field}}}"\nb: [1]\n', **{field: value}) == {"a": value, "b": [1]}


def test_only_the_rendered_scalars_change_in_the_text():
    text = ('# {name}: comments stay as written\n'
            'a: &h "{name}.{base_domain}"   # trailing {comment}\n'
            "b: *h\n"
            "conf: |  # the header {too}\n"
            "  server_name {name}.{base_domain};\n"
            "  listen 80;\n"
            "folded: >-\n  tag {tag}\n  next\n"
            "flow: [x, '{name}', {k: 'v-{name}'}]\n"
            "multi: feat-{name}\n  continued\n"
            'tagged: !!str "{namespace}"\n'
            "last: 0o17\n")
    out = render_text(text, FIELDS, "t")
    assert out == ('# {name}: comments stay as written\n'
                   'a: &h "feat-x.stage.example.com"   # trailing {comment}\n'
                   "b: *h\n"
                   "conf: |  # the header {too}\n"
                   "  server_name feat-x.stage.example.com;\n"
                   "  listen 80;\n"
                   "folded: >-\n  tag v1.2\n  next\n"
                   'flow: [x, "feat-x", {k: "v-feat-x"}]\n'
                   'multi: "feat-feat-x continued"\n'
                   'tagged: !!str "stagings"\n'
                   "last: 0o17\n")


def test_values_are_rendered_once_not_again():
    assert render('a: "{project_name}"\n', project_name="{tag} {name}") == {"a": "{tag} {name}"}


def test_helm_template_syntax_and_other_braces_are_left_alone():
    text = ('tpl: "{{ .Release.Name }}-x"\ntight: "{{name}}"\njson: \'{"k": 1}\'\n'
            'set: "{a,b}"\nspaced: "{ name }"\n')
    assert render(text) == {"tpl": "{{ .Release.Name }}-x", "tight": "{{name}}", "json": '{"k": 1}',
                            "set": "{a,b}", "spaced": "{ name }"}


def test_an_aliased_value_is_rendered_once_everywhere():
    assert render('a: &h "{name}.{base_domain}"\nb: *h\nc: &l ["{name}"]\nd: *l\n') == {
        "a": "feat-x.stage.example.com", "b": "feat-x.stage.example.com",
        "c": ["feat-x"], "d": ["feat-x"]}


@pytest.mark.parametrize("text, message", [
    ('a: "{nme}"\n', "line 1: unknown placeholder {nme}; use {name}, {namespace}, {project_name}, "
                     "{base_domain}, {tag}"),
    ('a:\n  b:\n    - "{Name}"\n', "line 3: unknown placeholder {Name}"),
    ("host: {name}\n", "line 1: {name} unquoted is a YAML mapping, not a placeholder"),
    ("hosts: [{name}]\n", "{name} unquoted is a YAML mapping"),
    ("host: {name}.example.com\n", "not valid YAML at line 1"),
    ('"{name}": x\n', "line 1: a key holds {name}; placeholders are rendered in string values only"),
    ("- a\n", "the top level must be a mapping of values"),
    ("a: 1\n---\nb: 2\n", "not valid YAML"),
])
def test_a_bad_template_is_a_configuration_error_naming_the_file(text, message):
    with pytest.raises(ConfigError) as caught:
        render_text(text, FIELDS, "VALUES_TEMPLATES: t.yaml")
    assert caught.value.exit_code == 78
    assert str(caught.value).startswith("VALUES_TEMPLATES: t.yaml: ") and message in str(caught.value)


def test_an_empty_template_renders_nothing():
    assert render_text("# nothing yet\n", FIELDS, "t") == ""


def test_an_empty_placeholder_warns(capsys):
    assert render('host: "{name}.{base_domain}"\n', base_domain="") == {"host": "feat-x."}
    assert "{base_domain} has no value here; rendered empty" in capsys.readouterr().err


# Scalars YAML libraries read differently (go-yaml v2, which helm uses, takes `y` and `on` for
# bools, PyYAML does not take `y`; dates, hex, octal, sexagesimal, binary, merge keys): written
# back as written, so helm reads the rendered file as it reads the original.
AWKWARD = """\
host: "{name}.{base_domain}"
bools: [y, n, yes, no, on, off, Y, True, FALSE]
y: key-that-is-y
numbers: [0x1F, 0o17, 017, 1_000, 1e3, 1:30, 12345678901234567890, +12, 0., -0]
dates: [2024-01-01, 2001-12-14t21:59:43.10-05:00]
nulls: [~, null, Null, ""]
strings: ['{{ .Values.x }}', "quoted 123", 'single', plain text, "tab\\there", multi
  line plain]
block: |
  keep
   this
folded: >-
  a
  b
conf: |
  server_name {name}.{base_domain};
base: &base {port: 80, name: "{name}"}
merged:
  <<: *base
  port: 8080
binary: !!binary aGVsbG8=
empty_map: {}
empty_list: []
"""


def test_helm_reads_the_rendered_file_as_it_reads_the_original(helm_bin, tmp_path: Path):
    chart = tmp_path / "chart"
    (chart / "templates").mkdir(parents=True)
    (chart / "Chart.yaml").write_text("apiVersion: v2\nname: tmpl\nversion: 0.1.0\n")
    (chart / "templates" / "out.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: out\ndata:\n"
        "  json: {{ toJson .Values | quote }}\n")
    original, rendered = tmp_path / "original.yaml", tmp_path / "rendered.yaml"
    original.write_text(AWKWARD)
    rendered.write_text(render_text(AWKWARD, FIELDS, "t"))

    def values(path: Path) -> dict:
        done = subprocess.run([helm_bin, "template", "t", str(chart), "--values", str(path)],
                              capture_output=True, text=True, timeout=60)
        assert done.returncode == 0, done.stderr
        return json.loads(yaml.safe_load(done.stdout)["data"]["json"])

    before, after = values(original), values(rendered)
    assert after["host"] == "feat-x.stage.example.com" and before["host"] == "{name}.{base_domain}"
    assert after["base"]["name"] == after["merged"]["name"] == "feat-x"
    assert after["conf"] == "server_name feat-x.stage.example.com;\n"
    for key in ("host", "base", "merged", "conf"):
        before.pop(key), after.pop(key)
    assert after == before
    assert after["bools"][0] is True  # go-yaml's reading (PyYAML would say "y"), kept
