"""scripts/: generated, up to date, and working however they are called."""
from __future__ import annotations

import os
import subprocess

import pytest

from tests.conftest import ROOT

ENV = {**{k: v for k, v in os.environ.items() if not k.startswith(("OCTOPOD_", "INFO_", "KUBE"))},
       "INFO_INGRESS": "false", "BASE_DOMAIN": "b.example", "NAMESPACE": "n"}


def test_wrappers_are_up_to_date():
    done = subprocess.run([str(ROOT / ".venv" / "bin" / "invoke"), "--search-root", str(ROOT), "wrappers",
                           "--check"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("cwd, argv", [
    ("/", [str(ROOT / "scripts" / "info")]),
    (str(ROOT / "scripts"), ["./info"]),
    (str(ROOT), ["scripts/info"]),
    (str(ROOT), ["./scripts/info"]),
    (str(ROOT / "bench"), ["../scripts/info"]),
    (str(ROOT), ["bash", "scripts/info"]),
])
def test_a_wrapper_works_however_it_is_called(cwd, argv):
    done = subprocess.run([*argv, "--name", "w"], cwd=cwd, env=ENV, capture_output=True, text=True,
                          timeout=60)
    assert (done.returncode, done.stdout) == (0, "app,https://w.b.example\n"), done.stderr


def test_a_symlinked_wrapper_finds_the_project(tmp_path):
    link = tmp_path / "info"
    link.symlink_to(ROOT / "scripts" / "info")
    done = subprocess.run([str(link), "--name", "w"], cwd=tmp_path, env=ENV, capture_output=True,
                          text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "app,https://w.b.example\n"), done.stderr


@pytest.mark.parametrize("decoy", ["octopod_control/__init__.py", "octopod_control/__main__.py",
                                   "tasks.py", "invoke/__init__.py"])
def test_the_current_directory_never_shadows_our_modules(tmp_path, decoy):
    """Python runs with -P: a module in the cwd (Octopod's, a user's) is never imported."""
    path = tmp_path / decoy
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("print('DECOY IMPORTED')\nraise SystemExit(99)\n")
    done = subprocess.run([str(ROOT / "scripts" / "info"), "--name", "w"], cwd=tmp_path, env=ENV,
                          capture_output=True, text=True, timeout=60)
    assert (done.returncode, done.stdout) == (0, "app,https://w.b.example\n"), done.stderr
    assert "DECOY" not in done.stderr
