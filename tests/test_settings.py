"""Configuration layering: defaults < profile < .env < process environment."""
from __future__ import annotations

from pathlib import Path

import pytest

from octopod_control.errors import ConfigError
from octopod_control.settings import Settings, render_template


def project(tmp_path: Path, **files: str) -> Path:
    (tmp_path / "env").mkdir(exist_ok=True)
    (tmp_path / "env" / "defaults.env").write_text("HELM_TIMEOUT=300\nCHART=charts/a\nREGISTRY_PASSWORD=\n")
    for name, text in files.items():
        (tmp_path / name.replace("__", "/")).write_text(text)
    return tmp_path


def test_later_layers_win(tmp_path):
    root = project(tmp_path, **{".env": "CHART=charts/dotenv\n"})
    (root / "env" / "staging.env").write_text("CHART=charts/profile\nHELM_TIMEOUT=100\n")
    s = Settings.load({"OCTOPOD_ENV": "staging"}, root)
    assert s.text("CHART") == "charts/dotenv" and s.helm_timeout == 100
    s = Settings.load({"OCTOPOD_ENV": "staging", "CHART": "from-env"}, root)
    assert s.text("CHART") == "from-env"


def test_unknown_profile_is_a_config_error(tmp_path):
    with pytest.raises(ConfigError, match="env/nope.env"):
        Settings.load({"OCTOPOD_ENV": "nope"}, project(tmp_path))
    with pytest.raises(ConfigError):
        Settings.load({"OCTOPOD_ENV": "../x"}, project(tmp_path))


def test_secrets_are_masked_in_the_description(tmp_path):
    s = Settings.load({"REGISTRY_PASSWORD": "hunter2", "SSH_PRIVATE_KEY": "k"}, project(tmp_path))
    described = dict(s.describe())
    assert described["REGISTRY_PASSWORD"] == "****" and described["SSH_PRIVATE_KEY"] == "****"
    assert described["CHART"] == "charts/a"


@pytest.mark.parametrize("name, value", [("HELM_TIMEOUT", "abc"), ("HELM_TIMEOUT", "-1"),
                                         ("HELM_WAIT", "maybe")])
def test_bad_values_are_config_errors(tmp_path, name, value):
    s = Settings.load({name: value}, project(tmp_path))
    with pytest.raises(ConfigError, match=name):
        s.flag(name) if name == "HELM_WAIT" else s.helm_timeout


def test_templates_take_only_known_fields():
    assert render_template("T", "{name}-{namespace}", {"name": "a", "namespace": "b"}) == "a-b"
    for bad in ("{nope}", "{name.__class__}", "{name!r}", "{"):
        with pytest.raises(ConfigError):
            render_template("T", bad, {"name": "a"})


def test_defaults_file_documents_every_variable_in_the_readme():
    root = Path(__file__).resolve().parent.parent
    readme = (root / "README.md").read_text()
    names = [line.split("=", 1)[0] for line in (root / "env" / "defaults.env").read_text().splitlines()
             if line and not line.startswith("#")]
    missing = [n for n in names if f"`{n}`" not in readme]
    assert not missing, f"README.md does not document {missing}"
