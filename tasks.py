"""Octopod control scripts as Invoke tasks. `invoke --list`; `invoke --help create`.

Each task is thin: it validates Octopod's flags into a `Deployment`, loads the
settings, and calls one function in `octopod_control.actions`. Heavy modules are
imported inside the task that needs them, so every script starts fast.
"""
from __future__ import annotations

from invoke import Collection

from octopod_control.program import octopod_task

COMMON_HELP = {
    "name": "deployment name: lower-case letters, digits, '-', starts with a letter, <= 53 chars",
    "namespace": "Octopod's namespace (default: $NAMESPACE)",
    "project_name": "project name (default: $PROJECT_NAME)",
    "base_domain": "base domain (default: $BASE_DOMAIN)",
}
TAG_HELP = {"tag": "image tag"}
OVERRIDE_HELP = {
    "app_env_override": "KEY=VALUE for the application's environment; repeatable",
    "deployment_override": "values.path=VALUE for the chart (typed as helm --set types); repeatable",
}


def _settings():
    from octopod_control.settings import Settings

    return Settings.load()


def _deployment(settings, **flags):
    from octopod_control.args import build_deployment

    return build_deployment(settings.environ(), **flags)


def _deploy(name, namespace, project_name, base_domain, tag, app_env_override, deployment_override):
    from octopod_control.actions.create import deploy

    settings = _settings()
    deploy(settings, _deployment(
        settings, name=name, namespace=namespace, project_name=project_name,
        base_domain=base_domain, tag=tag, app_env_override=app_env_override,
        deployment_override=deployment_override))


@octopod_task(help={**COMMON_HELP, **TAG_HELP, **OVERRIDE_HELP},
              iterable=["app_env_override", "deployment_override"])
def create(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None,
           app_env_override=None, deployment_override=None):
    """Create (or restore) a deployment: helm upgrade --install with the complete set of values."""
    _deploy(name, namespace, project_name, base_domain, tag, app_env_override, deployment_override)


@octopod_task(help={**COMMON_HELP, **TAG_HELP, **OVERRIDE_HELP},
              iterable=["app_env_override", "deployment_override"])
def update(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None,
           app_env_override=None, deployment_override=None):
    """Update a deployment to a new tag or overrides (the same helm upgrade as create)."""
    _deploy(name, namespace, project_name, base_domain, tag, app_env_override, deployment_override)


@octopod_task(help=COMMON_HELP)
def info(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Print the deployment's URLs as `key,value` lines (stdout carries nothing else)."""
    from octopod_control.actions.info import info_lines

    settings = _settings()
    lines = info_lines(settings, _deployment(settings, name=name, namespace=namespace,
                                             project_name=project_name, base_domain=base_domain))
    print("\n".join(lines))


@octopod_task
def config(c):
    """Print the effective configuration (env files < process environment), secrets masked."""
    for name, value in _settings().describe():
        print(f"{name}={value}")


@octopod_task(help={"check": "only report whether scripts/ is up to date (exit 1 when stale)"})
def wrappers(c, check=False):
    """Generate scripts/: one bash wrapper per Octopod script name that has a task."""
    from pathlib import Path

    from invoke import Exit

    from octopod_control import wrappers as gen

    directory = Path(__file__).resolve().parent / "scripts"
    names = set(ns.task_names)
    if check:
        stale = gen.stale(directory, names)
        if stale:
            raise Exit(f"scripts/ is out of date ({', '.join(stale)}): run `invoke wrappers`", 1)
        return
    for script in gen.write(directory, names):
        print(f"scripts/{script}")


@octopod_task(help={"helm": "helm binary for the demo (default: .tools/bin/helm4)"})
def demo(c, helm=None):
    """Run one Octopod round (create, check, info, update, archive, restore, cleanup) on a local emulator."""
    from invoke import Exit

    from octopod_control.demo import run_demo

    if run_demo(helm):
        raise Exit(code=1)


@octopod_task(help={"select": "only tests matching this pytest -k expression",
                    "marker": "only tests with this pytest marker (e.g. reliability)"})
def test(c, select=None, marker=None):
    """Run the whole test suite (real helm 3/4, kubectl, registry and sshd; emulated API)."""
    import subprocess
    import sys

    from invoke import Exit

    argv = [sys.executable, "-m", "pytest"]
    if select:
        argv += ["-k", select]
    if marker:
        argv += ["-m", marker]
    code = subprocess.call(argv)
    if code:
        raise Exit(code=code)


ns = Collection(create, update, info, config, wrappers, demo, test)
