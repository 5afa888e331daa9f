"""The product's Invoke tasks: what Octopod and an operator run. `invoke --list`; `invoke --help create`.

`ns` is the one namespace both homes boot (`program.main`): `scripts/*` run
`python -P -m octopod_control <task>`, and the bundle's `octopod-control <task>` does the same
through `frozen.main`. Octopod's nine script names are its top-level tasks (`OCTOPOD_SCRIPTS`,
with dashes: `tag-check`); remote-cleanup, adopt and config are the operator's. The
development tasks (demo, test, wrappers, bundle, config-docs) are in `octopod_dev.tasks`; the
root `tasks.py` puts both side by side for a developer's `invoke`.

Each task is thin: it validates Octopod's flags into a `Deployment`, loads the
settings, and calls one function in `octopod_control.actions`. Heavy modules are
imported inside the task that needs them, so every script starts fast.
"""
from __future__ import annotations

from invoke import Collection

from .program import octopod_task

# Octopod's nine script names; a task of the same name (dashes for underscores) backs each.
OCTOPOD_SCRIPTS = ("create", "update", "archive", "check", "cleanup", "archive_check",
                   "tag_check", "init", "info")

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
    from .settings import Settings

    return Settings.load()


def _load(**flags):
    """The settings and the deployment Octopod's flags describe, validated."""
    from .args import build_deployment

    settings = _settings()
    fallbacks = {n: settings.text(n) for n in ("NAMESPACE", "PROJECT_NAME", "BASE_DOMAIN")}
    return settings, build_deployment(fallbacks, **flags)


def _deploy(name, namespace, project_name, base_domain, tag, app_env_override, deployment_override):
    from .actions.create import deploy

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
    from .actions.info import info_lines

    for line in info_lines(*_load(name=name, namespace=namespace, project_name=project_name,
                                  base_domain=base_domain)):
        print(line)


@octopod_task(help={**COMMON_HELP, "tag": "the tag that should be running (exit 3 when it is not)"})
def check(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None):
    """Readiness now: 0 ready, 2 partial, 3 tag mismatch, 1 otherwise; reasons on stderr."""
    from invoke import Exit

    from .actions.check import check as verdict

    settings, deployment = _load(name=name, namespace=namespace, project_name=project_name,
                                 base_domain=base_domain, tag=tag)
    code = verdict(settings, deployment, deployment.tag)
    if code:
        raise Exit(code=code)


@octopod_task(help={**COMMON_HELP, **TAG_HELP})
def tag_check(c, name=None, namespace=None, project_name=None, base_domain=None, tag=None):
    """Exit 0 when --tag exists for every image in REGISTRY_IMAGES (stdout stays empty)."""
    from .actions.tag_check import tag_check as check
    from .errors import UsageError

    if not tag:
        raise UsageError("--tag: required")
    check(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain,
                 tag=tag))


@octopod_task
def init(c):
    """Prepare $HOME once per pod start: SSH key/known_hosts/config, kubeconfig, Docker config, helm repo."""
    from .actions.init import init as prepare

    prepare(_settings())


@octopod_task(help=COMMON_HELP)
def remote_cleanup(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Run REMOTE_CLEANUP_COMMANDS on every REMOTE_CLEANUP_HOSTS host over SSH (what cleanup does last)."""
    from .actions.remote_cleanup import remote_cleanup as clean
    from .errors import ExternalError

    failures = clean(*_load(name=name, namespace=namespace, project_name=project_name,
                            base_domain=base_domain))
    if failures:
        raise ExternalError(f"remote cleanup: {len(failures)} failure(s): " + " | ".join(failures))


@octopod_task(help=COMMON_HELP)
def archive(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Free the compute, keep the data (ARCHIVE_STRATEGY: scale to 0, or helm uninstall)."""
    from .actions.archive import archive as free

    free(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help=COMMON_HELP)
def archive_check(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Exit 0 when no pod of the deployment runs any more; otherwise what still runs, on stderr."""
    from .actions.archive_check import archive_check as verify

    verify(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help=COMMON_HELP)
def cleanup(c, name=None, namespace=None, project_name=None, base_domain=None):
    """Free everything: release, PVCs, kept Secrets/ConfigMaps, namespace (optional), remote hosts."""
    from .actions.cleanup import cleanup as free_all

    free_all(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task(help={**COMMON_HELP,
                     "all_releases": "every unmarked release of the shared namespace, each as the "
                                     "staging of its own name (lists them; --yes marks them)",
                     "yes": "with --all-releases: mark them, not only list them"})
def adopt(c, name=None, namespace=None, project_name=None, base_domain=None, all_releases=False,
          yes=False):
    """Mark a release (and its own namespace) made before ownership marks as this staging's."""
    if all_releases:
        from .actions.adopt import adopt_all
        from .args import validate_namespace

        settings = _settings()
        adopt_all(settings, validate_namespace(namespace or settings.text("NAMESPACE")), apply=yes)
        return
    from .actions.adopt import adopt as mark

    mark(*_load(name=name, namespace=namespace, project_name=project_name, base_domain=base_domain))


@octopod_task
def config(c):
    """Print the effective configuration (env files < process environment), secrets masked."""
    for name, value in _settings().describe():
        print(f"{name}={value}")


ns = Collection(
    "octopod",
    # Octopod's scripts (OCTOPOD_SCRIPTS), as its *_COMMAND variables call them
    create, update, info, check, tag_check, archive, archive_check, cleanup, init,
    # the operator's, from a shell
    remote_cleanup, adopt, config,
)
