"""tag_check: does `--tag` exist for every image in REGISTRY_IMAGES?

Octopod runs this inside the user's create/update/restore request and shows any
non-zero exit as "Tag not found", so the latency matters and the stderr line
must say what really happened: a missing tag (exit 1) is never confused with a
registry that could not answer (auth, 429, 5xx, unreachable, timeout; also 1).
stdout stays empty.
"""
from __future__ import annotations

import sys

from ..args import Deployment
from ..errors import OctopodError, UsageError
from ..log import info
from ..settings import Settings


def tag_check(settings: Settings, deployment: Deployment) -> None:
    raw = settings.text("REGISTRY_IMAGES")
    if not raw:
        info("tag_check: REGISTRY_IMAGES is not set: nothing configured to check")
        return
    if not deployment.tag:
        raise UsageError("--tag: required")
    from ..registry import (check_images, config_credentials, config_host, env_credentials,
                            insecure_hosts, parse_images, parse_realms)

    images = parse_images(raw)
    realms = parse_realms(settings.text("REGISTRY_TOKEN_REALMS"))
    env = settings.environ()  # a credential helper's: without REGISTRY_PASSWORD
    # Checked up front: a half-set pair is a config error.
    from_env = env_credentials({n: settings.raw(n) for n in ("REGISTRY_USERNAME", "REGISTRY_PASSWORD")})
    # The pair belongs to one registry only: sent anywhere else it would leak, and fail there.
    auth_host = config_host(settings.text("REGISTRY_AUTH_HOST")) if settings.text(
        "REGISTRY_AUTH_HOST") else images[0].registry
    results = check_images(
        images, deployment.tag,
        timeout=settings.seconds("REGISTRY_TIMEOUT"),
        insecure=insecure_hosts(settings.text("REGISTRY_INSECURE")), realms=realms,
        credentials=lambda registry, timeout: (from_env if from_env and registry == auth_host
                                               else config_credentials(registry, env, timeout)))
    failures: list[OctopodError] = []
    for result in results:
        if result.error is not None:
            failures.append(result.error)
        else:
            info(f"tag_check: {result.image.name}:{deployment.tag} present ({result.kind})")
    for failure in failures[:-1]:  # each on its own line; the last is reported by the task
        print(f"error: {failure}", file=sys.stderr, flush=True)
    if failures:
        raise failures[-1]

