"""The development tasks: what builds, documents, demonstrates and tests the product.

Never shipped: the bundle boots `octopod_control.tasks.ns` only, and leaves this package out.
A developer runs these from the project root (`invoke demo`, `invoke test`, `invoke wrappers`,
`invoke bundle`, `invoke image`, `invoke config-docs`; `./run demo` and `./run test` call the first two), where
the root `tasks.py` puts them beside the product's tasks.

Light at import time (invoke and the product's task decorator only): the Docker build runs
`invoke bundle` in a venv holding only requirements.txt, so the emulator's aiohttp and the
builder's modules are imported inside the task that needs them.
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

from invoke import Collection, Exit

from octopod_control.errors import UsageError
from octopod_control.program import octopod_task

ROOT = Path(__file__).resolve().parent.parent


@octopod_task(help={"helm": "helm binary for the demo (default: .tools/bin/helm4)"})
def demo(c, helm=None):
    """Run one Octopod round (create, check, info, update, archive, restore, cleanup) on a local emulator."""
    from .demo import run_demo

    if run_demo(helm):
        raise Exit(code=1)


@octopod_task(help={"select": "only tests matching this pytest -k expression",
                    "marker": "only tests with this pytest marker (e.g. reliability)"})
def test(c, select=None, marker=None):
    """Run the whole test suite (real helm 3/4, kubectl, registry and sshd; emulated API)."""
    import subprocess
    import sys

    argv = [sys.executable, "-m", "pytest"]
    if select:
        argv += ["-k", select]
    if marker:
        argv += ["-m", marker]
    code = subprocess.call(argv)
    if code:
        raise Exit(code=code)


@octopod_task(help={"check": "only report whether scripts/ is up to date (exit 1 when stale)"})
def wrappers(c, check=False):
    """Generate scripts/: one bash wrapper per Octopod script name that has a task."""
    from octopod_control.tasks import ns as product

    from . import wrappers as gen

    directory = ROOT / "scripts"
    names = set(product.task_names)
    if check:
        stale = gen.stale(directory, names)
        if stale:
            raise Exit(f"scripts/ is out of date ({', '.join(stale)}): run `invoke wrappers`", 1)
        return
    for script in gen.write(directory, names):
        print(f"scripts/{script}")


@octopod_task(help={"out": "output directory (default: dist/utils)",
                    "helm": "static helm binary to include as /utils/helm",
                    "kubectl": "static kubectl binary to include as /utils/kubectl",
                    "python": "Python to build with (default: Debian's /usr/bin/python3.11)"})
def bundle(c, out="dist/utils", helm=None, kubectl=None, python=None):
    """Build the static /utils bundle for Octopod's image (docs/bundle.md)."""
    from . import bundle as builder

    try:
        names = builder.build(ROOT / out, helm=Path(helm) if helm else None,
                              kubectl=Path(kubectl) if kubectl else None,
                              python=python or builder.DEFAULT_PYTHON)
    except builder.BundleError as exc:
        raise Exit(f"error: bundle: {exc}", code=1) from None
    print(f"{out}/: {' '.join(names)}")


@octopod_task(help={
    "tag": "image reference to build, NAME:TAG (e.g. registry.example.com/team/octopod-utils:1.0.0)",
    "push": "push it after the build; the builder reads the registry credentials itself "
            "(REGISTRY_AUTH_FILE, ~/.docker/config.json, buildah's auth.json)",
    "tls-verify": "true (default) or false: verify the registry's TLS on push (buildah; "
                  "false for a plain-HTTP test registry)",
    "version": "org.opencontainers.image.version (default: git describe --tags --always --dirty; "
               "-dirty also for untracked files under env, charts, bundle, octopod_control)",
    "revision": "org.opencontainers.image.revision (default: git rev-parse HEAD)",
    "source": "org.opencontainers.image.source (default: the git remote 'origin', as https)",
    "helm": "helm in /utils: helm3 (default) or helm4",
    "isolation": "buildah's --isolation: chroot (default unless BUILDAH_ISOLATION is set), oci or rootless",
})
def image(c, tag, push=False, tls_verify="true", version=None, revision=None, source=None, helm="helm3",
          isolation=None):
    """Build (and push) the utils image Octopod pulls, with docker or else buildah (docs/image.md).

    Prints the image reference and its size. Exit 69 (EX_UNAVAILABLE) when no builder works:
    neither a docker whose engine answers nor buildah.
    """
    from . import image as images

    reference = images.check_reference(tag)
    verify = images.parse_bool("--tls-verify", tls_verify)
    if helm not in images.HELMS:
        raise UsageError(f"--helm: expected one of {', '.join(images.HELMS)}, got {helm!r}")
    if isolation is not None:
        images.check_isolation(isolation)
    builder = images.find_builder()
    labels = images.git_labels(ROOT, version, revision, source)
    spec = images.BuildSpec(reference, labels, helm,
                            isolation=images.buildah_isolation(isolation, os.environ))
    report = images.make(spec, builder, push, verify)
    for note in report.notes:
        print(note, file=sys.stderr)
    for line in report.lines():
        print(line)


@octopod_task
def warm_client(c):
    """Build build/warm/octopod-warm, the warm path's client scripts/ use (docs/warm.md); cached."""
    from . import warm_client as client

    try:
        print(client.build().relative_to(ROOT))
    except client.BuildError as exc:
        raise Exit(f"error: warm-client: {exc}", code=1) from None


@octopod_task
def config_docs(c):
    """Regenerate env/defaults.env and README's configuration table from octopod_control/config.py."""
    from .config_docs import write

    for changed in write(ROOT):
        print(changed)


ns = Collection(
    "dev",
    # try it, test it
    demo, test,
    # generate and build what ships: scripts/, the /utils bundle, the image, the configuration docs
    wrappers, warm_client, bundle, image, config_docs,
)
