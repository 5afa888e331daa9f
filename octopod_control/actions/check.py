"""check: a point-in-time readiness verdict with Octopod's exit codes, in a constant
number of API requests (no waiting, no helm or kubectl process).

3 when a tag is asked for and the release runs another (this wins: a rollout of
the wrong tag is what the operator must see); else 0 when every workload is
ready, 2 when some are only partly available, 1 for anything else (nothing
available, a failed Job, the release missing, the API unreachable or slow).

Each kind's rule is in its module under kinds/; check judges kinds.JUDGED.
Requests: one LIST of the release records; per judged kind the release's
manifest holds (all four when it cannot be read), one LIST narrowed by the
conventional app.kubernetes.io/instance label, and a LIST of the whole kind only
when that misses a declared workload; one LIST of Pods only when something is
unhealthy, to say why. At most 10, whatever the release's size.
"""
from __future__ import annotations

import sys

from .. import manifest
from ..args import Deployment, split_path
from ..errors import EXIT_FAILURE, EXIT_PARTIAL, EXIT_TAG_MISMATCH, ConfigError, ExternalError, UsageError
from ..kinds import FAILED, PARTIAL, Verdict
from ..kinds.pods import summarize
from ..kube import KubeClient, client_for
from ..release_record import current_and_deployed, release_value
from ..settings import Settings
from ..target import Target, resolve_target
from ..workloads import PATHS, missing, release_workloads


def check(settings: Settings, deployment: Deployment, tag: str) -> int:
    """The exit code for Octopod; one stderr line per unhealthy workload, nothing on stdout."""
    target = resolve_target(settings, deployment)
    tag_path = _tag_path(settings) if tag else ()
    driver = settings.helm_driver
    client = client_for(settings)
    try:
        record, deployed = current_and_deployed(client, target.namespace, target.release, driver)
        if record is None:
            raise ExternalError(f"release {target.release} not found in namespace {target.namespace} "
                                f"(HELM_DRIVER={driver})")
        if tag:
            # What runs is what helm last deployed: a failed or unfinished upgrade after it
            # (helm killed, the API failing midway) proves nothing about its tag.
            running = release_value(deployed, tag_path) if deployed else None
            if running is None or str(running) != tag:
                shown = "no tag" if running is None else f"tag {running}"
                why = "" if deployed is record else (
                    f"; the newest revision, {record.get('version', '?')}, is "
                    f"{(record.get('info') or {}).get('status', 'unknown')}")
                _say(f"tag mismatch: release {target.release} runs {shown} "
                     f"({'.'.join(tag_path)}), requested {tag}{why}")
                return EXIT_TAG_MISMATCH
        verdicts = workload_verdicts(client, target, record)
    finally:
        client.close()
    for verdict in verdicts:
        if not verdict.ready:
            _say(verdict.line())
    return exit_code(verdicts)


def exit_code(verdicts: list[Verdict]) -> int:
    states = {v.state for v in verdicts}
    if FAILED in states:
        return EXIT_FAILURE
    return EXIT_PARTIAL if PARTIAL in states else 0


def _tag_path(settings: Settings) -> tuple[str, ...]:
    try:
        return split_path("TAG_KEY", settings.text("TAG_KEY"))
    except UsageError as exc:
        raise ConfigError(str(exc)) from None


def _say(line: str) -> None:
    print(line, file=sys.stderr)


def workload_verdicts(client: KubeClient, target: Target, record: dict) -> list[Verdict]:
    """A verdict for each workload of the release, with pod reasons on the unhealthy ones."""
    declared = manifest.objects(record.get("manifest"))
    found = [(kind, obj, kind.verdict(obj)) for kind, obj in release_workloads(client, target, declared)]
    unhealthy = [(kind, obj, v) for kind, obj, v in found if not v.ready]
    if unhealthy:
        all_pods = client.list(PATHS["Pod"].format(ns=target.namespace))
        for kind, obj, verdict in unhealthy:
            verdict.reasons += summarize(kind.pods(obj, all_pods))
    present = {(v.kind, v.name) for _, _, v in found}
    return [v for _, _, v in found] + missing(declared, present, target.namespace)
