"""kubectl for the mutations (scale, annotate, patch, delete), so operators can replay them.

Reads go through `kube.KubeClient` (no process per read); every change to the
cluster goes through kubectl, and its command line is logged first, as an
operator would type it. Each call is bounded: kubectl's own --request-timeout
and, around the process, a timeout of its own.
"""
from __future__ import annotations

import json
import os
import shlex
from dataclasses import dataclass
from typing import Any, Iterable, Mapping, Sequence

from . import process
from .errors import ExternalError
from .incluster import tool_environ
from .log import info as log
from .settings import Settings

# kubectl starts, reads its kubeconfig and (first time) discovery: give the process this much
# beyond the API request timeout.
_PROCESS_GRACE = 20.0


@dataclass
class Kubectl:
    binary: str
    env: Mapping[str, str]
    request_timeout: float  # seconds per API request (kubectl --request-timeout)

    def run(self, args: Sequence[str], *, timeout: float | None = None,
            stdin: str | None = None) -> process.Result:
        """Run `kubectl ARGS`, logged first and echoed to stderr; raise when it fails."""
        request = max(1, int(self.request_timeout))
        argv = [self.binary, *args, f"--request-timeout={request}s"]
        log("$ " + shlex.join([os.path.basename(self.binary), *args]))
        bound = timeout if timeout is not None else request + _PROCESS_GRACE
        result = process.run(argv, env=self.env, stdin=stdin, echo=True, timeout=max(bound, 1),
                             what=f"kubectl {' '.join(args[:2])}")
        if not result.ok:
            raise ExternalError(f"kubectl {' '.join(args[:2])}: {process.last_line(result.output)}")
        return result

    def patch(self, kind: str, name: str, namespace: str | None, patch: Mapping[str, Any],
              *, timeout: float | None = None) -> process.Result:
        """A JSON merge patch: one atomic change (e.g. replicas and the annotation recording them).
        namespace None: a cluster-scoped object."""
        body = json.dumps(patch, separators=(",", ":"), sort_keys=True)
        where = ["--namespace", namespace] if namespace else []
        return self.run(["patch", kind.lower(), name, *where, "--type=merge", "--patch", body],
                        timeout=timeout)

    def delete(self, kind: str, names: Iterable[str], namespace: str | None,
               *, timeout: float | None = None) -> process.Result:
        """Delete named objects of one kind; already gone is fine; does not wait for finalizers."""
        args = ["delete", kind.lower(), *names]
        if namespace:
            args += ["--namespace", namespace]
        return self.run(args + ["--ignore-not-found", "--wait=false"], timeout=timeout)


def kubectl_for(settings: Settings) -> Kubectl:
    # In a pod without a kubeconfig: the service account's, since --request-timeout would
    # make kubectl skip its in-cluster configuration (kubernetes/kubernetes#93474).
    return Kubectl(settings.kubectl_bin, tool_environ(settings), settings.kube_timeout)

