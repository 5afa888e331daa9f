"""The house's one direction: the product never leans on the development tooling.

`octopod_control` (what ships) imports neither `tests` nor `octopod_dev` (the emulator, the
demo, the bundle builder, the wrappers generator, the development tasks); `octopod_dev` and
`tests` may import the product. The product's namespace, which scripts/ and the bundle both
boot through `program.main`, holds no development task.
"""
from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path

from octopod_control import frozen, program
from octopod_control.tasks import OCTOPOD_SCRIPTS
from octopod_control.tasks import ns as product
from octopod_dev.tasks import ns as development
from tests.conftest import ROOT

PACKAGE = ROOT / "octopod_control"
DEVELOPMENT = ("tests", "octopod_dev")
DEVELOPMENT_TASKS = {"demo", "test", "wrappers", "bundle", "image", "config-docs"}


def module_name(path: Path, root: Path = ROOT) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imported(path: Path, root: Path = ROOT) -> set[str]:
    """Every module a file may import, at any depth (inside functions too): `import a.b`,
    `from a import b` (a, and a.b in case b is a module), relative forms resolved, and
    `importlib.import_module` / `__import__` with a constant name."""
    package = module_name(path, root).split(".")
    if path.name != "__init__.py":
        package = package[:-1]
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                base = ".".join([*package[:len(package) - node.level + 1], *filter(None, [base])])
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
        elif (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)
              and isinstance(node.args[0].value, str)
              and ((isinstance(node.func, ast.Attribute) and node.func.attr == "import_module")
                   or (isinstance(node.func, ast.Name) and node.func.id == "__import__"))):
            names.add(node.args[0].value)
    return names


def test_the_product_imports_neither_the_tests_nor_the_development_package():
    files = sorted(PACKAGE.rglob("*.py"))
    assert len(files) > 20  # the scan reads the package at all
    offenders = [f"{path.relative_to(ROOT)} imports {name}" for path in files
                 for name in sorted(imported(path)) if name.split(".")[0] in DEVELOPMENT]
    assert not offenders, "\n".join(offenders)


def test_the_import_scan_sees_every_form(tmp_path):
    module = tmp_path / "octopod_control" / "actions" / "x.py"
    module.parent.mkdir(parents=True)
    module.write_text("import tests.support.cluster\n"
                      "from . import sibling\n"
                      "from ..kinds import job\n"
                      "def late():\n"
                      "    from octopod_dev.emulator import start_emulator\n"
                      "    import importlib\n"
                      "    importlib.import_module('octopod_dev.demo')\n"
                      "    __import__('tests')\n")
    assert imported(module, tmp_path) >= {
        "tests.support.cluster", "octopod_control.actions.sibling", "octopod_control.kinds.job",
        "octopod_dev.emulator", "octopod_dev.demo", "tests"}


def test_product_and_development_tasks_are_apart():
    scripts = {s.replace("_", "-") for s in OCTOPOD_SCRIPTS}
    assert scripts | {"remote-cleanup", "config", "adopt"} <= set(product.task_names)
    assert DEVELOPMENT_TASKS <= set(development.task_names)
    assert not set(product.task_names) & set(development.task_names)
    for name in product.task_names:
        assert product[name].body.__module__ == "octopod_control.tasks", name
    for name in development.task_names:
        assert development[name].body.__module__.startswith("octopod_dev."), name


def test_a_developers_invoke_has_both_side_by_side():
    import tasks  # the root tasks.py, as `invoke` from the root loads it

    assert set(tasks.ns.task_names) == set(product.task_names) | set(development.task_names)
    assert not tasks.ns.collections  # flat: `invoke create`, `invoke demo` as before


def test_scripts_and_the_bundle_boot_the_same_namespace(monkeypatch):
    booted = []
    monkeypatch.setattr(program.OctopodProgram, "run", lambda self, argv: booted.append(self.namespace))
    program.main()  # scripts/: python -m octopod_control
    assert booted == [product]
    monkeypatch.setattr(frozen, "prepare", lambda: booted.append("prepared"))
    frozen.main()  # the bundle: environment hygiene, then the same boot
    assert booted == [product, "prepared", product]


def run_module(*argv: str) -> subprocess.CompletedProcess:
    """`python -P -m octopod_control`, as scripts/* run it, from an unrelated directory."""
    return subprocess.run([sys.executable, "-P", "-m", "octopod_control", *argv], cwd="/",
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT)},
                          capture_output=True, text=True, timeout=60)


def test_the_booted_program_offers_no_development_task():
    done = run_module("--list", "--list-format", "json")
    assert done.returncode == 0, done.stderr
    assert {t["name"] for t in json.loads(done.stdout)["tasks"]} == set(product.task_names)
    done = run_module("demo")
    assert (done.returncode, done.stderr) == (64, "error: unexpected argument 'demo'\n")
