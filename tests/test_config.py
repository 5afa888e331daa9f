"""The configuration schema (octopod_control/config.py) is the one place a variable is declared."""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

from octopod_control.config import SCHEMA, VARIABLES
from octopod_control.errors import ConfigError
from octopod_control.settings import Settings
from octopod_dev import config_docs

ROOT = Path(__file__).resolve().parent.parent
ACCESSORS = {"text", "raw", "flag", "seconds", "count", "words", "choice", "render"}


def test_defaults_env_is_generated_from_the_schema():
    assert (ROOT / "env" / "defaults.env").read_text() == config_docs.defaults_env(), \
        "env/defaults.env drifted from octopod_control/config.py: run `invoke config-docs`"


def test_readme_table_is_generated_from_the_schema():
    readme = (ROOT / "README.md").read_text()
    assert config_docs.readme_with_table(readme) == readme, \
        "README.md's configuration table drifted from octopod_control/config.py: run `invoke config-docs`"


def test_every_variable_is_fully_declared():
    for var in VARIABLES:
        assert var.doc and var.example and var.section, var.name
        assert var.blank in ("keep", "default"), var.name
        if var.type == "choice":
            assert var.default in var.choices, var.name
    assert len(SCHEMA) == len(VARIABLES), "a variable declared twice"


def _read_sites():
    """(file, line, call) of every settings accessor call in the product."""
    for path in sorted((ROOT / "octopod_control").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if (isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
                    and node.func.attr in ACCESSORS and isinstance(node.func.value, ast.Name)
                    and node.func.value.id in ("settings", "self")
                    and node.args and isinstance(node.args[0], ast.Constant)
                    and isinstance(node.args[0].value, str) and node.args[0].value.isupper()):
                yield f"{path.relative_to(ROOT)}:{node.lineno}", node


def test_no_default_is_written_at_a_read_site():
    sites = list(_read_sites())
    assert len(sites) > 40  # the scan finds the read sites at all
    for where, call in sites:
        name = call.args[0].value
        assert name in SCHEMA, f"{where}: {name} is not in the schema"
        wanted = 2 if call.func.attr == "render" else 1
        assert len(call.args) == wanted and not call.keywords, f"{where}: a default written at a read site"


def test_no_default_is_written_after_a_read():
    """`settings.text("X") or "default"` would be a second default."""
    for path in sorted((ROOT / "octopod_control").rglob("*.py")):
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            if isinstance(node, ast.BoolOp) and isinstance(node.op, ast.Or):
                first, rest = node.values[0], node.values[1:]
                if (isinstance(first, ast.Call) and isinstance(first.func, ast.Attribute)
                        and first.func.attr in ACCESSORS and first.args
                        and isinstance(first.args[0], ast.Constant) and str(first.args[0].value) in SCHEMA):
                    assert not any(isinstance(r, ast.Constant) for r in rest), \
                        f"{path.relative_to(ROOT)}:{node.lineno}: a default written after a read"


def test_defaults_apply_and_blank_means_default_only_where_declared():
    s = Settings({"HELM_TIMEOUT": "", "HELM_BIN": " ", "DEPLOYMENT_OVERRIDE_PREFIX": "", "HELM_WAIT": ""})
    assert s.helm_timeout == 300 and s.helm_bin == "helm"  # blank="default"
    assert s.text("DEPLOYMENT_OVERRIDE_PREFIX") == ""  # empty is a value: the root
    assert s.flag("HELM_WAIT") is False  # an empty flag is false
    assert Settings({}).flag("HELM_WAIT") is True and Settings({}).text("CHART") == "charts/example"
    assert Settings({"HELM_DRIVER": "ConfigMaps"}).helm_driver == "configmap"


@pytest.mark.parametrize("name, value, message", [
    ("HELM_TIMEOUT", "abc", "HELM_TIMEOUT='abc': expected a number of seconds"),
    ("KUBE_TIMEOUT", "0", "KUBE_TIMEOUT='0': expected between 0 and 86400 seconds"),
    ("HELM_WAIT", "maybe", "HELM_WAIT='maybe': expected true or false"),
    ("HELM_DRIVER", "sql", "HELM_DRIVER='sql': expected secret or configmap"),
    ("ARCHIVE_STRATEGY", "delete", "ARCHIVE_STRATEGY='delete': expected scale or uninstall"),
    ("REMOTE_STRICT_HOST_KEYS", "sometimes", "REMOTE_STRICT_HOST_KEYS='sometimes': expected auto, true or false"),
    ("RELEASE_NAME", "{nope}", "RELEASE_NAME='{nope}': unknown placeholder {nope}"),
    ("FAIL_FAST_RESTARTS", "-1", "FAIL_FAST_RESTARTS='-1': expected a whole number from 0 to 1000"),
    ("LOG_TAIL_LINES", "1e9", "LOG_TAIL_LINES='1e9': expected a whole number from 0 to 1000"),
])
def test_a_malformed_value_is_a_config_error_naming_the_variable(name, value, message):
    s = Settings({name: value})
    var = SCHEMA[name]
    read = {"seconds": s.seconds, "flag": s.flag, "choice": s.choice, "count": s.count,
            "template": lambda n: s.render(n, {"name": "x"})}[var.type]
    with pytest.raises(ConfigError) as caught:
        read(name)
    assert str(caught.value).startswith(message)
    assert caught.value.exit_code == 78


def test_an_undeclared_name_or_a_wrong_type_is_a_bug_not_a_config_error():
    with pytest.raises(KeyError):
        Settings({}).text("NO_SUCH_VARIABLE")
    with pytest.raises(TypeError):
        Settings({}).flag("HELM_TIMEOUT")


def test_secrecy_is_declared_in_the_schema():
    s = Settings({"REGISTRY_PASSWORD": "hunter2", "SSH_PRIVATE_KEY": "k", "CHART": "c",
                  "OCTOPOD_MY_TOKEN": "t"})
    described = dict(s.describe())
    assert described["REGISTRY_PASSWORD"] == "****" and described["SSH_PRIVATE_KEY"] == "****"
    assert described["CHART"] == "c"
    assert described["OCTOPOD_MY_TOKEN"] == "****"  # not declared: judged by its name
    withheld = {v.name for v in VARIABLES if v.withheld}
    assert withheld == {"REGISTRY_PASSWORD", "SSH_PRIVATE_KEY", "KUBECONFIG_CONTENT",
                        "DOCKER_CONFIG_JSON", "HELM_REPO_PASSWORD"}
    assert not withheld & set(Settings({n: "x" for n in withheld}).environ())
