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


def _load(**flags):
    """The settings and the deployment Octopod's flags describe, validated."""
    from octopod_control.args import build_deployment

    settings = _settings()
    return settings, build_deployment(settings.environ(), **flags)


def _deploy(name, namespace, project_name, base_domain, tag, app_env_override, deployment_override):
    from octopod_control.actions.create import deploy

    deploy(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain,
                  tag=tag, app_env_override=app_env_override, deployment_override=deployment_override))


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

    for line in info_lines(*_load(name=name, namespace=namespace, project_name=project_name,
                                  base_domain=base_domain)):
        print(line)


@octopod_task(help={**COMMON_HELP, "tag": "the tag that should be running (exit 3 when it is not)"})
def check(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None):
    """Readiness now: 0 ready, 2 partial, 3 tag mismatch, 1 otherwise; reasons on stderr."""
    from invoke import Exit

    from octopod_control.actions.check import check as verdict

    settings, deployment = _load(name=name, namespace=namespace, project_name=project_name,
                                 base_domain=base_domain, tag=tag)
    code = verdict(settings, deployment, deployment.tag)
    if code:
        raise Exit(code=code)


@octopod_task(help={**COMMON_HELP, **TAG_HELP})
def tag_check(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None):
    """Exit 0 when --tag exists for every image in REGISTRY_IMAGES (stdout stays empty)."""
    from octopod_control.actions.tag_check import tag_check as check
    from octopod_control.errors import UsageError

    if not tag:
        raise UsageError("--tag: required")
    check(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain,
                 tag=tag))


@octopod_task
def init(c):
    """Prepare $HOME once per pod start: SSH key/known_hosts/config, kubeconfig, Docker config, helm repo."""
    from octopod_control.actions.init import init as prepare

    prepare(_settings())


@octopod_task(help=COMMON_HELP)
def remote_cleanup(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Run REMOTE_CLEANUP_COMMANDS on every REMOTE_CLEANUP_HOSTS host over SSH (what cleanup does last)."""
    from octopod_control.actions.remote_cleanup import remote_cleanup as clean
    from octopod_control.errors import ExternalError

    failures = clean(*_load(name=name, namespace=namespace, project_name=project_name,
                            base_domain=base_domain))
    if failures:
        raise ExternalError(f"remote cleanup: {len(failures)} failure(s): " + " | ".join(failures))


@octopod_task(help=COMMON_HELP)
def archive(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Free the compute, keep the data (ARCHIVE_STRATEGY: scale to 0, or helm uninstall)."""
    from octopod_control.actions.archive import archive as free

    free(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help=COMMON_HELP)
def archive_check(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Exit 0 when no pod of the deployment runs any more; otherwise what still runs, on stderr."""
    from octopod_control.actions.archive_check import archive_check as verify

    verify(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help=COMMON_HELP)
def cleanup(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Free everything: release, PVCs, kept Secrets/ConfigMaps, namespace (optional), remote hosts."""
    from octopod_control.actions.cleanup import cleanup as free_all

    free_all(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help=COMMON_HELP)
def adopt(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Mark a release (and its own namespace) made before ownership marks as this staging's."""
    from octopod_control.actions.adopt import adopt as mark

    mark(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


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


@octopod_task(help={"out": "output directory (default: dist/utils)",
                    "helm": "static helm binary to include as /utils/helm",
                    "kubectl": "static kubectl binary to include as /utils/kubectl",
                    "python": "Python to build with (default: Debian's /usr/bin/python3.11)"})
def bundle(c, out="dist/utils", helm=None, kubectl=None, python=None):
    """Build the static /utils bundle for Octopod's image (docs/bundle.md)."""
    from pathlib import Path

    from octopod_control import bundle as builder

    from invoke import Exit

    root = Path(__file__).resolve().parent
    try:
        names = builder.build(root / out, helm=Path(helm) if helm else None,
                              kubectl=Path(kubectl) if kubectl else None,
                              python=python or builder.DEFAULT_PYTHON)
    except builder.BundleError as exc:
        raise Exit(f"error: bundle: {exc}", code=1) from None
    print(f"{out}/: {' '.join(names)}")


ns = Collection(create, update, info, check, tag_check, config, wrappers, demo, test, init,
                remote_cleanup, bundle, archive, archive_check, cleanup, adopt)
