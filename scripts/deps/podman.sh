#!/usr/bin/env bash
# Podman, buildah and runc (Debian's) for the container image tests (test/system/), mmdebstrap for
# the local base images they build on (scripts/images/build-base.sh), uidmap as podman recommends.
# Installed from apt when missing (as root); prints nothing when already there.
set -euo pipefail
missing=()
for tool in podman:podman buildah:buildah runc:runc mmdebstrap:mmdebstrap newuidmap:uidmap; do
  command -v "${tool%%:*}" >/dev/null || [[ -x "/usr/sbin/${tool%%:*}" ]] || missing+=("${tool#*:}")
done
[[ ${#missing[@]} -eq 0 ]] && exit 0
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq "${missing[@]}" >/dev/null
echo "installed ${missing[*]}: $(podman --version), $(/usr/sbin/runc --version | head -1)"
